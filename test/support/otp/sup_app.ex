defmodule Lockstep.OtpSup.Stash do
  @moduledoc false
  # Plain application code: a named GenServer holding a number, run under a real
  # Supervisor. `:crash` makes it raise (a restart), `{:sleep_init, ms}` options make init/1
  # sleep (a slow restart), `refuse: reason` makes init/1 return `{:stop, reason}` (or
  # `:ignore`), `trap: true` makes it trap exits and sleep `:stop_ms` in
  # terminate/2 (shutdown timeouts).
  use GenServer

  def start_link(opts) do
    GenServer.start_link(__MODULE__, opts, Keyword.take(opts, [:name]))
  end

  def child_spec(opts) do
    %{
      id: Keyword.get(opts, :id, Keyword.get(opts, :name, __MODULE__)),
      start: {__MODULE__, :start_link, [opts]},
      restart: Keyword.get(opts, :restart, :permanent),
      shutdown: Keyword.get(opts, :shutdown, 5_000)
    }
  end

  def get(server), do: GenServer.call(server, :get)
  def put(server, value), do: GenServer.call(server, {:put, value})

  @impl true
  def init(opts) do
    if reason = opts[:refuse], do: throw({:refused, reason})
    if opts[:trap], do: Process.flag(:trap_exit, true)
    if ms = opts[:init_ms], do: Process.sleep(ms)
    if notify = opts[:notify], do: send(notify, {:started, opts[:id] || opts[:name], self()})
    {:ok, Keyword.merge([value: 0], opts)}
  catch
    {:refused, :ignore} -> :ignore
    {:refused, reason} -> {:stop, reason}
  end

  @impl true
  def handle_call(:get, _from, state), do: {:reply, state[:value], state}
  def handle_call({:put, v}, _from, state), do: {:reply, :ok, Keyword.put(state, :value, v)}
  def handle_call(:crash, _from, _state), do: raise("stash crashed on request")

  @impl true
  def handle_cast(:crash, _state), do: raise("stash crashed on request")

  @impl true
  def terminate(reason, state) do
    if ms = state[:stop_ms], do: Process.sleep(ms)

    if notify = state[:notify],
      do: send(notify, {:terminated, state[:id] || state[:name], reason})

    :ok
  end
end

defmodule Lockstep.OtpSup.Client do
  @moduledoc false
  # The restart-window bug: look the server up by name, then call the pid. Between the two
  # a supervisor restart can end the old pid (the call exits :noproc) or leave the name
  # unregistered (whereis returns nil).
  def read(name) do
    case Process.whereis(name) do
      nil -> {:error, :not_running}
      pid -> GenServer.call(pid, :get)
    end
  end

  # The fix: call the name, and on an exit (the server died under the call, or was not
  # running yet) back off and call it again: the supervisor restarts it meanwhile.
  def read_by_name(name, attempts \\ 3) do
    GenServer.call(name, :get)
  catch
    :exit, _reason when attempts > 1 ->
      Process.sleep(10)
      read_by_name(name, attempts - 1)
  end
end

defmodule Lockstep.OtpSup.Tree do
  @moduledoc false
  # Plain application code: a module-based supervisor whose init/1 picks its children and
  # flags from the argument (nested trees, :ignore, significant children).
  use Supervisor

  def start_link(arg), do: Supervisor.start_link(__MODULE__, arg, Keyword.take(arg, [:name]))

  @impl true
  def init(arg) do
    case {Keyword.fetch(arg, :children), Keyword.get(arg, :flags, strategy: :one_for_one)} do
      {:error, _} -> :ignore
      # :supervisor's own flags map (auto_shutdown, which Elixir 1.14's init/2 lacks)
      {{:ok, children}, %{} = flags} -> {:ok, {flags, children}}
      {{:ok, children}, flags} -> Supervisor.init(children, flags)
    end
  end
end
