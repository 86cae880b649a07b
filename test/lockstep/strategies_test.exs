defmodule Lockstep.StrategiesTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{BugFound, RaceBodies, Summary}
  alias Lockstep.Examples.CounterRace
  import Lockstep.TestSupport

  @strategies [:random, :pct, :pos, :fair_pct, :idpct]

  describe "the get-then-put lost update (CounterRace :racy)" do
    for strategy <- @strategies do
      test "is found by #{inspect(strategy)}" do
        dir = tmp_dir!()
        strategy = unquote(strategy)

        assert {:error, %BugFound{} = bug} =
                 Lockstep.check(CounterRace.test_body(:racy),
                   strategy: strategy,
                   iterations: 300,
                   seed: 2026,
                   trace_dir: dir
                 )

        assert bug.kind == :exception
        assert bug.process == "P"
        assert bug.strategy == strategy
        assert bug.seed == 2026
        assert bug.iteration in 1..300
        assert {:error, %RuntimeError{message: "lost update" <> _}, _} = bug.reason

        # Both clients read 0 before either wrote back.
        reads =
          for {_, {:send, "P.1", to, {:value, v}, _}} <- bug.trace, to in ["P.2", "P.3"], do: v

        assert reads == [0, 0]
        assert File.regular?(bug.trace_path)
        assert Path.dirname(bug.trace_path) == dir
      end

      test "#{inspect(strategy)} passes the atomic counter for 300 iterations" do
        strategy = unquote(strategy)

        assert %Summary{} =
                 summary =
                 Lockstep.run(CounterRace.test_body(:atomic),
                   strategy: strategy,
                   iterations: 300,
                   seed: 2026
                 )

        assert summary.iterations == 300
        assert summary.max_steps_hit == 0
        assert summary.strategy == strategy
        assert summary.seed == 2026
        assert summary.steps > 300
        assert summary.distinct_schedules > 1
        assert summary.distinct_schedules <= summary.iterations
      end
    end

    for strategy <- [
          {:pct, bug_depth: 1},
          {:pct, bug_depth: 5},
          {:fair_pct, bug_depth: 2, fair_switch: 8},
          {:idpct, d_min: 1, d_max: 3},
          {:idpct, d_min: 4, d_max: 4}
        ] do
      test "is found with strategy options #{inspect(strategy)}" do
        strategy = unquote(strategy)

        assert {:error, %BugFound{} = bug} =
                 Lockstep.check(CounterRace.test_body(:racy),
                   strategy: strategy,
                   iterations: 300,
                   seed: 11,
                   trace_dir: tmp_dir!()
                 )

        assert bug.kind == :exception
        assert bug.strategy == strategy

        summary =
          Lockstep.run(CounterRace.test_body(:atomic),
            strategy: strategy,
            iterations: 100,
            seed: 11
          )

        assert summary.iterations == 100
        assert summary.strategy == strategy
        assert summary.distinct_schedules > 1
      end
    end
  end

  describe "a bug that needs one of four writers to write last" do
    # Seeds 1..100 are the fixed seed set whose figures docs/guide-strategies.md reports.
    @seeds 1..100
    @cap 300

    for strategy <- [:pct, :pos] do
      test "#{inspect(strategy)} finds 'writer 4 last' under every seed" do
        found =
          RaceBodies.iterations_to_bug(
            RaceBodies.four_writers(4),
            unquote(strategy),
            1..30,
            @cap,
            tmp_dir!()
          )

        assert Enum.all?(found, &is_integer/1), "not found for some seeds: #{inspect(found)}"
      end

      test "#{inspect(strategy)} finds 'writer 1 last' (the first-spawned writer) under every seed" do
        dir = tmp_dir!()
        strategy = unquote(strategy)

        assert {:error, %BugFound{} = bug} =
                 Lockstep.check(RaceBodies.four_writers(1),
                   strategy: strategy,
                   iterations: @cap,
                   seed: 1,
                   trace_dir: dir
                 )

        assert bug.kind == :exception
        assert {:error, %RuntimeError{message: "writer 1 wrote last" <> _}, _} = bug.reason

        # The register received the four writes with writer 1's last.
        writes = for {_, {:receive, _register, _from, {:write, i}}} <- bug.trace, do: i

        assert length(writes) == 4
        assert List.last(writes) == 1
        assert Enum.sort(writes) == [1, 2, 3, 4]

        found =
          RaceBodies.iterations_to_bug(RaceBodies.four_writers(1), strategy, @seeds, @cap, dir)

        assert Enum.all?(found, &is_integer/1), "not found for some seeds: #{inspect(found)}"
      end
    end

    test "PCT and POS need fewer iterations than a random walk for 'writer 1 last'" do
      dir = tmp_dir!()

      mean = fn strategy ->
        found =
          RaceBodies.iterations_to_bug(RaceBodies.four_writers(1), strategy, @seeds, @cap, dir)

        assert Enum.all?(found, &is_integer/1), "#{inspect(strategy)}: #{inspect(found)}"
        Enum.sum(found) / length(found)
      end

      random = mean.(:random)
      pct = mean.(:pct)
      pos = mean.(:pos)

      assert pct < random, "pct mean #{pct} vs random #{random}"
      assert pos < random, "pos mean #{pos} vs random #{random}"
    end
  end

  describe "fair PCT and spin loops" do
    test "{:fair_pct, fair_switch: n} lets a spin-waiting process's partner run" do
      fair =
        Lockstep.run(RaceBodies.spin_wait(),
          strategy: {:fair_pct, fair_switch: 50},
          iterations: 100,
          seed: 7,
          max_steps: 2_000,
          fail_on_max_steps: true
        )

      assert fair.iterations == 100
      assert fair.max_steps_hit == 0

      pct =
        Lockstep.run(RaceBodies.spin_wait(),
          strategy: :pct,
          iterations: 100,
          seed: 7,
          max_steps: 2_000
        )

      # Plain PCT keeps running the higher-priority waiter: it spins far longer.
      assert pct.steps > fair.steps
    end
  end

  describe "strategy options are validated" do
    test "an unknown strategy option raises ArgumentError naming it" do
      for {strategy, key} <- [
            {{:pct, depth: 2}, ":depth"},
            {{:pos, bug_depth: 2}, ":bug_depth"},
            {{:random, seed: 1}, ":seed"},
            {{:fair_pct, switch: 10}, ":switch"},
            {{:idpct, bug_depth: 3}, ":bug_depth"},
            {{:idpct, d_min: 2, dmax: 3}, ":dmax"}
          ] do
        error =
          assert_raise ArgumentError, fn ->
            Lockstep.run(CounterRace.test_body(:atomic), strategy: strategy, iterations: 1)
          end

        assert error.message =~ key, "#{inspect(strategy)}: #{error.message}"
        assert error.message =~ ":strategy"
      end
    end

    test "d_min greater than d_max raises ArgumentError" do
      error =
        assert_raise ArgumentError, fn ->
          Lockstep.run(CounterRace.test_body(:atomic),
            strategy: {:idpct, d_min: 5, d_max: 2},
            iterations: 1
          )
        end

      assert error.message =~ "d_min"
      assert error.message =~ "d_max"
    end

    test "a d_min above the default d_max (6) without d_max raises ArgumentError" do
      assert_raise ArgumentError, fn ->
        Lockstep.run(CounterRace.test_body(:atomic),
          strategy: {:idpct, d_min: 9},
          iterations: 1
        )
      end
    end

    test "strategy option values must be positive integers" do
      for strategy <- [
            {:pct, bug_depth: 0},
            {:pct, bug_depth: :deep},
            {:fair_pct, fair_switch: -1},
            {:fair_pct, bug_depth: 1.5},
            {:idpct, d_min: 0, d_max: 2}
          ] do
        error =
          assert_raise ArgumentError, fn ->
            Lockstep.run(CounterRace.test_body(:atomic), strategy: strategy, iterations: 1)
          end

        assert error.message =~ ":strategy", "#{inspect(strategy)}: #{error.message}"
      end
    end

    test "unknown strategy names and malformed tuples raise ArgumentError" do
      for strategy <- [:dfs, {:dfs, []}, {:pct, :not_a_keyword}, {:pct, [2]}, "pos"] do
        assert_raise ArgumentError, fn ->
          Lockstep.run(CounterRace.test_body(:atomic), strategy: strategy, iterations: 1)
        end
      end
    end

    test "valid options are accepted for every strategy" do
      for strategy <- [
            :random,
            {:random, []},
            {:pct, bug_depth: 1},
            {:pos, []},
            {:fair_pct, bug_depth: 2},
            {:fair_pct, fair_switch: 1},
            {:idpct, d_min: 1},
            {:idpct, d_max: 2},
            {:idpct, d_min: 3, d_max: 3}
          ] do
        assert %Summary{iterations: 5} =
                 Lockstep.run(CounterRace.test_body(:atomic),
                   strategy: strategy,
                   iterations: 5,
                   seed: 1
                 )
      end
    end
  end

  describe "determinism per strategy" do
    for strategy <- @strategies do
      test "the same seed gives the same failure and the same summary (#{inspect(strategy)})" do
        dir = tmp_dir!()
        opts = [strategy: unquote(strategy), iterations: 300, seed: 4711, trace_dir: dir]

        # A bug needing a rarer interleaving, so the failing iteration is not always 1.
        assert {:error, %BugFound{} = a} = Lockstep.check(RaceBodies.four_writers(1), opts)
        assert {:error, %BugFound{} = b} = Lockstep.check(RaceBodies.four_writers(1), opts)

        assert a.iteration == b.iteration
        assert a.iter_seed == b.iter_seed
        assert a.schedule == b.schedule
        assert a.fail_step == b.fail_step
        assert a.steps == b.steps
        assert normalize_pids(a.trace) == normalize_pids(b.trace)

        assert {:error, %BugFound{} = c} = Lockstep.check(CounterRace.test_body(:racy), opts)
        assert {:error, %BugFound{} = d} = Lockstep.check(CounterRace.test_body(:racy), opts)
        assert {c.iteration, c.iter_seed, c.schedule} == {d.iteration, d.iter_seed, d.schedule}

        run = fn ->
          Lockstep.run(CounterRace.test_body(:atomic), Keyword.put(opts, :iterations, 60))
        end

        s1 = run.()
        s2 = run.()

        assert Map.drop(s1, [:elapsed_us]) == Map.drop(s2, [:elapsed_us])
        assert s1.distinct_schedules > 1
      end
    end
  end

  describe "how the PCT variants relate to PCT" do
    # IDPCT with a one-depth range runs exactly PCT at that depth; fair PCT whose switch
    # point is never reached is exactly PCT. Same seed, same schedules.
    for {variant, pct} <- [
          {{:idpct, d_min: 3, d_max: 3}, {:pct, bug_depth: 3}},
          {{:idpct, d_min: 1, d_max: 1}, {:pct, bug_depth: 1}},
          {{:fair_pct, bug_depth: 2, fair_switch: 10_000}, {:pct, bug_depth: 2}}
        ] do
      test "#{inspect(variant)} explores what #{inspect(pct)} explores" do
        dir = tmp_dir!()
        opts = [iterations: 300, seed: 606, trace_dir: dir]

        assert {:error, a} =
                 Lockstep.check(RaceBodies.four_writers(1), [strategy: unquote(variant)] ++ opts)

        assert {:error, b} =
                 Lockstep.check(RaceBodies.four_writers(1), [strategy: unquote(pct)] ++ opts)

        assert {a.iteration, a.iter_seed, a.schedule} == {b.iteration, b.iter_seed, b.schedule}

        summary = fn strategy ->
          Lockstep.run(CounterRace.test_body(:atomic),
            strategy: strategy,
            iterations: 100,
            seed: 606
          )
          |> Map.take([:iterations, :steps, :distinct_schedules, :context_switches])
        end

        assert summary.(unquote(variant)) == summary.(unquote(pct))
      end
    end

    test "fair PCT diverges from PCT once its switch point is passed" do
      dir = tmp_dir!()
      opts = [iterations: 300, seed: 606, trace_dir: dir]

      run = fn strategy ->
        Lockstep.run(CounterRace.test_body(:atomic), [strategy: strategy] ++ opts)
        |> Map.take([:steps, :distinct_schedules, :context_switches])
      end

      assert run.({:fair_pct, bug_depth: 3, fair_switch: 1}) != run.({:pct, bug_depth: 3})
    end
  end

  describe "replay reproduces a saved failure with the identical schedule" do
    for strategy <- @strategies do
      test "#{inspect(strategy)}" do
        dir = tmp_dir!()
        strategy = unquote(strategy)

        for body <- [CounterRace.test_body(:racy), RaceBodies.four_writers(1)] do
          assert {:error, %BugFound{} = bug} =
                   Lockstep.check(body,
                     strategy: strategy,
                     iterations: 300,
                     seed: 99,
                     trace_dir: dir
                   )

          replayed = assert_raise BugFound, fn -> Lockstep.replay(body, bug.trace_path) end

          assert replayed.schedule == bug.schedule
          assert replayed.kind == bug.kind
          assert replayed.process == bug.process
          assert replayed.strategy == strategy
          assert replayed.iteration == bug.iteration
          assert replayed.seed == bug.seed
          assert replayed.iter_seed == bug.iter_seed
          assert replayed.fail_step == bug.fail_step
          assert normalize_pids(replayed.trace) == normalize_pids(bug.trace)
        end
      end
    end
  end
end
