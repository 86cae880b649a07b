defmodule Lockstep.KeptTraceTest do
  # An iteration that does not capture keeps no events (the adapter drops them once it has
  # read them; a failing iteration is re-run with capture for its report), except a
  # controller's, whose trace/1 answers at any time, with payloads or without.
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{BugFound, Controller}
  import Lockstep.TestSupport

  defp body do
    fn ->
      me = self()

      child =
        Lockstep.spawn(fn ->
          ref = Lockstep.monitor(me)
          :ping = Lockstep.recv()
          Lockstep.send(me, :pong)
          Lockstep.receive(do: ({:DOWN, ^ref, :process, _, :normal} -> :ok))
        end)

      Lockstep.send(child, :ping)
      :pong = Lockstep.recv()
      Lockstep.send_after(self(), :late, 10)
      :late = Lockstep.recv()
      :ok
    end
  end

  defp controller_events(capture?) do
    {:ok, ctl} = Controller.start_link(strategy: :random, seed: 3, capture: capture?)
    Controller.spawn_root(ctl, body())
    result = Controller.await_done(ctl)
    assert result.kind == :pass
    trace = Controller.trace(ctl)
    GenServer.stop(ctl)
    trace
  end

  test "a controller's session keeps every event, captured or not" do
    with_payloads = controller_events(true)
    without = controller_events(false)

    assert length(without) == length(with_payloads)
    assert Enum.map(without, &elem(&1, 0)) == Enum.map(with_payloads, &elem(&1, 0))
    kinds = fn trace -> Enum.map(trace, fn {_step, event} -> elem(event, 0) end) end
    assert kinds.(without) == kinds.(with_payloads)
    assert :send in kinds.(without) and :receive in kinds.(without)
    assert {:send, "P", "P.1", :ping, :delivered} in events(with_payloads)
  end

  test "monitors and timers of an iteration that keeps no trace still work" do
    # The `:DOWN` and the timer's message need the refs and payloads the adapter files
    # from the events before it drops them.
    summary = Lockstep.run(body(), iterations: 200, strategy: :random)
    assert summary.iterations == 200
  end

  test "the report of a failing iteration still has the whole trace" do
    dir = tmp_dir!()

    failing = fn ->
      body().()
      raise "after the exchange"
    end

    assert {:error, %BugFound{trace: trace}} =
             Lockstep.check(failing, iterations: 1, seed: 5, trace_dir: dir)

    events = events(trace)
    assert {:start, "P"} == hd(events)
    assert {:send, "P", "P.1", :ping, :delivered} in events
    assert {:receive, "P", "P.1", :pong} in events
  end
end
