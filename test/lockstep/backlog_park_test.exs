defmodule Lockstep.BacklogParkTest do
  # A managed process whose mailbox holds a backlog of the run's messages parks on a fresh
  # reference (the NIF answers `:wait_marked`), so that its wake-ups are found without
  # scanning the backlog (issue 9 §3: the cost per spawn and per message in flight must not
  # grow with their number). These tests check that the path is taken and that everything
  # a parked process can be told — its turn, an exit signal from the run, one from outside,
  # its owner's death — still reaches it, with the results OTP 25 gives.
  #
  # Not async: `:call_count` tracing is global to the VM.
  use ExUnit.Case, async: false

  require Lockstep
  import Lockstep.TestSupport

  @backlog 200

  setup do
    # (trace patterns apply to loaded code only)
    Code.ensure_loaded!(Lockstep.Runtime)
    1 = :erlang.trace_pattern({Lockstep.Runtime, :park_marked, 1}, true, [:call_count])
    on_exit(fn -> :erlang.trace_pattern({Lockstep.Runtime, :park_marked, 1}, false, []) end)
    :ok
  end

  defp marked_parks do
    {:call_count, n} = :erlang.trace_info({Lockstep.Runtime, :park_marked, 1}, :call_count)
    n
  end

  defp yield_forever do
    Lockstep.yield()
    yield_forever()
  end

  defp plain_ops do
    %{
      spawn: &Kernel.spawn/1,
      send: &Kernel.send/2,
      exit: &Process.exit/2,
      monitor: &Process.monitor/1,
      pong: fn -> receive(do: (:pong -> :ok)) end,
      ping: fn -> receive(do: ({:ping, _} -> :ok)) end,
      hi: fn i -> receive(do: ({:hi, ^i, from} -> from)) end,
      down: fn ref -> receive(do: ({:DOWN, ^ref, :process, _, reason} -> reason)) end,
      block: fn -> receive(do: (:never -> :ok), after: (2_000 -> :ok)) end
    }
  end

  defp lockstep_ops do
    %{
      spawn: &Lockstep.spawn/1,
      send: &Lockstep.send/2,
      exit: &Lockstep.exit/2,
      monitor: &Lockstep.monitor/1,
      pong: fn -> Lockstep.receive(do: (:pong -> :ok)) end,
      ping: fn -> Lockstep.receive(do: ({:ping, _} -> :ok)) end,
      hi: fn i -> Lockstep.receive(do: ({:hi, ^i, from} -> from)) end,
      down: fn ref -> Lockstep.receive(do: ({:DOWN, ^ref, :process, _, reason} -> reason)) end,
      block: fn -> Lockstep.receive(do: (:never -> :ok)) end
    }
  end

  defp on_plain(program) do
    parent = self()
    ref = make_ref()
    spawn(fn -> Kernel.send(parent, {ref, program.(plain_ops())}) end)
    assert_receive {^ref, value}, 5_000
    value
  end

  # The distinct values the root returned over the iterations.
  defp on_lockstep(program, opts) do
    test = self()
    defaults = [iterations: 20, strategy: :random, seed: 5]

    summary =
      Lockstep.run(
        fn -> Lockstep.send(test, {:root_result, program.(lockstep_ops())}) end,
        Keyword.merge(defaults, opts)
      )

    values = for _ <- 1..summary.iterations, do: assert_receive({:root_result, v}) && v
    refute_received {:root_result, _}
    Enum.uniq(values)
  end

  # The root spawns @backlog children that each send it one message, then plays ping-pong
  # with an echo process while those wait in its mailbox (each of its parks has the
  # backlog), then takes them in an order of its own choosing.
  defp backlog_program(o) do
    root = self()
    kids = for i <- 1..@backlog, do: o.spawn.(fn -> o.send.(root, {:hi, i, self()}) end)

    echo =
      o.spawn.(fn ->
        for _ <- 1..30 do
          o.ping.()
          o.send.(root, :pong)
        end
      end)

    pongs =
      for _ <- 1..30 do
        o.send.(echo, {:ping, root})
        o.pong.()
      end

    senders = for i <- @backlog..1//-1, do: o.hi.(i)
    {length(pongs), senders == Enum.reverse(kids)}
  end

  for delivery <- [:instant, :delayed] do
    test "a backlog of messages is taken whole and in any order, under delivery: #{delivery}" do
      expected = {30, true}
      assert on_plain(&backlog_program/1) == expected
      before = marked_parks()
      assert on_lockstep(&backlog_program/1, delivery: unquote(delivery)) == [expected]
      assert marked_parks() > before, "no process parked on a reference"
    end
  end

  test "an exit signal from the run kills a process parked with a backlog" do
    program = fn o ->
      w = o.spawn.(fn -> o.block.() end)
      for i <- 1..@backlog, do: o.send.(w, {:junk, i})
      ref = o.monitor.(w)
      o.exit.(w, :kill)
      o.down.(ref)
    end

    assert on_plain(program) == :killed
    before = marked_parks()
    assert on_lockstep(program, []) == [:killed]
    assert marked_parks() > before
  end

  test "an exit signal from outside the run reaches a process parked with a backlog" do
    program = fn o ->
      killer =
        Kernel.spawn(fn ->
          receive do
            {:kill, pid} -> Process.exit(pid, :shutdown)
          end
        end)

      w = o.spawn.(fn -> o.block.() end)
      for i <- 1..@backlog, do: o.send.(w, {:junk, i})
      ref = o.monitor.(w)
      # One more message, so that w, blocked, parks again with its backlog before the signal.
      o.send.(w, :wake)
      Kernel.send(killer, {:kill, w})
      # Running outside any sync point until the signal has landed: with every managed
      # process waiting, Lockstep would otherwise see a deadlock.
      assert eventually(fn -> not Process.alive?(w) end, 5_000)
      o.down.(ref)
    end

    assert on_plain(program) == :shutdown
    before = marked_parks()

    assert on_lockstep(program, iterations: 5, delivery: :instant, crash: :ignore) == [
             :shutdown
           ]

    assert marked_parks() > before
  end

  test "processes parked with a backlog die with their owner" do
    test_pid = self()

    body = fn ->
      w = Lockstep.spawn(fn -> Lockstep.receive(do: (:never -> :ok)) end)
      for i <- 1..@backlog, do: Lockstep.send(w, {:junk, i})
      Kernel.send(test_pid, {:managed, w})
      yield_forever()
    end

    before = marked_parks()

    owner =
      spawn(fn ->
        Lockstep.run(body, iterations: 1, seed: 1, timeout: 60_000, strategy: :random)
      end)

    assert_receive {:managed, w}, 2_000
    assert eventually(fn -> marked_parks() > before end, 2_000)
    Process.exit(owner, :kill)
    assert eventually(fn -> not Process.alive?(w) end, 2_000)
  end
end
