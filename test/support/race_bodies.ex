defmodule Lockstep.RaceBodies do
  @moduledoc false
  # Test bodies for the strategy, shrink, ctest and mix-task tests. The zero-arity public
  # functions (`racy/0`, `atomic/0`, `racy_with_spinner/0`) *are* test bodies: they run as
  # the root of an iteration, so `mix lockstep.replay PATH --run Lockstep.RaceBodies.racy`
  # and `mix lockstep.shrink` can name them.

  require Lockstep

  alias Lockstep.Examples.CounterRace

  @doc "The get-then-put lost update (two clients), as a body."
  def racy, do: CounterRace.test_body(:racy).()

  @doc "The same clients incrementing atomically: never fails."
  def atomic, do: CounterRace.test_body(:atomic).()

  @spinner_yields 40

  @doc """
  The lost update plus a useless spinner process that calls `Lockstep.yield/0`
  #{@spinner_yields} times and has nothing to do with the bug. A failing schedule is full
  of the spinner's steps; shrinking should drop most of them.
  """
  def racy_with_spinner do
    Lockstep.spawn(fn -> spin(@spinner_yields) end)
    CounterRace.test_body(:racy).()
  end

  @doc "`racy_with_spinner/0` after the fix: the clients increment atomically."
  def atomic_with_spinner do
    Lockstep.spawn(fn -> spin(@spinner_yields) end)
    CounterRace.test_body(:atomic).()
  end

  defp spin(0), do: :ok

  defp spin(n) do
    Lockstep.yield()
    spin(n - 1)
  end

  @doc """
  Four writers each send `{:write, i}` to a register process (which keeps the last value
  written) and then tell the root they are done; the root reads the register and fails
  when writer `last` wrote last. The bug needs that one writer to lose the race against
  all three others. With `last: 1` the writer that is spawned first must write last, which
  an unbiased random walk rarely produces (writer 1 has the most chances to run early).
  """
  def four_writers(last) when last in 1..4 do
    fn ->
      root = self()
      register = Lockstep.spawn(fn -> register_loop(nil) end)

      for i <- 1..4 do
        Lockstep.spawn(fn ->
          Lockstep.send(register, {:write, i})
          Lockstep.send(root, :done)
        end)
      end

      for _ <- 1..4, do: Lockstep.receive(do: (:done -> :ok))

      Lockstep.send(register, {:read, root})
      final = Lockstep.receive(do: ({:value, v} -> v))

      if final == last do
        raise "writer #{last} wrote last (register holds #{inspect(final)})"
      end

      :ok
    end
  end

  defp register_loop(value) do
    Lockstep.receive do
      {:write, v} ->
        register_loop(v)

      {:read, from} ->
        Lockstep.send(from, {:value, value})
        register_loop(value)
    end
  end

  @doc """
  A correct spin-wait: a waiter polls a flag (an atomics cell) with `Lockstep.yield/0`
  between polls until a setter process sets it, then reports to the root. Never fails, but
  a scheduler that keeps running the waiter starves the setter: under plain PCT an
  iteration in which the waiter outranks the setter spins until `:max_steps`.
  """
  def spin_wait do
    fn ->
      root = self()
      flag = Lockstep.Atomics.new(1, [])

      Lockstep.spawn(fn ->
        wait_for_flag(flag)
        Lockstep.send(root, :done)
      end)

      Lockstep.spawn(fn -> Lockstep.Atomics.put(flag, 1, 1) end)
      Lockstep.receive(do: (:done -> :ok))
    end
  end

  defp wait_for_flag(flag) do
    if Lockstep.Atomics.get(flag, 1) == 0 do
      Lockstep.yield()
      wait_for_flag(flag)
    end
  end

  @doc """
  Runs `body` under every seed in `seeds` with up to `cap` iterations and returns, per
  seed, the iteration at which the first bug was found (`nil` when none was found).
  """
  def iterations_to_bug(body, strategy, seeds, cap, trace_dir) do
    for seed <- seeds do
      case Lockstep.check(body,
             strategy: strategy,
             seed: seed,
             iterations: cap,
             trace_dir: trace_dir
           ) do
        {:error, bug} -> bug.iteration
        {:ok, _summary} -> nil
      end
    end
  end

  @doc """
  Fails in the iterations whose controlled draw is below `per_mille` of 1000. Under
  `:random` the draw depends on the iteration's seed only, so the failing iterations are
  the same whichever worker (or node) runs them. `real_ms` of wall-clock sleep make each
  iteration slow enough to lose a node in the middle of a run.
  """
  def rare_failure(per_mille, real_ms \\ 0) do
    fn ->
      if real_ms > 0, do: Process.sleep(real_ms)
      if Lockstep.random(1000) < per_mille, do: raise("rare failure")
    end
  end
end
