defmodule Lockstep.SupTest.Counter do
  @moduledoc false
  # A supervised counter for Lockstep.Supervisor's tests: `start_link(opts)` with
  # `:initial` (0), `:name` and `:notify` (a pid told `{:counter_started, name, pid}` from
  # init/1, so tests can see restarts).
  use Lockstep.GenServer

  alias Lockstep.GenServer

  def start_link(opts) do
    GenServer.start_link(__MODULE__, opts, Keyword.take(opts, [:name]))
  end

  @impl true
  def init(opts) do
    if notify = opts[:notify] do
      Lockstep.send(notify, {:counter_started, opts[:name], self()})
    end

    {:ok, Keyword.get(opts, :initial, 0)}
  end

  @impl true
  def handle_call(:get, _from, n), do: {:reply, n, n}
  def handle_call(:incr, _from, n), do: {:reply, n + 1, n + 1}
  def handle_call(:crash, _from, _n), do: raise("supervised counter crashed")

  @impl true
  def handle_cast(:crash, _n), do: raise("supervised counter crashed")
end

defmodule Lockstep.SupTest.Worker do
  @moduledoc false
  # A plain managed process as a supervised worker. `start_link(notify, id, mode)` spawns
  # it linked to the caller (the supervisor) and returns `{:ok, pid}`; it sends
  # `{:worker_started, id, pid}` to `notify` and then, by `mode`:
  #   * `:wait` — waits for `:stop` (exits :normal) or `{:exit, reason}`;
  #   * `:stubborn` — traps exits and ignores them (so only :kill stops it), reporting each
  #     `{:EXIT, from, reason}` it gets to `notify` as `{:worker_got, id, reason}`.
  # `start(result)` is a start function that starts nothing and returns `result`
  # (`:ignore`, `{:error, reason}`, or anything) or raises when `result` is `:raise`.

  require Lockstep

  def start_link(notify, id, mode) do
    pid =
      Lockstep.spawn_link(fn ->
        if mode == :stubborn, do: Lockstep.flag(:trap_exit, true)
        Lockstep.send(notify, {:worker_started, id, self()})
        loop(notify, id)
      end)

    {:ok, pid}
  end

  defp loop(notify, id) do
    Lockstep.receive do
      :stop ->
        :ok

      {:exit, reason} ->
        exit(reason)

      {:EXIT, _from, reason} ->
        Lockstep.send(notify, {:worker_got, id, reason})
        loop(notify, id)
    end
  end

  @doc """
  A start function that starts a `:wait` worker the first time, fails (`{:error, :flaky}`)
  the next `failures` times and then starts workers again. It runs in the supervisor, so
  it counts its calls in the supervisor's process dictionary.
  """
  def start_flaky(notify, id, failures) do
    n = Process.get({:flaky_starts, id}, 0)
    Process.put({:flaky_starts, id}, n + 1)
    if n in 1..failures//1, do: {:error, :flaky}, else: start_link(notify, id, :wait)
  end

  def start(:raise), do: raise(ArgumentError, "cannot start")
  def start(result), do: result

  @doc "A child spec for a `:wait` worker with id `id`, merged with `overrides`."
  def spec(notify, id, overrides \\ []) do
    Lockstep.Supervisor.child_spec(
      %{id: id, start: {__MODULE__, :start_link, [notify, id, :wait]}},
      overrides
    )
  end
end

defmodule Lockstep.SupTest.Sup do
  @moduledoc false
  # A module-based supervisor: `init/1` returns what `{children, opts}` make through
  # Lockstep.Supervisor.init/2, or `{:raw, value}` returns `value` as it is.
  use Lockstep.Supervisor

  def start_link(arg, opts \\ []), do: Lockstep.Supervisor.start_link(__MODULE__, arg, opts)

  @impl true
  def init({:raw, value}), do: value
  def init({children, opts}), do: Lockstep.Supervisor.init(children, opts)
end
