defmodule Lockstep.OwnerDeathTest do
  # Killing the process that called Lockstep.run/2 (what ExUnit's test timeout does) must
  # take the whole run with it: every managed process, whatever it is doing, its
  # persistent_term keys and the NIF session. Not async: it counts the VM's live sessions,
  # so no other run may start beside it.
  use ExUnit.Case, async: false

  require Lockstep
  import Lockstep.TestSupport

  # Busy without ever reaching a sync point.
  defp busy(n), do: busy(n + 1)

  defp report(test_pid), do: send(test_pid, {:managed, self()})

  defp yield_forever do
    Lockstep.yield()
    yield_forever()
  end

  # Starts `Lockstep.run(body)` in a process of its own, waits until `expected` managed
  # processes have reported (and for `extra` more messages), kills that owner, and returns
  # the managed pids.
  defp kill_owner_after(body, expected, extra \\ []) do
    opts = [iterations: 1, seed: 1, timeout: 60_000, strategy: :random]
    owner = spawn(fn -> Lockstep.run(body, opts) end)
    pids = for _ <- 1..expected, do: assert_receive({:managed, pid}, 2_000) && pid

    for message <- extra, do: assert_receive(^message, 2_000)

    # Let everyone reach where they are going (spinning, parked, a bare receive).
    Process.sleep(50)
    assert Enum.all?(pids, &Process.alive?/1)
    Process.exit(owner, :kill)
    pids
  end

  defp assert_all_die(pids) do
    assert eventually(fn -> not Enum.any?(pids, &Process.alive?/1) end, 2_000),
           "managed processes outlived their owner: " <>
             inspect(Enum.filter(pids, &Process.alive?/1))
  end

  defp assert_sessions_freed(before) do
    assert eventually(
             fn ->
               :erlang.garbage_collect()
               Lockstep.Session.live_sessions() <= before
             end,
             2_000
           ),
           "#{Lockstep.Session.live_sessions() - before} NIF session(s) still alive"
  end

  test "a root spinning without sync points dies with its owner" do
    test_pid = self()
    before = Lockstep.Session.live_sessions()

    pids =
      kill_owner_after(
        fn ->
          report(test_pid)
          busy(0)
        end,
        1
      )

    assert_all_die(pids)
    assert_sessions_freed(before)
  end

  test "processes in a bare receive, blocked in Lockstep.receive or parked all die" do
    test_pid = self()
    before = Lockstep.Session.live_sessions()

    body = fn ->
      report(test_pid)
      root = self()

      # Blocked in Lockstep.receive, waiting for a message that never comes.
      Lockstep.spawn(fn ->
        report(test_pid)
        Lockstep.send(root, :started)
        Lockstep.receive(do: (:never -> :ok))
      end)

      # Parked between sync points whenever it is not its turn.
      Lockstep.spawn(fn ->
        report(test_pid)
        Lockstep.send(root, :started)
        yield_forever()
      end)

      Lockstep.receive(do: (:started -> :ok))
      Lockstep.receive(do: (:started -> :ok))

      # The root waits outside Lockstep's control.
      receive do
        :never -> :ok
      end
    end

    pids = kill_owner_after(body, 3)
    assert_all_die(pids)
    assert_sessions_freed(before)
  end

  test "persistent_term keys stored through Lockstep.PersistentTerm are erased" do
    test_pid = self()
    key = {:owner_death, make_ref()}
    before = Lockstep.Session.live_sessions()

    mine = fn ->
      for {{Lockstep.PersistentTerm, _run, _node, ^key} = k, _} <- :persistent_term.get(),
          do: k
    end

    pids =
      kill_owner_after(
        fn ->
          report(test_pid)
          Lockstep.PersistentTerm.put(key, :stored)
          send(test_pid, :stored)
          busy(0)
        end,
        1,
        [:stored]
      )

    assert [_] = mine.()
    assert_all_die(pids)
    assert eventually(fn -> mine.() == [] end, 2_000), "persistent_term keys left behind"
    assert_sessions_freed(before)
  end

  test "an owner killed between iterations leaves nothing either" do
    test_pid = self()
    before = Lockstep.Session.live_sessions()

    owner =
      spawn(fn ->
        Lockstep.run(fn -> report(test_pid) end, iterations: 1_000_000, seed: 1)
      end)

    pids = for _ <- 1..20, do: assert_receive({:managed, pid}, 2_000) && pid
    Process.exit(owner, :kill)
    assert_all_die(pids ++ collect_pids(:managed, 100))
    assert_sessions_freed(before)
  end

  test "a controller killed without terminate/2 takes its iteration with it" do
    test_pid = self()
    before = Lockstep.Session.live_sessions()
    {:ok, ctl} = Lockstep.Controller.start_link(seed: 1)
    Process.unlink(ctl)

    Lockstep.Controller.spawn_root(ctl, fn ->
      report(test_pid)
      busy(0)
    end)

    assert_receive {:managed, root}, 2_000
    Process.exit(ctl, :kill)
    assert_all_die([root])
    assert_sessions_freed(before)
  end

  # The owner can die after a parent spawned a child but before the parent registered the
  # child's pid with the NIF: nobody would ever tell that child to start or to exit.
  test "a process waiting to start whose iteration is over exits by itself" do
    {:ok, ctl} = Lockstep.Controller.start_link(seed: 1)
    Lockstep.Controller.spawn_root(ctl, fn -> :ok end)
    assert %{kind: :pass} = Lockstep.Controller.await_done(ctl)
    %Lockstep.Controller{session: session, tag: tag} = GenServer.call(ctl, :handle)

    test_pid = self()

    orphan =
      spawn(Lockstep.Runtime, :child_entry, [
        session,
        7,
        tag,
        fn -> send(test_pid, :ran) end,
        :undefined,
        test_pid
      ])

    assert eventually(fn -> not Process.alive?(orphan) end, 3_000)
    refute_received :ran
    GenServer.stop(ctl)
  end

  test "a run that ends normally stops its watcher: no process is left" do
    before = length(Process.list())

    for _ <- 1..5 do
      Lockstep.run(fn -> Lockstep.spawn(fn -> Lockstep.recv() end) end, iterations: 3)
    end

    assert eventually(fn -> length(Process.list()) <= before end)
  end

  test "an owner killed while the report re-runs the failing iteration leaves nothing" do
    # The failing iteration is run once more to build the report: killed then, the owner
    # must still take that run with it (the janitor covers the report too).
    test_pid = self()
    before = Lockstep.Native.live_sessions()
    runs = :counters.new(1, [])

    body = fn ->
      :counters.add(runs, 1, 1)

      if :counters.get(runs, 1) == 1 do
        raise "first run fails"
      else
        # the re-run, building the report: stays in code Lockstep does not control
        report(test_pid)
        busy(0)
      end
    end

    dir = tmp_dir!()

    owner =
      spawn(fn ->
        Lockstep.check(body, iterations: 1, seed: 1, timeout: 60_000, trace_dir: dir)
      end)

    pid = assert_receive({:managed, pid}, 2_000) && pid
    Process.exit(owner, :kill)
    assert_all_die([pid])
    assert_sessions_freed(before)
  end
end
