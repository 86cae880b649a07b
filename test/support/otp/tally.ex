defmodule Lockstep.TestSupport.OTP.Tally do
  @moduledoc false
  # An Agent-based aggregation as people write it: `add/2` reads the total with
  # Agent.get, then writes the sum with Agent.update — two clients can both read the old
  # total (a lost update). `add_fixed/2` is the one-call fix (Agent.update with the sum
  # computed inside the agent).

  def start_link, do: Agent.start_link(fn -> 0 end)

  def add(agent, n) do
    total = Agent.get(agent, & &1)
    Agent.update(agent, fn _ -> total + n end)
  end

  def add_fixed(agent, n), do: Agent.update(agent, &(&1 + n))

  def body(add \\ &add/2) do
    {:ok, agent} = start_link()
    parent = self()
    for n <- [1, 2], do: spawn(fn -> send(parent, {:added, add.(agent, n)}) end)
    for _ <- 1..2, do: receive(do: ({:added, :ok} -> :ok))
    total = Agent.get(agent, & &1)
    if total != 3, do: raise("lost update: the total is #{total}, not 3")
    total
  end

  def fixed_body, do: body(&add_fixed/2)
end
