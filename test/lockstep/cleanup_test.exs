defmodule Lockstep.CleanupTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.BugFound
  alias Lockstep.Examples.CounterRace
  import Lockstep.TestSupport

  # Every managed process of these bodies sends `{:managed, self()}` to the test process
  # first thing, so the test knows every pid the run created.
  defp report(test_pid), do: Lockstep.send(test_pid, {:managed, self()})

  defp assert_all_dead(pids) do
    assert pids != []

    for pid <- pids do
      refute Process.alive?(pid), "managed process #{inspect(pid)} outlived the run"
    end
  end

  defp forever_server(test_pid) do
    fn ->
      report(test_pid)
      server_loop()
    end
  end

  defp server_loop do
    Lockstep.receive do
      {:ping, from} ->
        Lockstep.send(from, :pong)
        server_loop()
    end
  end

  test "after a passing run (blocked servers left behind are killed)" do
    test_pid = self()

    summary =
      Lockstep.run(
        fn ->
          report(test_pid)
          me = self()
          server = Lockstep.spawn(forever_server(test_pid))
          # Spawned, and maybe never started before the root returns.
          Lockstep.spawn(fn -> report(test_pid) && Lockstep.recv() end)
          Lockstep.send(server, {:ping, me})
          :pong = Lockstep.recv()
          :ok
        end,
        iterations: 20,
        seed: 9
      )

    assert summary.iterations == 20
    pids = collect_pids(:managed)
    # Root, server and the third process report in every iteration: processes that can
    # still run when the root returns are run before the iteration ends.
    assert length(pids) == 60
    assert_all_dead(pids)
  end

  test "after a failing run (the root raises while children are blocked)" do
    dir = tmp_dir!()
    test_pid = self()

    assert {:error, %BugFound{kind: :exception}} =
             Lockstep.check(
               fn ->
                 report(test_pid)
                 me = self()
                 server = Lockstep.spawn(forever_server(test_pid))
                 Lockstep.spawn(fn -> report(test_pid) && Lockstep.recv() end)
                 Lockstep.send(server, {:ping, me})
                 :pong = Lockstep.recv()
                 raise "root fails with children alive"
               end,
               iterations: 5,
               seed: 9,
               trace_dir: dir
             )

    # One iteration, run twice (search + capture).
    assert_all_dead(collect_pids(:managed))
  end

  test "after a failing run (a child crashes while others run)" do
    dir = tmp_dir!()
    test_pid = self()

    assert {:error, %BugFound{kind: :crash}} =
             Lockstep.check(
               fn ->
                 report(test_pid)
                 Lockstep.spawn(forever_server(test_pid))

                 Lockstep.spawn(fn ->
                   report(test_pid)
                   raise "child crash"
                 end)

                 Lockstep.recv()
               end,
               iterations: 5,
               seed: 9,
               trace_dir: dir
             )

    assert_all_dead(collect_pids(:managed))
  end

  test "after a deadlock" do
    dir = tmp_dir!()

    assert {:error, %BugFound{kind: :deadlock} = bug} =
             Lockstep.check(call_cycle(self()), iterations: 5, seed: 9, trace_dir: dir)

    pids = collect_pids(:managed)
    # Root, P.1 and P.2, in the search and in the capture re-run.
    assert length(pids) == 6
    assert_all_dead(pids)
    assert_all_dead(Enum.map(bug.details, & &1.pid))
  end

  test "after a :stuck run" do
    dir = tmp_dir!()
    test_pid = self()

    assert {:error, %BugFound{kind: :stuck}} =
             Lockstep.check(
               fn ->
                 report(test_pid)
                 Lockstep.spawn(forever_server(test_pid))

                 Lockstep.spawn(fn ->
                   report(test_pid)
                   # Blocked in code Lockstep does not control.
                   receive do
                     :never -> :ok
                   end
                 end)

                 Lockstep.recv()
               end,
               iterations: 3,
               seed: 9,
               timeout: 200,
               trace_dir: dir
             )

    assert_all_dead(collect_pids(:managed))
  end

  test "after a :max_steps iteration" do
    test_pid = self()

    assert {:error, %Lockstep.InconclusiveError{max_steps_hit: 4}} =
             Lockstep.check(
               fn ->
                 report(test_pid)
                 Lockstep.spawn(forever_server(test_pid))
                 spin_yield()
               end,
               iterations: 4,
               seed: 9,
               max_steps: 50
             )

    assert_all_dead(collect_pids(:managed))
  end

  test "after a hand-driven controller iteration" do
    test_pid = self()
    {:ok, ctl} = Lockstep.Controller.start_link(seed: 3)

    Lockstep.Controller.spawn_root(ctl, fn ->
      report(test_pid)
      Lockstep.spawn(forever_server(test_pid))
      :ok
    end)

    assert %{kind: :pass} = Lockstep.Controller.await_done(ctl)
    assert_all_dead(collect_pids(:managed))
    GenServer.stop(ctl)
  end

  test "concurrent runs do not interfere" do
    dir = tmp_dir!()
    seeds = [101, 202, 303, 404]

    racy = fn seed ->
      Lockstep.check(CounterRace.test_body(:racy),
        iterations: 300,
        seed: seed,
        trace_dir: Path.join(dir, "racy#{seed}")
      )
    end

    atomic = fn seed ->
      Lockstep.check(CounterRace.test_body(:atomic), iterations: 200, seed: seed)
    end

    # What each run gives on its own...
    alone = for seed <- seeds, do: {racy.(seed), atomic.(seed)}

    # ...and all eight at once.
    tasks =
      for seed <- seeds do
        {Task.async(fn -> racy.(seed) end), Task.async(fn -> atomic.(seed) end)}
      end

    together = for {t1, t2} <- tasks, do: {Task.await(t1, 30_000), Task.await(t2, 30_000)}

    for {{{:error, bug_alone}, {:ok, sum_alone}}, {{:error, bug}, {:ok, sum}}, seed} <-
          Enum.zip([alone, together, seeds]) do
      assert bug.kind == :exception
      assert bug.seed == seed
      {:error, %RuntimeError{message: msg}, _} = bug.reason
      assert msg =~ "lost update"
      # Same seed, same failure, whether or not other runs share the VM.
      assert bug.iteration == bug_alone.iteration
      assert bug.iter_seed == bug_alone.iter_seed
      assert bug.schedule == bug_alone.schedule
      assert normalize_pids(bug.trace) == normalize_pids(bug_alone.trace)

      assert sum.iterations == 200
      assert sum.seed == seed
      assert sum.distinct_schedules == sum_alone.distinct_schedules
      assert sum.steps == sum_alone.steps
    end

    # Every result had a match above; make sure the zip did not silently drop any.
    assert length(together) == 4
    assert Enum.all?(together, &match?({{:error, _}, {:ok, _}}, &1))
  end

  defp spin_yield do
    Lockstep.yield()
    spin_yield()
  end
end

defmodule Lockstep.CleanupSyncTest do
  # Not async: it counts every process in the VM, so no other test may run beside it.
  use ExUnit.Case, async: false

  alias Lockstep.Examples.CounterRace
  import Lockstep.TestSupport

  test "the VM's process count returns to its baseline" do
    dir = tmp_dir!()
    before = length(Process.list())

    for _ <- 1..3 do
      assert {:error, _} =
               Lockstep.check(CounterRace.test_body(:racy, 3),
                 iterations: 50,
                 seed: 1,
                 trace_dir: dir
               )

      assert {:ok, _} = Lockstep.check(CounterRace.test_body(:atomic, 3), iterations: 50, seed: 1)

      assert {:error, _} = Lockstep.check(call_cycle(), iterations: 5, seed: 1, trace_dir: dir)
    end

    # Each iteration creates 5 processes (root, counter, three clients); a leak would show.
    assert eventually(fn -> length(Process.list()) <= before end),
           "#{length(Process.list()) - before} processes more than before the runs"
  end
end
