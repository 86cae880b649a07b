defmodule Lockstep.ControllerTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{Controller, NotManagedError}
  import Lockstep.TestSupport

  defp start!(opts \\ []) do
    {:ok, ctl} = Controller.start_link(Keyword.merge([strategy: :random, seed: 7], opts))
    # The controller is linked to the test process, which has exited by now: it may die
    # between the check and the stop.
    on_exit(fn ->
      try do
        if Process.alive?(ctl), do: GenServer.stop(ctl)
      catch
        :exit, {:noproc, _} -> :ok
      end
    end)

    ctl
  end

  defp ping_pong do
    fn ->
      me = self()

      child =
        Lockstep.spawn(fn ->
          :ping = Lockstep.recv()
          Lockstep.send(me, :pong)
        end)

      Lockstep.send(child, :ping)
      :pong = Lockstep.recv()
      :ok
    end
  end

  test "start_link + spawn_root + await_done runs a ping-pong to :pass with its trace" do
    ctl = start!()
    root = Controller.spawn_root(ctl, ping_pong())
    assert is_pid(root)

    result = Controller.await_done(ctl)
    assert %{kind: :pass, process: nil} = result
    assert result.steps > 0
    assert is_list(result.schedule) and result.schedule != []
    assert hd(result.schedule) == {:run, "P"}

    events = events(result.trace)
    assert hd(events) == {:start, "P"}
    assert {:spawn, "P", "P.1"} in events
    assert {:start, "P.1"} in events
    assert {:send, "P", "P.1", :ping, :delivered} in events
    assert {:receive, "P.1", "P", :ping} in events
    assert {:send, "P.1", "P", :pong, :delivered} in events
    assert {:receive, "P", "P.1", :pong} in events
    assert {:exit, "P", :normal} in events
    assert {:exit, "P.1", :normal} in events

    # Causality: each receive follows its send.
    index = fn e -> Enum.find_index(events, &(&1 == e)) end
    assert index.({:send, "P", "P.1", :ping, :delivered}) < index.({:receive, "P.1", "P", :ping})
    assert index.({:send, "P.1", "P", :pong, :delivered}) < index.({:receive, "P", "P.1", :pong})

    # Steps are positive and never decrease.
    steps = Enum.map(result.trace, &elem(&1, 0))
    assert Enum.all?(steps, &(&1 >= 1))
    assert steps == Enum.sort(steps)
    assert List.last(steps) <= result.steps

    # Every managed process is gone, and await_done can be asked again.
    refute Process.alive?(root)
    assert Controller.await_done(ctl) == result
  end

  test "the same seed drives the same schedule; capture: false omits payloads" do
    results =
      for _ <- 1..2 do
        ctl = start!(seed: 21)
        Controller.spawn_root(ctl, ping_pong())
        Controller.await_done(ctl)
      end

    assert [%{schedule: s, trace: t}, %{schedule: s, trace: t}] = results

    ctl = start!(seed: 21, capture: false)
    Controller.spawn_root(ctl, ping_pong())
    result = Controller.await_done(ctl)
    assert result.kind == :pass
    assert result.steps == length(s)
    sends = for {_, {:send, _, _, payload, _}} <- result.trace || [], do: payload
    refute :ping in sends
  end

  test "status/1 before, during and after a run" do
    ctl = start!()

    before = Controller.status(ctl)
    assert %{step: 0, now: 0, procs: [%{name: "P", pid: nil, state: :ready}]} = before

    test_pid = self()

    root =
      Controller.spawn_root(ctl, fn ->
        me = self()

        child =
          Lockstep.spawn(fn ->
            Lockstep.send(me, :started)
            Lockstep.recv()
          end)

        :started = Lockstep.recv()
        # The child is now blocked in recv. Hand the test a moment to look (plain BEAM
        # messages: nothing Lockstep schedules).
        Lockstep.send(test_pid, {:look, child})

        receive do
          :continue -> :ok
        end

        Lockstep.send(child, :stop)
      end)

    assert_receive {:look, child}, 5_000

    status = Controller.status(ctl)
    assert %{step: step, now: 0, procs: procs} = status
    assert is_integer(step) and step > 0
    assert length(procs) == 2

    for proc <- procs do
      assert %{name: name, pid: pid, node: node, state: state} = proc
      assert is_binary(name) and is_pid(pid) and is_atom(node) and is_atom(state)
    end

    # Without a simulated cluster every process lives on one node.
    assert [_] = procs |> Enum.map(& &1.node) |> Enum.uniq()

    by_name = Map.new(procs, &{&1.name, &1})
    assert %{pid: ^root, state: :running} = by_name["P"]
    assert %{pid: ^child, state: :blocked} = by_name["P.1"]

    send(root, :continue)
    assert %{kind: :pass} = Controller.await_done(ctl)

    after_done = Controller.status(ctl)
    assert after_done.step >= step
    assert Enum.all?(after_done.procs, &(&1.state == :exited))
  end

  test "a deadlocked root gives kind :deadlock" do
    ctl = start!()

    root =
      Controller.spawn_root(ctl, fn ->
        Lockstep.spawn(fn -> Lockstep.receive(do: (:never -> :ok)) end)
        Lockstep.recv()
      end)

    result = Controller.await_done(ctl, 10_000)
    assert result.kind == :deadlock
    names = result.details |> Enum.map(& &1.name) |> Enum.sort()
    assert names == ["P", "P.1"]
    assert Enum.find(result.details, &(&1.name == "P")).pid == root
    assert Enum.all?(result.details, &(&1.waiting_for =~ "recv" or &1.waiting_for =~ "receive"))
    refute Process.alive?(root)
  end

  test "request_spawn, send_msg, recv_msg and recv_match from inside the root" do
    ctl = start!()
    test_pid = self()

    Controller.spawn_root(ctl, fn ->
      handle = Lockstep.controller()
      me = self()

      # Through the owner pid...
      echo =
        Controller.request_spawn(ctl, me, fn ->
          # ...and through the in-run handle.
          msg = Controller.recv_msg(Lockstep.controller(), self())
          Controller.send_msg(Lockstep.controller(), self(), me, {:echo, msg})
        end)

      linked =
        Controller.request_spawn_link(handle, me, fn ->
          Controller.send_msg(handle, self(), me, {:linked, :hello})
        end)

      returned = Controller.send_msg(handle, me, echo, :hi)
      Controller.send_msg(ctl, me, me, :noise)

      echoed = Controller.recv_match(ctl, me, &match?({:echo, _}, &1))
      from_linked = Controller.recv_match(handle, me, &match?({:linked, _}, &1))
      noise = Controller.recv_msg(ctl, me)

      Lockstep.send(test_pid, {:results, echo, linked, returned, echoed, from_linked, noise})
    end)

    assert %{kind: :pass} = result = Controller.await_done(ctl, 10_000)

    assert_received {:results, echo, linked, :hi, {:echo, :hi}, {:linked, :hello}, :noise}
    assert is_pid(echo) and is_pid(linked)

    events = events(result.trace)
    assert {:spawn, "P", "P.1"} in events
    assert {:spawn_link, "P", "P.2"} in events
    assert {:send, "P", "P.1", :hi, :delivered} in events
    assert {:receive, "P", "P.1", {:echo, :hi}} in events
    assert {:receive, "P", "P.2", {:linked, :hello}} in events
    assert {:receive, "P", "P", :noise} in events
  end

  test "hello/2 returns :ok from a managed process" do
    ctl = start!()
    test_pid = self()

    Controller.spawn_root(ctl, fn ->
      me = self()
      r1 = Controller.hello(Lockstep.controller(), me)
      r2 = Controller.hello(ctl, me)

      Lockstep.spawn(fn ->
        Lockstep.send(test_pid, {:child_hello, Controller.hello(Lockstep.controller(), self())})
      end)

      Lockstep.send(test_pid, {:hello, r1, r2})
    end)

    assert %{kind: :pass} = Controller.await_done(ctl)
    assert_received {:hello, :ok, :ok}
    assert_received {:child_hello, :ok}

    # Outside the run it is not a managed process.
    assert_raise NotManagedError, fn -> Controller.hello(ctl, self()) end
  end

  test "alive?/2 is true for a live managed process and false after it exited" do
    ctl = start!()
    test_pid = self()

    root =
      Controller.spawn_root(ctl, fn ->
        me = self()

        child =
          Lockstep.spawn(fn ->
            :stop = Lockstep.recv()
            Lockstep.send(me, :bye)
          end)

        Lockstep.send(test_pid, {:phase1, child})
        receive do: (:continue -> :ok)

        Lockstep.send(child, :stop)
        :bye = Lockstep.recv()
        # The child exited right after sending :bye.
        Lockstep.send(test_pid, :phase2)
        receive do: (:continue -> :ok)
        :ok
      end)

    assert_receive {:phase1, child}, 5_000
    assert Controller.alive?(ctl, root)
    assert Controller.alive?(ctl, child)
    refute Controller.alive?(ctl, self())
    send(root, :continue)

    assert_receive :phase2, 5_000
    assert Controller.alive?(ctl, root)
    refute Controller.alive?(ctl, child)
    send(root, :continue)

    assert %{kind: :pass} = Controller.await_done(ctl)
    refute Controller.alive?(ctl, root)
    refute Controller.alive?(ctl, child)
  end

  test "send_msg with a `from` that is not self() raises ArgumentError" do
    ctl = start!()
    test_pid = self()

    Controller.spawn_root(ctl, fn ->
      me = self()
      child = Lockstep.spawn(fn -> Lockstep.recv() end)
      err1 = catch_error(Controller.send_msg(ctl, child, me, :forged))
      err2 = catch_error(Controller.send_msg(Lockstep.controller(), test_pid, child, :forged))
      err3 = catch_error(Controller.recv_msg(ctl, child))
      Lockstep.send(child, :real)
      Lockstep.send(test_pid, {:errors, err1, err2, err3})
    end)

    assert %{kind: :pass} = result = Controller.await_done(ctl)
    assert_received {:errors, %ArgumentError{message: m1}, %ArgumentError{}, %ArgumentError{}}
    assert m1 =~ "not the calling process"

    # Nothing forged was sent.
    payloads = for {_, {:send, _, _, payload, _}} <- result.trace, do: payload
    refute :forged in payloads
    assert :real in payloads
  end

  test "child_spec/1 lets a controller run under a supervisor" do
    ctl = start_supervised!({Controller, [strategy: :pct, seed: 3]})
    Controller.spawn_root(ctl, ping_pong())
    assert %{kind: :pass} = result = Controller.await_done(ctl)
    assert {:receive, "P", "P.1", :pong} in events(result.trace)
  end

  test "spawn_root twice and await_done before spawn_root are refused" do
    ctl = start!()
    assert {:error, :not_started} = Controller.await_done(ctl)
    Controller.spawn_root(ctl, fn -> :ok end)
    assert {:error, :already_started} = Controller.spawn_root(ctl, fn -> :ok end)
    assert %{kind: :pass} = Controller.await_done(ctl)
  end

  test "a crashing root and a crashing child are classified like run/2 does" do
    ctl = start!()
    Controller.spawn_root(ctl, fn -> raise "root boom" end)
    assert %{kind: :exception, process: "P", reason: reason} = Controller.await_done(ctl)
    assert {:error, %RuntimeError{message: "root boom"}, _} = reason

    ctl2 = start!()

    Controller.spawn_root(ctl2, fn ->
      Lockstep.spawn(fn -> throw(:child_ball) end)
      Lockstep.recv()
    end)

    assert %{kind: :crash, process: "P.1", reason: {:throw, :child_ball, _}} =
             Controller.await_done(ctl2)
  end
end
