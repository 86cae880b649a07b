defmodule Lockstep.ExhaustiveParallelTest do
  # `strategy: :exhaustive` with `workers: n` (SPEC §11): the workers run the one search's
  # executions, so what it explores, counts and reports is what `workers: 1` does.
  use ExUnit.Case, async: true
  require Lockstep

  alias Lockstep.Examples.{BankAccount, CounterRace}

  @moduletag timeout: 120_000

  defp table(value), do: Lockstep.TestSupport.key_table(value)
  defp readers(tab, n), do: Lockstep.TestSupport.readers_and_writer(tab, n)

  test "one writer and N readers: 2^N interleavings in total, whatever the workers" do
    tab = table(0)

    for n <- [3, 6], workers <- [2, 3], dpor <- [:optimal, :source] do
      opts = [strategy: {:exhaustive, dpor: dpor}]
      {:ok, one} = Lockstep.check(readers(tab, n), opts)
      {:ok, many} = Lockstep.check(readers(tab, n), opts ++ [workers: workers])

      assert many.complete, "#{n} readers, #{workers} workers, #{dpor}"
      assert many.iterations == one.iterations
      assert many.sleep_blocked == one.sleep_blocked
      if dpor == :optimal, do: assert(many.iterations == Integer.pow(2, n))
      assert to_string(many) == "verified: all #{one.iterations} interleavings explored, no bug"

      assert length(many.per_worker) == workers
      runs = many.per_worker |> Enum.map(& &1.iterations) |> Enum.sum()
      assert runs >= many.iterations
    end
  end

  test "the work is spread: every worker runs some of the executions" do
    tab = table(0)

    # Whether the second worker gets going before the first is done depends on the
    # machine: a sleeping scheduler can take milliseconds to wake on a loaded virtual
    # machine. 512 executions take tens of milliseconds; three tries at most.
    per_worker =
      Enum.reduce_while(1..3, nil, fn _try, _ ->
        {:ok, summary} = Lockstep.check(readers(tab, 9), strategy: :exhaustive, workers: 2)
        assert summary.iterations == 512 and summary.complete

        if Enum.all?(summary.per_worker, &(&1.iterations > 0)),
          do: {:halt, summary.per_worker},
          else: {:cont, summary.per_worker}
      end)

    assert Enum.all?(per_worker, &(&1.iterations > 0)), inspect(per_worker)
  end

  test "the bug reported is the one workers: 1 reports, at the same iteration" do
    {:error, one} = Lockstep.check(CounterRace.test_body(:racy), strategy: :exhaustive)

    for workers <- [2, 3], _again <- 1..2 do
      {:error, bug} =
        Lockstep.check(CounterRace.test_body(:racy), strategy: :exhaustive, workers: workers)

      assert bug.iteration == one.iteration
      assert bug.schedule == one.schedule
      assert bug.kind == one.kind
      assert Exception.message(bug) =~ "Replay"
    end
  end

  test "an unmodified GenServer's race is found, and its fix verified, on two workers" do
    opts = [instrument: [BankAccount, BankAccount.Test], strategy: :exhaustive, workers: 2]

    assert {:error, %Lockstep.BugFound{kind: :exception} = bug} =
             Lockstep.check(&BankAccount.Test.racy/0, opts)

    assert Exception.message(bug) =~ "overdrawn"
    {:ok, one} = Lockstep.check(&BankAccount.Test.atomic/0, Keyword.put(opts, :workers, 1))
    {:ok, many} = Lockstep.check(&BankAccount.Test.atomic/0, opts)
    assert many.complete and many.iterations == one.iterations
  end

  test "a bug found on several workers replays from its trace file" do
    dir = Lockstep.TestSupport.tmp_dir!("ls_exhaustive_parallel")

    {:error, bug} =
      Lockstep.check(&CounterRace.racy/0, strategy: :exhaustive, workers: 2, trace_dir: dir)

    replayed =
      assert_raise Lockstep.BugFound, fn ->
        Lockstep.replay(&CounterRace.racy/0, bug.trace_path)
      end

    assert replayed.schedule == bug.schedule
    assert replayed.kind == bug.kind
  end

  test "iterations caps the interleavings of all workers together" do
    tab = table(0)

    {:ok, summary} =
      Lockstep.check(readers(tab, 6), strategy: :exhaustive, workers: 2, iterations: 10)

    assert summary.iterations == 10
    refute summary.complete
    assert to_string(summary) =~ "not complete: 10 interleavings explored"
  end

  test "kills make the search start over with sleep sets alone, on several workers too" do
    body = fn ->
      me = self()
      a = Lockstep.spawn(fn -> Lockstep.register(:name, self()) end)
      Lockstep.spawn(fn -> Lockstep.exit(a, :kill) end)
      Lockstep.spawn(fn -> Lockstep.send(me, Lockstep.whereis(:name) != nil) end)
      Lockstep.recv()
    end

    {:ok, one} = Lockstep.check(body, strategy: :exhaustive)
    {:ok, many} = Lockstep.check(body, strategy: :exhaustive, workers: 2)
    assert many.complete and many.iterations == one.iterations
  end

  test "a deadlock and a crash are found on two workers as on one" do
    deadlock = fn ->
      me = self()
      a = Lockstep.spawn(fn -> Lockstep.receive(do: (:go -> Lockstep.send(me, :done))) end)
      Lockstep.spawn(fn -> if Lockstep.random(2) == 1, do: Lockstep.send(a, :go) end)
      Lockstep.recv()
    end

    crash = fn ->
      tab = :ets.new(:crash_parallel, [:public])
      Lockstep.ETS.insert(tab, {:k, 0})

      for _ <- 1..2 do
        Lockstep.spawn(fn ->
          [{:k, v}] = Lockstep.ETS.lookup(tab, :k)
          Lockstep.ETS.insert(tab, {:k, v + 1})
        end)
      end

      Lockstep.spawn(fn ->
        [{:k, v}] = Lockstep.ETS.lookup(tab, :k)
        if v == 1, do: raise("saw one increment")
      end)
    end

    for body <- [deadlock, crash] do
      {:error, one} = Lockstep.check(body, strategy: :exhaustive)
      {:error, two} = Lockstep.check(body, strategy: :exhaustive, workers: 2)
      assert {two.kind, two.iteration, two.schedule} == {one.kind, one.iteration, one.schedule}
    end
  end

  test "the summary counts the search's interleavings only, as workers: 1 does" do
    spin = fn spin -> Lockstep.yield() && spin.(spin) end

    body = fn ->
      a = Lockstep.spawn(fn -> if Lockstep.random(3) == 0, do: spin.(spin) end)
      b = Lockstep.spawn(fn -> Lockstep.random(2) end)
      {a, b}
    end

    opts = [strategy: :exhaustive, max_steps: 40]
    {:ok, one} = Lockstep.check(body, opts)
    {:ok, two} = Lockstep.check(body, opts ++ [workers: 2])
    assert one.max_steps_hit > 0 and one.max_steps_hit < one.iterations

    for key <- [:iterations, :max_steps_hit, :steps, :distinct_schedules, :outcomes, :complete] do
      assert Map.fetch!(two, key) == Map.fetch!(one, key), "#{key}"
    end

    # Complete, but not verified past the cut.
    assert to_string(two) =~ "cut short by :max_steps: verified only up to that many steps"
    refute to_string(two) =~ "verified: all"
  end

  test "a monitor the caller holds does not stop the workers" do
    pid = spawn(fn -> :ok end)
    ref = Process.monitor(pid)
    tab = table(0)
    {:ok, summary} = Lockstep.check(readers(tab, 5), strategy: :exhaustive, workers: 2)
    assert summary.complete
    assert_received {:DOWN, ^ref, :process, ^pid, _reason}
  end

  test "workers: :auto is accepted" do
    tab = table(0)
    {:ok, summary} = Lockstep.check(readers(tab, 4), strategy: :exhaustive, workers: :auto)
    assert summary.complete and summary.iterations == 16
    assert length(summary.per_worker) == System.schedulers_online()
  end

  test "nodes: is refused with :exhaustive, saying what to use instead" do
    error =
      assert_raise ArgumentError, fn ->
        Lockstep.run(fn -> :ok end, strategy: :exhaustive, nodes: [:"other@127.0.0.1"])
      end

    assert error.message =~ "invalid value for option :nodes"
    assert error.message =~ "workers: n"
  end
end
