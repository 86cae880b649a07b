defmodule Lockstep.DeterminismTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{BugFound, ReplayDivergence, TraceError, TraceFile}
  alias Lockstep.Examples.CounterRace
  import Lockstep.TestSupport

  describe "the same seed gives the same failure" do
    for strategy <- [:pct, :random] do
      test "pid-free program, exact traces (#{inspect(strategy)})" do
        dir = tmp_dir!()
        opts = [strategy: unquote(strategy), iterations: 300, seed: 4242, trace_dir: dir]

        assert {:error, %BugFound{} = a} = Lockstep.check(ordering_race(), opts)
        assert {:error, %BugFound{} = b} = Lockstep.check(ordering_race(), opts)

        assert a.kind == :exception
        assert a.iteration == b.iteration
        assert a.iter_seed == b.iter_seed
        assert a.fail_step == b.fail_step
        assert a.steps == b.steps
        assert a.schedule == b.schedule
        # No pid travels in this program's payloads: traces compare exactly, reasons and
        # stacktraces included.
        assert a.trace == b.trace
        assert a.reason == b.reason
        assert length(a.trace) > 5
      end

      test "counter race, traces equal up to pid renaming (#{inspect(strategy)})" do
        dir = tmp_dir!()
        opts = [strategy: unquote(strategy), iterations: 300, seed: 777, trace_dir: dir]

        assert {:error, %BugFound{} = a} = Lockstep.check(CounterRace.test_body(:racy), opts)
        assert {:error, %BugFound{} = b} = Lockstep.check(CounterRace.test_body(:racy), opts)

        assert a.iteration == b.iteration
        assert a.iter_seed == b.iter_seed
        assert a.schedule == b.schedule
        assert a.fail_step == b.fail_step
        # Payloads carry real pids ({:get, pid}), which differ between runs; everything else
        # must be identical event for event.
        assert normalize_pids(a.trace) == normalize_pids(b.trace)
        assert length(a.trace) == length(b.trace)
      end
    end

    test "the iteration seeds depend on the top-level seed" do
      dir = tmp_dir!()

      assert {:error, a} =
               Lockstep.check(ordering_race(), seed: 1, iterations: 300, trace_dir: dir)

      assert {:error, b} =
               Lockstep.check(ordering_race(), seed: 2, iterations: 300, trace_dir: dir)

      assert a.iter_seed != b.iter_seed
    end
  end

  describe "different seeds explore different schedules" do
    test "a racy-but-passing program has many distinct schedules in one run" do
      for strategy <- [:pct, :random] do
        summary =
          Lockstep.run(CounterRace.test_body(:atomic),
            strategy: strategy,
            iterations: 100,
            seed: 8
          )

        assert summary.distinct_schedules > 1
        assert summary.distinct_schedules <= summary.iterations
      end
    end

    test "iterations with different seeds take different schedules" do
      schedules =
        for seed <- 1..12 do
          {:ok, ctl} = Lockstep.Controller.start_link(strategy: :random, seed: seed)
          Lockstep.Controller.spawn_root(ctl, CounterRace.test_body(:atomic))
          result = Lockstep.Controller.await_done(ctl)
          assert result.kind == :pass
          GenServer.stop(ctl)
          result.schedule
        end

      assert length(Enum.uniq(schedules)) > 1

      # ...while one seed always gives one schedule.
      again =
        for _ <- 1..3 do
          {:ok, ctl} = Lockstep.Controller.start_link(strategy: :random, seed: 5)
          Lockstep.Controller.spawn_root(ctl, CounterRace.test_body(:atomic))
          result = Lockstep.Controller.await_done(ctl)
          GenServer.stop(ctl)
          result.schedule
        end

      assert [_] = Enum.uniq(again)
      assert hd(again) == Enum.at(schedules, 4)
    end
  end

  describe "replay" do
    test "replaying the saved trace file raises the same BugFound" do
      dir = tmp_dir!()
      body = CounterRace.test_body(:racy)

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(body, iterations: 300, seed: 31, trace_dir: dir)

      assert File.regular?(bug.trace_path)

      replayed = assert_raise BugFound, fn -> Lockstep.replay(body, bug.trace_path) end

      assert replayed.kind == bug.kind
      assert replayed.process == bug.process
      assert replayed.schedule == bug.schedule
      assert replayed.iteration == bug.iteration
      assert replayed.seed == bug.seed
      assert replayed.iter_seed == bug.iter_seed
      assert replayed.strategy == bug.strategy
      assert replayed.fail_step == bug.fail_step
      assert normalize_pids(replayed.trace) == normalize_pids(bug.trace)
      assert {:error, %RuntimeError{message: msg}, _} = replayed.reason
      assert msg =~ "lost update"
    end

    test "replay reproduces delayed-delivery and random decisions" do
      dir = tmp_dir!()

      body = fn ->
        root = self()
        pick = Lockstep.random(3)

        for n <- 1..2 do
          Lockstep.spawn(fn -> Lockstep.send(root, {n, pick}) end)
        end

        got = [Lockstep.recv(), Lockstep.recv()]
        if got == [{2, 2}, {1, 2}], do: raise("late first with #{pick}")
        :ok
      end

      assert {:error, bug} =
               Lockstep.check(body, delivery: :delayed, iterations: 400, seed: 3, trace_dir: dir)

      assert {:random, 2} in bug.schedule
      assert Enum.any?(bug.schedule, &match?({:deliver, _, "P"}, &1))

      replayed = assert_raise BugFound, fn -> Lockstep.replay(body, bug.trace_path) end
      assert replayed.kind == :exception
      assert replayed.schedule == bug.schedule
      assert replayed.trace == bug.trace
    end

    test "replay of a changed program raises ReplayDivergence with step, expected and got" do
      dir = tmp_dir!()

      assert {:error, bug} =
               Lockstep.check(CounterRace.test_body(:racy),
                 iterations: 300,
                 seed: 31,
                 trace_dir: dir
               )

      # Same shape at first (counter + clients) but three clients instead of two.
      changed = CounterRace.test_body(:racy, 3)

      err = assert_raise ReplayDivergence, fn -> Lockstep.replay(changed, bug.trace_path) end
      assert is_integer(err.step) and err.step >= 1
      assert err.step <= length(bug.schedule) + 1
      assert is_list(err.got)
      assert err.expected == nil or err.expected in bug.schedule
      assert err.expected != nil or err.got != []
      refute err.expected in err.got
      assert err.path == bug.trace_path

      # A program that does nothing at all diverges too (the schedule is not used up).
      err2 =
        assert_raise ReplayDivergence, fn -> Lockstep.replay(fn -> :ok end, bug.trace_path) end

      assert is_integer(err2.step)
      assert err2.expected in bug.schedule
    end

    test "a divergence where the program ends early names the first step not taken" do
      dir = tmp_dir!()

      # Schedule: step 1 runs P (it starts and yields), step 2 runs P again (it raises).
      assert {:error, bug} =
               Lockstep.check(
                 fn ->
                   Lockstep.yield()
                   raise "second step"
                 end,
                 iterations: 1,
                 seed: 1,
                 trace_dir: dir
               )

      assert bug.schedule == [{:run, "P"}, {:run, "P"}]

      # This program follows step 1 and then ends: the schedule's decision for step 2 is
      # what it no longer follows.
      err =
        assert_raise ReplayDivergence, fn -> Lockstep.replay(fn -> :ok end, bug.trace_path) end

      assert err.expected == {:run, "P"}
      assert err.got == []
      assert err.step == 2
    end

    test "a divergence in the middle names the step, the decision and what was offered" do
      dir = tmp_dir!()

      original = fn ->
        Lockstep.yield()
        Lockstep.yield()
        raise "third step"
      end

      assert {:error, bug} = Lockstep.check(original, iterations: 1, seed: 1, trace_dir: dir)
      assert bug.schedule == [{:run, "P"}, {:run, "P"}, {:run, "P"}]

      # Step 1 starts P, step 2 performs its spawn; then P waits in recv with nothing to
      # receive, so at step 3 only P.1 can run while the schedule says P.
      changed = fn ->
        Lockstep.spawn(fn -> :ok end)
        Lockstep.recv()
      end

      err = assert_raise ReplayDivergence, fn -> Lockstep.replay(changed, bug.trace_path) end
      assert err.step == 3
      assert err.expected == {:run, "P"}
      assert err.got == [{:run, "P.1"}]
      assert Exception.message(err) =~ "step 3"
    end

    test "nondeterminism Lockstep does not control is reported on the BugFound" do
      dir = tmp_dir!()
      calls = :counters.new(1, [])

      # Fails only the very first time it runs: the capture re-run of the failing schedule
      # then behaves differently.
      body = fn ->
        :counters.add(calls, 1, 1)
        if :counters.get(calls, 1) == 1, do: raise("first run only")
        Lockstep.yield()
      end

      assert {:error, bug} = Lockstep.check(body, iterations: 5, seed: 1, trace_dir: dir)
      assert bug.kind == :exception
      assert bug.iteration == 1
      assert is_binary(bug.nondeterminism)
      assert bug.nondeterminism =~ "nondeterminism"
      assert {:error, %RuntimeError{message: "first run only"}, _} = bug.reason
      assert Exception.message(bug) =~ "WARNING"
    end

    test "the trace file is versioned and self-describing" do
      dir = tmp_dir!()

      assert {:error, bug} =
               Lockstep.check(ordering_race(),
                 iterations: 100,
                 seed: 61,
                 strategy: {:pct, bug_depth: 2},
                 delivery: :delayed,
                 max_steps: 500,
                 trace_dir: dir
               )

      # An envelope listing the atoms the payload needs, then the payload.
      assert {:lockstep_trace, 2, atoms, payload} =
               bug.trace_path |> File.read!() |> :erlang.binary_to_term([:safe])

      assert is_list(atoms) and Enum.all?(atoms, &is_binary/1)
      data = :erlang.binary_to_term(payload, [:safe])
      assert %{format: :lockstep_trace, version: 2} = data
      assert TraceFile.load!(bug.trace_path).schedule == data.schedule
      assert is_binary(data.lockstep_version)
      assert data.kind == :exception
      assert data.seed == 61
      assert data.iteration == bug.iteration
      assert data.iter_seed == bug.iter_seed
      assert data.strategy == {:pct, [bug_depth: 2]}
      assert data.schedule == bug.schedule
      assert data.options[:delivery] == :delayed
      assert data.options[:max_steps] == 500
      assert length(data.events) == length(bug.trace)
      assert Enum.map(data.events, &elem(&1, 0)) == Enum.map(bug.trace, &elem(&1, 0))
    end

    test "the report shows what failed, then seed/iteration/strategy, the trace, the replay command" do
      dir = tmp_dir!()

      assert {:error, bug} =
               Lockstep.check(ordering_race(), iterations: 100, seed: 5, trace_dir: dir)

      message = Exception.message(bug)

      positions =
        for fragment <- [
              "out of order",
              "seed: 5",
              "iteration: #{bug.iteration}",
              "strategy: :pct",
              "starts",
              "Lockstep.replay(",
              inspect(bug.trace_path)
            ] do
          {index, _} = :binary.match(message, fragment)
          index
        end

      assert positions == Enum.sort(positions)
    end

    test "a failure before the schedule's end is a divergence, not the recorded bug" do
      dir = tmp_dir!()

      assert {:error, bug} =
               Lockstep.check(ordering_race(), iterations: 100, seed: 5, trace_dir: dir)

      error =
        assert_raise ReplayDivergence, fn ->
          Lockstep.replay(fn -> raise "another failure" end, bug.trace_path)
        end

      assert error.step == 2
      assert error.expected == Enum.at(bug.schedule, 1)
      assert error.got == []
      assert error.ended_by =~ ":exception of P at step 1: ** (RuntimeError) another failure"
      assert Exception.message(error) =~ "but the program had ended, by :exception of P"
    end

    test "a divergence names the trace's step, also after a Lockstep.random draw" do
      dir = tmp_dir!()

      drawn = fn ->
        x = Lockstep.random(10)
        Lockstep.yield()
        if x == 8, do: raise("eight")
      end

      {:error, bug} = Lockstep.check(drawn, strategy: :random, iterations: 500, trace_dir: dir)
      # Step 1 starts P, step 2 draws (a decision inside the step), step 3 raises.
      assert [{:run, "P"}, {:run, "P"}, {:random, 8}, {:run, "P"}] = bug.schedule
      assert bug.fail_step == 3

      # Fails in step 2, right after the draw: the schedule's last decision is left.
      error =
        assert_raise ReplayDivergence, fn ->
          Lockstep.replay(fn -> Lockstep.random(10) && raise("sooner") end, bug.trace_path)
        end

      assert error.step == 3
      assert error.expected == {:run, "P"}
      assert error.ended_by =~ ":exception of P at step 2: ** (RuntimeError) sooner"
      assert {2, {:random, "P", 10, 8}} in error.events

      # Fails in step 2 before drawing: the draw is the decision left, in that step.
      error =
        assert_raise ReplayDivergence, fn ->
          Lockstep.replay(fn -> Lockstep.yield() && raise("sooner") end, bug.trace_path)
        end

      assert error.step == 2
      assert error.expected == {:random, 8}
      assert error.ended_by =~ ":exception of P at step 2"
    end

    test "a missing trace file raises TraceError" do
      dir = tmp_dir!()
      path = Path.join(dir, "nope.lockstep")

      err = assert_raise TraceError, fn -> Lockstep.replay(fn -> :ok end, path) end
      assert err.path == path
    end

    test "a corrupt trace file raises TraceError" do
      dir = tmp_dir!()
      path = Path.join(dir, "corrupt.lockstep")
      :rand.seed(:exsss, {1, 2, 3})
      # Random bytes; the first byte is not 131, the external term format's version tag.
      bytes = <<7>> <> :rand.bytes(255)
      File.write!(path, bytes)

      err = assert_raise TraceError, fn -> Lockstep.replay(fn -> :ok end, path) end
      assert err.path == path

      # A valid term that is not a Lockstep trace.
      other = Path.join(dir, "other.lockstep")
      File.write!(other, :erlang.term_to_binary({:hello, [1, 2, 3]}))
      assert_raise TraceError, fn -> Lockstep.replay(fn -> :ok end, other) end

      # A truncated real trace file.
      assert {:error, bug} =
               Lockstep.check(ordering_race(), iterations: 100, seed: 1, trace_dir: dir)

      full = File.read!(bug.trace_path)
      truncated = Path.join(dir, "truncated.lockstep")
      File.write!(truncated, binary_part(full, 0, div(byte_size(full), 2)))
      assert_raise TraceError, fn -> Lockstep.replay(ordering_race(), truncated) end
    end

    test "a trace file of a foreign version raises TraceError" do
      dir = tmp_dir!()
      path = Path.join(dir, "future.lockstep")
      File.write!(path, :erlang.term_to_binary(%{format: :lockstep_trace, version: 999}))

      err = assert_raise TraceError, fn -> Lockstep.replay(fn -> :ok end, path) end
      assert err.path == path
      assert Exception.message(err) =~ "999"
    end
  end
end
