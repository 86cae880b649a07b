defmodule Lockstep.DeferredSendTest do
  # `Lockstep.send/2` to a pid the sender knows to be the run's is made by the sender's next
  # hot NIF call (see `handoff.rs` in the NIF and `@pending` in Lockstep.Runtime): these
  # tests check that this changes nothing a run can observe. `Lockstep.Runtime.send_to/2`
  # is the same operation made at once, so a program written with each must take the same
  # steps, decision for decision and event for event, under every strategy and mode.
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{BugFound, Runtime}
  import Lockstep.TestSupport

  # Three processes that ping each other with yields in between, so that many sends are
  # not forced (another process is ready when they are made), and a last step that fails
  # so that the report carries the schedule and the captured trace.
  defp body(send) do
    fn ->
      me = self()

      workers =
        for i <- 1..2 do
          Lockstep.spawn(fn ->
            {:peer, peer} = Lockstep.recv_first(&match?({:peer, _}, &1))

            for n <- 1..3 do
              send.(peer, {:ping, i, n})
              Lockstep.yield()
              {:ping, _, _} = Lockstep.recv()
            end

            send.(me, {:done, i})
          end)
        end

      [a, b] = workers
      send.(a, {:peer, b})
      send.(b, {:peer, a})
      done = for _ <- workers, do: Lockstep.recv()
      raise "end of the run: #{inspect(Enum.sort(done))}"
    end
  end

  defp deferred(dest, msg), do: Lockstep.send(dest, msg)
  defp at_once(dest, msg), do: Runtime.send_to(dest, msg)

  for strategy <- [:random, :pct, :pos],
      delivery <- [:instant, :delayed],
      timers <- [:on_idle, :anytime] do
    test "same schedule and trace as a send made at once (#{strategy}, #{delivery}, #{timers})" do
      dir = tmp_dir!()

      for seed <- 1..6 do
        opts = [
          strategy: unquote(strategy),
          delivery: unquote(delivery),
          timers: unquote(timers),
          iterations: 1,
          seed: seed,
          trace_dir: dir
        ]

        assert {:error, %BugFound{} = a} = Lockstep.check(body(&deferred/2), opts)
        assert {:error, %BugFound{} = b} = Lockstep.check(body(&at_once/2), opts)

        assert {a.kind, b.kind} == {:exception, :exception}
        assert a.nondeterminism == nil and b.nondeterminism == nil
        assert a.schedule == b.schedule
        assert a.fail_step == b.fail_step
        assert normalize_pids(a.trace) == normalize_pids(b.trace)
        assert Enum.count(a.trace, &match?({_, {:send, _, _, _, _}}, &1)) >= 8
      end
    end
  end

  # A server replying to `GenServer.call` through the caller's alias, as `:gen.reply/2`
  # does: the reply to an alias named by a call from this run is deferred like a send to a
  # known pid, and must change nothing either.
  defp call_body(reply_with) do
    fn ->
      server = Lockstep.TestSupport.AliasServer.start(reply_with)
      me = self()

      for _ <- 1..2 do
        Lockstep.spawn(fn ->
          for _ <- 1..3, do: GenServer.call(server, :bump)
          Lockstep.send(me, :done)
        end)
      end

      n = GenServer.call(server, :bump)
      for _ <- 1..2, do: :done = Lockstep.recv()
      raise "end of the run: #{n}"
    end
  end

  for strategy <- [:random, :pct, :pos], delivery <- [:instant, :delayed] do
    test "a reply to a call's alias: same schedule and trace as made at once (#{strategy}, #{delivery})" do
      dir = tmp_dir!()

      for seed <- 1..4 do
        opts = [
          strategy: unquote(strategy),
          delivery: unquote(delivery),
          iterations: 1,
          seed: seed,
          trace_dir: dir,
          instrument: [Lockstep.TestSupport.AliasServer]
        ]

        assert {:error, %BugFound{} = a} = Lockstep.check(call_body(:send), opts)
        assert {:error, %BugFound{} = b} = Lockstep.check(call_body(:at_once), opts)
        assert a.nondeterminism == nil and b.nondeterminism == nil
        assert a.schedule == b.schedule
        assert a.fail_step == b.fail_step
        assert normalize_pids(a.trace) == normalize_pids(b.trace)
      end
    end
  end

  test "a reply to a call's alias is made by the server's next call" do
    test_pid = self()

    Lockstep.run(
      fn ->
        server = Lockstep.TestSupport.AliasServer.start(:send)
        0 = GenServer.call(server, {:pending, test_pid})
        :ok
      end,
      iterations: 1,
      instrument: [Lockstep.TestSupport.AliasServer]
    )

    assert_received {:pending, {:"$lockstep_send", ref, {[:alias | ref], 0}, _consumed}}
    assert is_reference(ref)
  end

  test "a send is deferred only to a pid known to be the run's, and made by the next call" do
    test_pid = self()

    Lockstep.run(
      fn ->
        child = Lockstep.spawn(fn -> Lockstep.recv() end)
        Lockstep.send(child, :hi)
        # spawned by the caller: known to be the run's, so the send waits for the next call
        send(test_pid, {:after_send, Process.get(:"$lockstep_pending")})
        Lockstep.yield()
        send(test_pid, {:after_yield, Process.get(:"$lockstep_pending")})
      end,
      iterations: 1
    )

    assert_received {:after_send, {:"$lockstep_send", child, :hi, :undefined}}
    assert is_pid(child)
    assert_received {:after_yield, nil}
  end

  test "a send to a pid outside the run is made at once" do
    # A process outside the run that answers; the managed process waits for the answer in
    # a bare receive, which only ends if the send was made when Lockstep.send returned.
    echo =
      spawn(fn ->
        receive do
          {:hello, pid} -> send(pid, :answer)
        end
      end)

    summary =
      Lockstep.run(
        fn ->
          Lockstep.send(echo, {:hello, self()})

          receive do
            :answer -> :ok
          end
        end,
        iterations: 1,
        timeout: 2_000
      )

    assert summary.iterations == 1
  end

  test "an iteration cut by max_steps at any step, a deferred send's among them, ends cleanly" do
    # Whatever step `max_steps` cuts at — the child's deferred send made by its exit call
    # among them — each run ends as a pass or as inconclusive, and nothing is logged.
    body = fn ->
      me = self()
      Lockstep.spawn(fn -> Lockstep.send(me, :from_child) end)
      :from_child = Lockstep.recv()
      Lockstep.send(me, :to_self)
      :to_self = Lockstep.recv()
    end

    log =
      ExUnit.CaptureLog.capture_log(fn ->
        for max_steps <- 1..8 do
          case Lockstep.check(body, iterations: 5, max_steps: max_steps, strategy: :random) do
            {:ok, summary} -> assert summary.iterations == 5
            {:error, %Lockstep.InconclusiveError{}} -> :ok
          end
        end
      end)

    refute log =~ "CaseClauseError"
    refute log =~ "Lockstep.Runtime"
  end

  test "a process that ends right after a deferred send still delivers it" do
    summary =
      Lockstep.run(
        fn ->
          me = self()
          Lockstep.spawn(fn -> Lockstep.send(me, :from_child) end)
          :from_child = Lockstep.recv()
        end,
        iterations: 50,
        strategy: :random
      )

    assert summary.iterations == 50
  end
end
