defmodule Lockstep.Agent do
  @moduledoc """
  `Agent` for managed processes, built on `Lockstep.GenServer`: state held by a process,
  read and changed through functions that run inside it.

      Lockstep.run(fn ->
        {:ok, agent} = Lockstep.Agent.start_link(fn -> 0 end)
        :ok = Lockstep.Agent.update(agent, &(&1 + 1))
        1 = Lockstep.Agent.get(agent, & &1)
        1 = Lockstep.Agent.get_and_update(agent, fn n -> {n, n * 10} end)
        10 = Lockstep.Agent.get(agent, & &1)
      end)

  Every operation is a message to the agent process, so Lockstep explores how the
  operations of several clients interleave (a `get` followed by an `update` is not
  atomic; `get_and_update/3` is). Timeouts count virtual milliseconds; failures exit the
  caller like `Lockstep.GenServer.call/3`.
  """

  alias Lockstep.GenServer

  @typedoc "An agent: a pid or a name, as `t:Lockstep.GenServer.server/0`."
  @type agent :: GenServer.server()

  @typedoc "The agent's state."
  @type state :: term()

  @doc """
  Starts an agent linked to the caller whose state is `fun.()`; mirrors
  `Agent.start_link/2`. Options are those of `Lockstep.GenServer.start_link/3` (`:name`,
  `:timeout`).
  """
  @spec start_link(Lockstep.body(state()), [GenServer.option()]) :: GenServer.on_start()
  def start_link(fun, opts \\ []) when is_function(fun, 0) do
    GenServer.start_link(__MODULE__.Server, fun, opts)
  end

  @doc "Like `start_link/2` but not linked to the caller; mirrors `Agent.start/2`."
  @spec start(Lockstep.body(state()), [GenServer.option()]) :: GenServer.on_start()
  def start(fun, opts \\ []) when is_function(fun, 0) do
    GenServer.start(__MODULE__.Server, fun, opts)
  end

  @doc "Returns `fun.(state)`, computed in the agent; mirrors `Agent.get/3`."
  @spec get(agent(), (state() -> a), non_neg_integer() | :infinity) :: a when a: var
  def get(agent, fun, timeout \\ 5000) when is_function(fun, 1) do
    GenServer.call(agent, {:get, fun}, timeout)
  end

  @doc "Replaces the state with `fun.(state)` and returns `:ok`; mirrors `Agent.update/3`."
  @spec update(agent(), (state() -> state()), non_neg_integer() | :infinity) :: :ok
  def update(agent, fun, timeout \\ 5000) when is_function(fun, 1) do
    GenServer.call(agent, {:update, fun}, timeout)
  end

  @doc """
  Atomically reads and changes the state: `fun.(state)` returns `{reply, new_state}`;
  returns `reply`. Mirrors `Agent.get_and_update/3`: any other return stops the agent
  with `{:bad_return_value, other}`, and the caller exits with that reason.
  """
  @spec get_and_update(agent(), (state() -> {a, state()}), non_neg_integer() | :infinity) :: a
        when a: var
  def get_and_update(agent, fun, timeout \\ 5000) when is_function(fun, 1) do
    GenServer.call(agent, {:get_and_update, fun}, timeout)
  end

  @doc "Replaces the state with `fun.(state)` without waiting; returns `:ok`. Mirrors `Agent.cast/2`."
  @spec cast(agent(), (state() -> state())) :: :ok
  def cast(agent, fun) when is_function(fun, 1) do
    GenServer.cast(agent, {:cast, fun})
  end

  @doc """
  Stops the agent with `reason` and waits for it to exit; mirrors `Agent.stop/3` (see
  `Lockstep.GenServer.stop/3`).
  """
  @spec stop(agent(), term(), non_neg_integer() | :infinity) :: :ok
  def stop(agent, reason \\ :normal, timeout \\ :infinity) do
    GenServer.stop(agent, reason, timeout)
  end

  defmodule Server do
    @moduledoc false
    use Lockstep.GenServer

    @impl true
    def init(fun), do: {:ok, fun.()}

    @impl true
    def handle_call({:get, fun}, _from, state), do: {:reply, fun.(state), state}
    def handle_call({:update, fun}, _from, state), do: {:reply, :ok, fun.(state)}

    def handle_call({:get_and_update, fun}, _from, state) do
      case fun.(state) do
        {reply, new_state} ->
          {:reply, reply, new_state}

        # As Elixir's Agent.Server: the agent stops, and the caller exits, with
        # {:bad_return_value, other}.
        other ->
          {:stop, {:bad_return_value, other}, state}
      end
    end

    @impl true
    def handle_cast({:cast, fun}, state), do: {:noreply, fun.(state)}
  end
end
