defmodule Lockstep.GenTest.Counter do
  @moduledoc false
  # A counter server for Lockstep.GenServer's tests. `:get` then `{:put, n}` from two
  # clients is the classic lost update; `:incr` is the atomic version.
  use Lockstep.GenServer

  alias Lockstep.GenServer

  def start_link(initial, opts \\ []), do: GenServer.start_link(__MODULE__, initial, opts)
  def start(initial, opts \\ []), do: GenServer.start(__MODULE__, initial, opts)

  @impl true
  def init(initial), do: {:ok, initial}

  @impl true
  def handle_call(:get, _from, n), do: {:reply, n, n}
  def handle_call({:put, n}, _from, _old), do: {:reply, :ok, n}
  def handle_call(:incr, _from, n), do: {:reply, n + 1, n + 1}

  # Replies from another process, `delay` virtual ms later, then tells `notify`.
  def handle_call({:slow, delay, notify}, from, n) do
    Lockstep.spawn(fn ->
      Lockstep.sleep(delay)
      GenServer.reply(from, {:late, n})
      Lockstep.send(notify, :late_reply_sent)
    end)

    {:noreply, n}
  end

  def handle_call(:crash, _from, _n), do: raise("counter crashed in handle_call")
  def handle_call({:stop, reason}, _from, n), do: {:stop, reason, :stopping, n}
  def handle_call(:exit_normal, _from, n), do: {:stop, :normal, n}

  @impl true
  def handle_cast(:crash, _n), do: raise("counter crashed in handle_cast")
  def handle_cast({:add, k}, n), do: {:noreply, n + k}
end

defmodule Lockstep.GenTest.Lifecycle do
  @moduledoc false
  # A server whose init/1 result is chosen by its argument and which reports what happens
  # to it (continues, timeouts, terminate/2) to `notify`.
  use Lockstep.GenServer

  alias Lockstep.GenServer

  @impl true
  def init({mode, notify}) do
    state = %{notify: notify, log: [:init]}

    case mode do
      :ok -> {:ok, state}
      :continue -> {:ok, state, {:continue, :load}}
      {:timeout, ms} -> {:ok, state, ms}
      :hibernate -> {:ok, state, :hibernate}
      :ignore -> :ignore
      {:stop, reason} -> {:stop, reason}
      :raise -> raise ArgumentError, "bad init"
      :throw -> throw({:ok, Map.put(state, :log, [:thrown])})
      :bad -> :what
      :trap -> trap(state)
      {:sleep, ms} -> sleep_then_ok(ms, state)
    end
  end

  defp sleep_then_ok(ms, state) do
    Lockstep.sleep(ms)
    {:ok, state}
  end

  defp trap(state) do
    Lockstep.flag(:trap_exit, true)
    {:ok, state}
  end

  @impl true
  def handle_continue(:load, state) do
    {:noreply, %{state | log: state.log ++ [:continued]}}
  end

  def handle_continue({:then_timeout, ms}, state) do
    {:noreply, %{state | log: state.log ++ [:continued]}, ms}
  end

  @impl true
  def handle_call(:log, _from, state), do: {:reply, state.log, state}

  def handle_call({:reply_then_continue, arg}, _from, state),
    do: {:reply, :replied, state, {:continue, arg}}

  def handle_call({:reply_then_timeout, ms}, _from, state),
    do: {:reply, :replied, state, ms}

  @impl true
  def handle_info(:timeout, state) do
    Lockstep.send(state.notify, {:timeout_at, Lockstep.now()})
    {:noreply, %{state | log: state.log ++ [:timeout]}}
  end

  def handle_info(msg, state) do
    {:noreply, %{state | log: state.log ++ [{:info, msg}]}}
  end

  @impl true
  def terminate(reason, state) do
    Lockstep.send(state.notify, {:terminated, reason, state.log})
  end

  def start(mode, notify, opts \\ []), do: GenServer.start(__MODULE__, {mode, notify}, opts)

  def start_link(mode, notify, opts \\ []),
    do: GenServer.start_link(__MODULE__, {mode, notify}, opts)
end

defmodule Lockstep.GenTest.Minimal do
  @moduledoc false
  # Only init/1: every other callback is `use Lockstep.GenServer`'s default.
  use Lockstep.GenServer, restart: :temporary

  @impl true
  def init(arg), do: {:ok, arg}
end
