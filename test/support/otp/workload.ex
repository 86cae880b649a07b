defmodule Lockstep.TestSupport.OTP.Workload do
  @moduledoc false
  # A real OTP workload as an application runs it outside any Lockstep run: a GenServer
  # (calls, a cast, an info, a timed-out call whose late reply must not arrive, a call to
  # a dead server, a name, stop/3), an Agent and a :gen_statem state timeout. The outcome
  # has no pids or references, so two runs of it compare equal.
  alias Lockstep.TestSupport.OTP.{Compare, Door, Server}

  def run do
    name = :"lockstep_workload_#{System.unique_integer([:positive])}"
    {:ok, pid} = Server.start_link({:ok, 1}, name: name)
    get = GenServer.call(name, :get)
    :ok = GenServer.cast(pid, {:put, 2})
    send(pid, {:put, 3})
    after_info = GenServer.call(pid, :get)
    timeout = Compare.outcome(fn -> GenServer.call(pid, {:sleep, 100, :late}, 10) end)
    # The late reply comes at 100 ms; the alias drops it.
    Process.sleep(150)
    leftover = receive(do: (message -> {:leftover, message}), after: (0 -> :none))
    :ok = GenServer.stop(name)
    name_free = Process.whereis(name) == nil
    noproc = Compare.outcome(fn -> GenServer.call(pid, :get) end)

    {:ok, agent} = Agent.start_link(fn -> 10 end)
    :ok = Agent.update(agent, &(&1 + 1))
    agent_value = Agent.get(agent, & &1)
    :ok = Agent.stop(agent)

    {:ok, door} = Door.start_link(:secret, 20)
    :opened = Door.press(door, :secret)
    Process.sleep(60)
    door_events = Door.events(door)
    :ok = :gen_statem.stop(door)

    Compare.normalize(
      {get, after_info, timeout, leftover, name_free, noproc, agent_value, door_events}
    )
  end

  def expected do
    {1, 3, {:exit, {:timeout, {GenServer, :call, [:pid, {:sleep, 100, :late}, 10]}}}, :none, true,
     {:exit, {:noproc, {GenServer, :call, [:pid, :get, 5000]}}}, 11,
     {:locked, [:opened, :relocked]}}
  end
end
