defmodule Lockstep.TestSupport.OTP.Server do
  @moduledoc false
  # A plain `use GenServer` server whose behaviour the tests pick through its start
  # argument and requests: every return shape of init/1 and handle_call/3 the semantics
  # tests compare against plain OTP 25.
  use GenServer

  def start_link(init, opts \\ []), do: GenServer.start_link(__MODULE__, init, opts)
  def start(init, opts \\ []), do: GenServer.start(__MODULE__, init, opts)

  @impl true
  def init({:ok, state}), do: {:ok, state}
  def init({:stop, reason}), do: {:stop, reason}
  def init(:ignore), do: :ignore
  def init({:continue, state, continue}), do: {:ok, state, {:continue, continue}}
  def init({:trap, state}), do: Process.flag(:trap_exit, true) && {:ok, state}

  @impl true
  def handle_continue({:set, value}, _state), do: {:noreply, value}

  @impl true
  def handle_call(:get, _from, state), do: {:reply, state, state}

  def handle_call({:sleep, ms, reply}, _from, state) do
    Process.sleep(ms)
    {:reply, reply, state}
  end

  def handle_call(:crash, _from, state), do: raise("the server crashed holding #{inspect(state)}")
  def handle_call({:stop, reason}, _from, state), do: {:stop, reason, state}
  def handle_call({:stop, reason, reply}, _from, state), do: {:stop, reason, reply, state}

  @impl true
  def handle_cast({:put, value}, _state), do: {:noreply, value}

  @impl true
  def handle_info({:put, value}, _state), do: {:noreply, value}

  # Tells whoever the state names that terminate/2 ran, and with what reason.
  @impl true
  def terminate(reason, {:notify, pid}), do: send(pid, {:terminated, reason})
  def terminate(_reason, _state), do: :ok
end
