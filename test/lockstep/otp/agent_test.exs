defmodule Lockstep.OTP.AgentTest do
  # Elixir's real Agent (Agent.Server on :gen_server) under control.
  use Lockstep.Test, async: true

  alias Lockstep.TestSupport.OTP.{Compare, Tally}

  test "get, update, get_and_update, cast and stop do what they do on the plain BEAM" do
    program = fn ->
      {:ok, agent} = Agent.start_link(fn -> [1] end, name: :lockstep_agent)
      :ok = Agent.update(:lockstep_agent, &[2 | &1])
      popped = Agent.get_and_update(agent, fn [h | t] -> {h, t} end)
      :ok = Agent.cast(agent, &[3 | &1])
      list = Agent.get(agent, & &1)
      :ok = Agent.stop(agent)
      {popped, list, Process.whereis(:lockstep_agent), Process.alive?(agent)}
    end

    expected = Compare.plain(program)
    assert expected == {:ok, {2, [3, 1], nil, false}}
    assert {[^expected], _} = Compare.controlled(program)
  end

  test "an Agent.get of a dead agent exits with :noproc, as on the plain BEAM" do
    program = fn ->
      {:ok, agent} = Agent.start(fn -> 0 end)
      :ok = Agent.stop(agent)
      Agent.get(agent, & &1)
    end

    expected = Compare.plain(program)
    assert {:exit, {:noproc, {GenServer, :call, _}}} = expected
    assert {[^expected], _} = Compare.controlled(program)
  end

  test "the get-then-update aggregation loses an update, found and replayed" do
    {:error, bug} = Lockstep.check(&Tally.body/0, instrument: [Tally])
    assert bug.kind == :exception
    assert Exception.message(bug) =~ "lost update"

    assert_raise Lockstep.BugFound, ~r/lost update/, fn ->
      Lockstep.replay(&Tally.body/0, bug.trace_path)
    end
  end

  test "the one-call fix passes 1,000 iterations" do
    summary = Lockstep.run(&Tally.fixed_body/0, instrument: [Tally], iterations: 1000)
    assert summary.iterations == 1000
  end
end
