defmodule Lockstep.ExhaustiveTest do
  # `strategy: :exhaustive` (SPEC §10) through the public API: the counts the literature
  # gives for small programs, classic races found and their fixed versions verified,
  # determinism, replay, the summary, and the options' validation.
  use ExUnit.Case, async: true

  alias Lockstep.Examples.{BankAccount, CounterRace}

  @moduletag timeout: 120_000

  # A table that outlives every iteration (its owner is the test process), so the
  # processes of a run only read and write it.
  defp table(value), do: Lockstep.TestSupport.key_table(value)

  describe "facts from the literature" do
    test "one writer and N readers of one ETS key: 2^N interleavings, none sleep-blocked" do
      tab = table(0)

      # Source sets too (one initial per reversal, as Concuerror's source mode): 2^N.
      for n <- 2..6, dpor <- [:optimal, :source] do
        summary =
          Lockstep.run(Lockstep.TestSupport.readers_and_writer(tab, n),
            strategy: {:exhaustive, dpor: dpor}
          )

        assert {dpor, summary.iterations} == {dpor, Integer.pow(2, n)}
        assert summary.complete
        assert summary.sleep_blocked == 0

        assert to_string(summary) ==
                 "verified: all #{Integer.pow(2, n)} interleavings explored, no bug"
      end
    end

    test "N processes sharing nothing: one interleaving" do
      tab = table(0)

      for n <- 1..4, dpor <- [:optimal, :source] do
        summary =
          Lockstep.run(
            fn ->
              for i <- 1..n do
                Lockstep.spawn(fn ->
                  Lockstep.ETS.insert(tab, {{:own, i}, 1})
                  Lockstep.ETS.lookup(tab, {:own, i})
                  Lockstep.yield()
                end)
              end
            end,
            strategy: {:exhaustive, dpor: dpor}
          )

        assert {n, dpor, summary.iterations, summary.complete} == {n, dpor, 1, true}
      end
    end

    test "two senders to a receiver that takes any message: two interleavings" do
      for delivery <- [:instant] do
        summary =
          Lockstep.run(
            fn ->
              me = self()
              for i <- 1..2, do: Lockstep.spawn(fn -> Lockstep.send(me, i) end)
              Lockstep.recv()
            end,
            strategy: :exhaustive,
            delivery: delivery
          )

        assert {delivery, summary.iterations, summary.complete} == {delivery, 2, true}
      end
    end

    test "Lockstep.random(3) branches three ways, and every value is seen" do
      seen = :counters.new(3, [])

      summary =
        Lockstep.run(fn -> :counters.add(seen, Lockstep.random(3) + 1, 1) end,
          strategy: :exhaustive
        )

      assert summary.iterations == 3
      assert summary.complete
      assert for(i <- 1..3, do: :counters.get(seen, i)) == [1, 1, 1]
    end

    test "optimal explores no more than source, which explores no more than plain search" do
      counts =
        for dpor <- [:optimal, :source, :none] do
          {:ok, summary} =
            Lockstep.check(CounterRace.test_body(:atomic), strategy: {:exhaustive, dpor: dpor})

          assert summary.complete
          summary.iterations
        end

      [optimal, source, none] = counts
      assert optimal <= source and source <= none
      assert optimal < none
    end
  end

  describe "classic races" do
    test "the get/put counter race is found, and the atomic counter verified" do
      assert {:error, %Lockstep.BugFound{strategy: :exhaustive}} =
               Lockstep.check(CounterRace.test_body(:racy), strategy: :exhaustive)

      {:ok, summary} = Lockstep.check(CounterRace.test_body(:atomic), strategy: :exhaustive)
      assert summary.complete
      assert to_string(summary) =~ "verified: all #{summary.iterations} interleavings"
    end

    test "the bank account's check-then-act withdrawal (an unmodified GenServer)" do
      opts = [instrument: [BankAccount, BankAccount.Test], strategy: :exhaustive]

      assert {:error, %Lockstep.BugFound{kind: :exception} = bug} =
               Lockstep.check(&BankAccount.Test.racy/0, opts)

      assert Exception.message(bug) =~ "overdrawn"

      {:ok, summary} = Lockstep.check(&BankAccount.Test.atomic/0, opts)
      assert summary.complete
    end

    test "an ETS lookup-then-insert race, and insert_new fixing it" do
      racy = fn ->
        tab = :ets.new(:claims, [:public])
        me = self()

        for who <- [:a, :b] do
          Lockstep.spawn(fn ->
            won =
              case Lockstep.ETS.lookup(tab, :slot) do
                [] -> Lockstep.ETS.insert(tab, {:slot, who})
                _ -> false
              end

            Lockstep.send(me, won)
          end)
        end

        results = [Lockstep.recv(), Lockstep.recv()]
        if Enum.count(results, & &1) > 1, do: raise("both claimed the slot")
      end

      fixed = fn ->
        tab = :ets.new(:claims, [:public])
        me = self()

        for who <- [:a, :b] do
          Lockstep.spawn(fn -> Lockstep.send(me, Lockstep.ETS.insert_new(tab, {:slot, who})) end)
        end

        results = [Lockstep.recv(), Lockstep.recv()]
        if Enum.count(results, & &1) > 1, do: raise("both claimed the slot")
      end

      assert {:error,
              %Lockstep.BugFound{
                reason: {:error, %RuntimeError{message: "both claimed the slot"}, _stack}
              }} = Lockstep.check(racy, strategy: :exhaustive)

      assert {:ok, %Lockstep.Summary{complete: true}} =
               Lockstep.check(fixed, strategy: :exhaustive)
    end

    test "a whereis-then-register race on a name" do
      body = fn ->
        me = self()

        for _ <- 1..2 do
          Lockstep.spawn(fn ->
            if Lockstep.whereis(:leader) == nil do
              # Both may see no leader; the second register raises.
              Lockstep.register(:leader, self())
            end

            Lockstep.send(me, :done)
          end)
        end

        Lockstep.recv()
        Lockstep.recv()
      end

      assert {:error, %Lockstep.BugFound{kind: :crash, reason: {:error, %ArgumentError{}, _}}} =
               Lockstep.check(body, strategy: :exhaustive)
    end
  end

  describe "kills (a step that disables another)" do
    # The program the engine's random runs found optimal DPOR missing an outcome of:
    # the first register loses only if the third process registers first while the
    # first is still alive, before the second kills it.
    defp kill_race do
      fn ->
        p1 =
          Lockstep.spawn(fn ->
            try do
              Lockstep.register(:slot, self())
            rescue
              ArgumentError -> raise "lost the name before the kill"
            end
          end)

        Lockstep.spawn(fn ->
          Lockstep.exit(p1, :kill)
          Lockstep.alive?(p1)
        end)

        Lockstep.spawn(fn ->
          for _ <- 1..2 do
            try do
              Lockstep.register(:slot, self())
            rescue
              ArgumentError -> :taken
            end
          end
        end)
      end
    end

    test "every reduction finds the interleaving a kill could hide" do
      for dpor <- [:optimal, :source, :none] do
        assert {:error,
                %Lockstep.BugFound{
                  reason: {:error, %RuntimeError{message: "lost the name before the kill"}, _}
                }} = Lockstep.check(kill_race(), strategy: {:exhaustive, dpor: dpor}),
               "dpor: #{dpor}"
      end
    end
  end

  describe "determinism, replay, bounds" do
    test "the same program and options explore the same interleavings and fail alike" do
      runs =
        for _ <- 1..2 do
          {:error, bug} = Lockstep.check(CounterRace.test_body(:racy), strategy: :exhaustive)
          {:ok, summary} = Lockstep.check(CounterRace.test_body(:atomic), strategy: :exhaustive)
          {bug.iteration, bug.schedule, summary.iterations, summary.steps}
        end

      assert [same, same] = runs
    end

    test "a bug found by exhaustive search replays from its trace file" do
      dir = Lockstep.TestSupport.tmp_dir!("ls_exhaustive")

      {:error, bug} = Lockstep.check(&CounterRace.racy/0, strategy: :exhaustive, trace_dir: dir)

      replayed =
        assert_raise Lockstep.BugFound, fn ->
          Lockstep.replay(&CounterRace.racy/0, bug.trace_path)
        end

      assert replayed.schedule == bug.schedule
      assert replayed.kind == bug.kind
    end

    test ":iterations stops the search short, and the summary says how far it got" do
      {:ok, summary} =
        Lockstep.check(CounterRace.test_body(:atomic),
          strategy: {:exhaustive, dpor: :none},
          iterations: 10
        )

      assert summary.iterations == 10
      refute summary.complete
      assert summary.still_on_stack > 0
      assert to_string(summary) =~ "not complete: 10 interleavings explored"
    end

    test "a preemption bound explores fewer schedules and is complete within it" do
      bounded =
        for bound <- [0, 1] do
          {:ok, summary} =
            Lockstep.check(CounterRace.test_body(:atomic),
              strategy: {:exhaustive, preemption_bound: bound}
            )

          assert summary.complete
          summary.iterations
        end

      {:ok, all} =
        Lockstep.check(CounterRace.test_body(:atomic), strategy: {:exhaustive, dpor: :none})

      [zero, one] = bounded
      assert zero < one and one < all.iterations
    end

    test "fail_on_max_steps: true makes the interleaving that reaches :max_steps a bug, the last one too" do
      spin = fn -> Stream.repeatedly(&Lockstep.yield/0) |> Stream.run() end
      dir = Path.join(System.tmp_dir!(), "lockstep_exh_#{System.unique_integer([:positive])}")

      # One interleaving (two processes sharing nothing), which reaches the limit.
      for workers <- [1, 2], dpor <- [:optimal, :none] do
        {:error, bug} =
          Lockstep.check(
            fn ->
              Lockstep.spawn(spin)
              spin.()
            end,
            strategy: {:exhaustive, dpor: dpor},
            max_steps: 6,
            fail_on_max_steps: true,
            workers: workers,
            trace_dir: dir
          )

        assert %Lockstep.BugFound{kind: :max_steps, iteration: 1, fail_step: 6} = bug
      end

      File.rm_rf!(dir)
    end

    test "randomised strategies are never complete" do
      summary = Lockstep.run(fn -> Lockstep.random(2) end, iterations: 50)
      refute summary.complete
    end
  end

  describe "options" do
    test "bad exhaustive options name the key, the value and what is accepted" do
      body = fn -> :ok end

      for {opts, text} <- [
            {[strategy: {:exhaustive, dpor: :best}], "dpor: :optimal, :source or :none"},
            {[strategy: {:exhaustive, preemption_bound: -1}], "preemption_bound: nil or"},
            {[strategy: {:exhaustive, depth: 3}], "unknown strategy option :depth"},
            {[iterations: :infinity], ":infinity is accepted only with strategy: :exhaustive"}
          ] do
        error = assert_raise ArgumentError, fn -> Lockstep.run(body, opts) end
        assert error.message =~ text, "#{inspect(opts)}: #{error.message}"
      end
    end

    test "iterations: :infinity is the exhaustive default, and accepted explicitly" do
      summary =
        Lockstep.run(fn -> Lockstep.random(2) end, strategy: :exhaustive, iterations: :infinity)

      assert summary.iterations == 2 and summary.complete
    end
  end
end
