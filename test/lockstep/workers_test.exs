defmodule Lockstep.WorkersTest do
  # `workers: n` (SPEC §11): n independent searches at once, the lowest failing iteration
  # reported, deterministic for a seed and worker count.
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{BugFound, Summary}
  alias Lockstep.Examples.CounterRace
  import Lockstep.TestSupport

  # Fails in the iterations whose controlled draw lands below `p` of 1000: under :random
  # the draw depends on the iteration's seed only, so the failing iterations are the same
  # whatever worker runs them.
  defp rare_failure(p) do
    fn ->
      if Lockstep.random(1000) < p, do: raise("rare failure")
    end
  end

  test "the reported bug is the lowest failing iteration, the same as a sequential run's" do
    dir = tmp_dir!()
    opts = [iterations: 2_000, strategy: :random, seed: 424_242, trace_dir: dir]
    {:error, %BugFound{} = sequential} = Lockstep.check(rare_failure(5), opts)

    for workers <- [2, 3] do
      {:error, %BugFound{} = parallel} =
        Lockstep.check(rare_failure(5), Keyword.put(opts, :workers, workers))

      assert parallel.iteration == sequential.iteration, "workers: #{workers}"
      assert parallel.iter_seed == sequential.iter_seed
      assert parallel.schedule == sequential.schedule
      assert parallel.kind == :exception
    end
  end

  test "the same seed and worker count report the same bug, every time (:pct learns per worker)" do
    dir = tmp_dir!()
    opts = [iterations: 500, strategy: :pct, seed: 77, workers: 2, trace_dir: dir]

    bugs =
      for _ <- 1..4 do
        {:error, bug} = Lockstep.check(CounterRace.test_body(:racy), opts)
        {bug.iteration, bug.schedule, normalize_pids(bug.trace)}
      end

    assert length(Enum.uniq(bugs)) == 1
  end

  test "a passing run counts every iteration once, split among the workers" do
    %Summary{} =
      summary = Lockstep.run(CounterRace.test_body(:atomic), iterations: 101, workers: 2)

    assert summary.iterations == 101
    assert [%{worker: 1, iterations: 51}, %{worker: 2, iterations: 50}] = summary.per_worker
    assert Enum.sum(Enum.map(summary.per_worker, & &1.steps)) == summary.steps
    assert summary.distinct_schedules >= 1

    sequential = Lockstep.run(CounterRace.test_body(:atomic), iterations: 101)
    assert sequential.per_worker == []
  end

  test "a caller that traps exits gets no :EXIT from the workers" do
    {:ok, io} = StringIO.open("")
    Process.flag(:trap_exit, true)
    dir = Path.join(System.tmp_dir!(), "lockstep_workers_#{System.unique_integer([:positive])}")

    assert {:ok, _} = Lockstep.check(fn -> Lockstep.random(3) end, iterations: 6, workers: 2)

    assert {:error, _} =
             Lockstep.check(rare_failure(500), iterations: 50, workers: 3, trace_dir: dir)

    # Its "verified" line goes to a device opened before the test trapped exits.
    leader = Process.group_leader()
    Process.group_leader(self(), io)
    exhaustive = Lockstep.check(fn -> Lockstep.random(3) end, strategy: :exhaustive, workers: 2)
    Process.group_leader(self(), leader)
    assert {:ok, %Summary{complete: true}} = exhaustive

    # A linked process's exit signal would be here by now: the workers have returned.
    Process.sleep(20)
    refute_received {:EXIT, _, _}
    File.rm_rf!(dir)
    StringIO.close(io)
  end

  # A model whose step/4 answers neither {:ok, state} nor :error: the check raises out of
  # the worker that ends the iteration.
  defmodule BadModel do
    @behaviour Lockstep.Model
    def init, do: nil
    def step(_state, _op, _arg, _result), do: :bogus
  end

  test "a caller that traps exits gets no :EXIT from a worker that raised" do
    Process.flag(:trap_exit, true)

    body = fn ->
      h = Lockstep.History.new(model: BadModel)
      Lockstep.History.call(h, :op, nil, fn -> :ok end)
    end

    # (Not through ExUnit.CaptureIO: its device is linked to the caller and exits.)
    for strategy <- [:random, :exhaustive] do
      error =
        assert_raise ArgumentError, ~r/step\/4 must return/, fn ->
          Lockstep.check(body, strategy: strategy, iterations: 4, workers: 2)
        end

      assert error.message =~ "BadModel"
    end

    Process.sleep(20)
    refute_received {:EXIT, _, _}
  end

  test "concurrency that escaped control is listed once, as by a sequential run" do
    # Every iteration the root gets a message Lockstep did not send: one finding.
    body = fn ->
      me = self()
      spawn(fn -> send(me, :around_lockstep) end)
      wait_for_mail()
      Lockstep.yield()
    end

    [sequential, parallel] =
      for workers <- [1, 3] do
        {summary, _stderr} =
          ExUnit.CaptureIO.with_io(:stderr, fn ->
            Lockstep.run(body, iterations: 6, workers: workers, seed: 1)
          end)

        summary
      end

    assert [%{iteration: 1, process: "P", messages: [":around_lockstep"]}] =
             sequential.uncontrolled

    assert parallel.uncontrolled == sequential.uncontrolled
    assert parallel.warnings == sequential.warnings
  end

  defp wait_for_mail do
    case Process.info(self(), :message_queue_len) do
      {:message_queue_len, 0} -> wait_for_mail()
      _ -> :ok
    end
  end

  test "workers: :auto is one worker per scheduler" do
    summary = Lockstep.run(fn -> :ok end, iterations: 10, workers: :auto)

    assert length(summary.per_worker) == min(System.schedulers_online(), 10) or
             (System.schedulers_online() == 1 and summary.per_worker == [])
  end

  test "bad worker counts are refused, naming the option" do
    for bad <- [0, -1, 1.5, :many, 10_000] do
      err = assert_raise ArgumentError, fn -> Lockstep.run(fn -> :ok end, workers: bad) end
      assert Exception.message(err) =~ ":workers"
      assert Exception.message(err) =~ ":auto"
    end
  end

  test "a bug found by a worker replays from its trace file" do
    dir = tmp_dir!()
    body = &Lockstep.Examples.CounterRace.racy/0

    {:error, bug} =
      Lockstep.check(body, iterations: 500, seed: 5, workers: 2, trace_dir: dir, strategy: :pct)

    replayed = assert_raise BugFound, fn -> Lockstep.replay(body, bug.trace_path) end
    assert replayed.kind == bug.kind
    assert replayed.schedule == bug.schedule
  end

  test "no managed process and no worker outlives the run, also when the body raises" do
    test_pid = self()

    body = fn ->
      Lockstep.send(test_pid, {:managed, self()})

      child =
        Lockstep.spawn(fn -> Lockstep.send(test_pid, {:managed, self()}) && Lockstep.recv() end)

      Lockstep.send(child, :go)
      # one iteration in 5 raises: 300 iterations all passing is a 1-in-10^29 event
      if Lockstep.random(5) == 0, do: raise("boom")
    end

    {:error, %BugFound{}} =
      Lockstep.check(body, iterations: 300, workers: 2, trace_dir: tmp_dir!(), strategy: :random)

    pids = collect_pids(:managed)
    assert pids != []
    for pid <- pids, do: refute(Process.alive?(pid), "#{inspect(pid)} outlived the run")

    {:links, links} = Process.info(self(), :links)
    assert links == []
  end
end
