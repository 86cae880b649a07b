defmodule Lockstep.RelayTest do
  # Relayed hops (the NIF's `relay.rs`): a forced ping-pong hands the turn on without the
  # engine, which replays the hops at its next call. They must change nothing anyone can
  # see: the same seed takes the same schedules with them and without them (switched off
  # VM-wide, so this module is not async), a bug found after relayed hops is reported and
  # replayed exactly, and a process killed from outside while hops are relayed ends the run
  # as any outside kill does.
  use ExUnit.Case, async: false

  require Lockstep
  alias Lockstep.Session

  setup do
    on_exit(fn -> Session.relay_enabled_for_test(true) end)
  end

  defp with_relay(on?, fun) do
    previous = Session.relay_enabled_for_test(on?)

    try do
      before = Session.relayed_hops()
      {fun.(), Session.relayed_hops() - before}
    after
      Session.relay_enabled_for_test(previous)
    end
  end

  defp echo(n) when n > 0 do
    Lockstep.receive do
      {:ping, from, i} ->
        Lockstep.send(from, {:pong, i})
        echo(n - 1)
    end
  end

  defp echo(0), do: :ok

  defp ping(_peer, 0, acc), do: Enum.reverse(acc)

  defp ping(peer, n, acc) do
    Lockstep.send(peer, {:ping, self(), n})

    Lockstep.receive do
      {:pong, i} -> ping(peer, n - 1, [i | acc])
    end
  end

  # Long forced stretches broken by contested steps: a third process that sometimes runs
  # (a yield, a send into the root's mailbox mid-ping-pong), a spawn, a shared counter.
  defp program(log) do
    fn ->
      me = self()
      counter = :counters.new(1, [])
      peer = Lockstep.spawn(fn -> echo(60) end)

      side =
        Lockstep.spawn(fn ->
          Lockstep.yield()
          :counters.add(counter, 1, 1)
          Lockstep.send(me, {:side, :counters.get(counter, 1)})
        end)

      # contested while `side` runs; once it has ended, its message waits in this
      # mailbox and the hops are not forced (a receive tries the whole mailbox first)
      first = ping(peer, 30, [])

      # asleep through the relayed stretch below: its timer fires only when nothing else
      # can happen (timers: :on_idle), so the hops stay forced
      Lockstep.spawn(fn ->
        Lockstep.sleep(50)
        Lockstep.send(me, :woke)
      end)

      side_seen =
        Lockstep.receive do
          {:side, v} -> v
        end

      # forced: relayed
      Lockstep.yield()
      second = ping(peer, 30, [])

      Lockstep.monitor(side)
      Lockstep.receive(do: (:woke -> :ok))
      Kernel.send(log, {:observed, {first, second, side_seen}})
    end
  end

  defp observed(n), do: for(_ <- 1..n, do: assert_receive({:observed, o}) && o)

  for strategy <- [:random, :pct, :pos, :fair_pct, :idpct] do
    test "the same seed takes the same schedules with relayed hops and without, #{strategy}" do
      opts = [iterations: 40, seed: 11, strategy: unquote(strategy)]
      test = self()
      {on, relayed} = with_relay(true, fn -> Lockstep.run(program(test), opts) end)
      with_relay_on = observed(on.iterations)
      {off, none} = with_relay(false, fn -> Lockstep.run(program(test), opts) end)
      without = observed(off.iterations)

      assert relayed > 0, "no hop was relayed: the test would compare nothing"
      assert none == 0
      assert with_relay_on == without

      for key <- [:iterations, :steps, :distinct_schedules, :context_switches, :outcomes],
          do: assert(Map.fetch!(on, key) == Map.fetch!(off, key), "#{key} differs")
    end
  end

  test "instrumented code's hops are relayed, with the same schedules as without" do
    opts = [
      iterations: 10,
      seed: 8,
      strategy: :pct,
      instrument: [Lockstep.TestSupport.PlainPingPong]
    ]

    body = fn ->
      assert Enum.sum(Lockstep.TestSupport.PlainPingPong.run(100)) == 10_100
    end

    {on, relayed} = with_relay(true, fn -> Lockstep.run(body, opts) end)
    {off, _} = with_relay(false, fn -> Lockstep.run(body, opts) end)
    assert relayed > 0

    for key <- [:iterations, :steps, :distinct_schedules, :context_switches, :outcomes],
        do: assert(Map.fetch!(on, key) == Map.fetch!(off, key), "#{key} differs")
  end

  test "max_steps cuts a relayed ping-pong at the same step as an unrelayed one" do
    body = fn ->
      peer = Lockstep.spawn(fn -> echo(10_000) end)
      ping(peer, 10_000, [])
    end

    opts = [iterations: 3, seed: 4, max_steps: 1_001]
    run = fn -> assert_raise(Lockstep.InconclusiveError, fn -> Lockstep.run(body, opts) end) end
    {on, relayed} = with_relay(true, run)
    {off, _} = with_relay(false, run)
    assert relayed > 0
    assert Exception.message(on) =~ "all 3 iterations hit :max_steps (1001 scheduling steps)"
    assert Exception.message(on) == Exception.message(off)
  end

  # A bug after hundreds of relayed hops: found at the same iteration and step, its
  # capture re-run (which relays nothing) takes the same schedule — the report would warn
  # of a divergence otherwise — and its trace file replays it.
  test "a bug found after relayed hops is reported and replayed exactly" do
    body = fn ->
      me = self()
      peer = Lockstep.spawn(fn -> echo(200) end)
      racer = Lockstep.spawn(fn -> Lockstep.send(me, :racer) end)

      Lockstep.receive do
        :racer -> :ok
      end

      _ = racer
      _ = ping(peer, 200, [])
      raise "the bug, after the ping-pong"
    end

    dir = Path.join(System.tmp_dir!(), "lockstep-relay-#{System.unique_integer([:positive])}")
    opts = [iterations: 5, seed: 21, trace_dir: dir]

    {%Lockstep.BugFound{} = on, relayed} =
      with_relay(true, fn ->
        assert_raise(Lockstep.BugFound, fn -> Lockstep.run(body, opts) end)
      end)

    {%Lockstep.BugFound{} = off, _} =
      with_relay(false, fn ->
        assert_raise(Lockstep.BugFound, fn -> Lockstep.run(body, opts) end)
      end)

    assert relayed > 0
    refute Exception.message(on) =~ "diverged"
    assert Exception.message(on) =~ "the bug, after the ping-pong"
    assert on.iteration == off.iteration
    assert on.fail_step == off.fail_step
    assert on.schedule == off.schedule

    assert_raise Lockstep.BugFound, ~r/the bug, after the ping-pong/, fn ->
      Lockstep.replay(body, on.trace_path)
    end

    File.rm_rf!(dir)
  end

  # A catch-up that does not replay (here more hops claimed than the step budget allows,
  # as a bug could leave them) never lets the run go on with an engine that disagrees with it: the session
  # is poisoned and the run raises Lockstep.InternalError naming the cause.
  test "a relayed hop that does not replay stops the run with an internal error" do
    body = fn ->
      peer = Lockstep.spawn(fn -> miscounting_echo() end)
      ping(peer, 20, [])
    end

    error = assert_raise Lockstep.InternalError, fn -> Lockstep.run(body, iterations: 1) end
    assert error.message =~ "did not replay into the engine as it was made"
    assert error.message =~ "Every managed process was stopped"
  end

  # An echo that, once it holds a lease (its hop back would be relayed), claims more hops
  # than the budget allows; its next call's catch-up then fails. It dies at once, as the poisoning
  # test in native_error_test.exs does (left to crash in its exit path, it would log).
  defp miscounting_echo do
    Lockstep.receive do
      {:ping, from, i} ->
        with lease when lease != nil <- Process.get(:"$lockstep_relay"),
             {session, _id, _tag} = Process.get(:"$lockstep"),
             true <- Session.relay_miscount_for_test(session) do
          try do
            Lockstep.send(from, {:pong, i})
            Lockstep.yield()
          rescue
            _ -> Process.exit(self(), :kill)
          end
        else
          _ ->
            Lockstep.send(from, {:pong, i})
            miscounting_echo()
        end
    end
  end

  test "a process killed from outside while hops are relayed ends the run as killed" do
    killer =
      spawn(fn ->
        receive do
          {:peer, peer} ->
            Process.sleep(20)
            Process.exit(peer, :kill)
        end
      end)

    body = fn ->
      peer = Lockstep.spawn(fn -> echo(100_000_000) end)
      Kernel.send(killer, {:peer, peer})
      ping(peer, 100_000_000, [])
    end

    {error, relayed} =
      with_relay(true, fn ->
        assert_raise Lockstep.BugFound, fn ->
          Lockstep.run(body, iterations: 1, seed: 3, max_steps: 1_000_000_000, timeout: 10_000)
        end
      end)

    assert relayed > 0
    assert Exception.message(error) =~ "outside"
    refute Exception.message(error) =~ "past the timeout"
  end
end
