defmodule Lockstep.Trace.SliceTest do
  # The causal slice (issue 14, item 4): the events that happened before the failing step,
  # by program order, messages, spawns, signals, shared objects and the cluster.
  use ExUnit.Case, async: true

  require Lockstep
  alias Lockstep.Trace.Slice

  defp kept(trace, step, kind \\ nil, process \\ nil) do
    trace |> Slice.slice(step, kind, process) |> Enum.map(fn {_, event} -> event end)
  end

  test "a process that never talked to the failing one is left out, after its spawn" do
    trace = [
      {1, {:start, "P"}},
      {2, {:spawn, "P", "P.1"}},
      {3, {:spawn, "P", "P.2"}},
      {4, {:start, "P.2"}},
      {5, {:send, "P.2", "P.2", :busy, :delivered}},
      {6, {:start, "P.1"}},
      {7, {:send, "P.1", "P", :hello, :delivered}},
      {8, {:receive, "P.2", "P.2", :busy}},
      {9, {:receive, "P", "P.1", :hello}},
      {9, {:exit, "P", {:error, :boom, []}}}
    ]

    assert kept(trace, 9, :exception, "P") == [
             {:start, "P"},
             {:spawn, "P", "P.1"},
             {:spawn, "P", "P.2"},
             {:start, "P.1"},
             {:send, "P.1", "P", :hello, :delivered},
             {:receive, "P", "P.1", :hello},
             {:exit, "P", {:error, :boom, []}}
           ]
  end

  test "a delayed message: its receive follows its delivery and its send, oldest equal first" do
    trace = [
      {1, {:start, "P.1"}},
      {2, {:send, "P.1", "P.2", :m, :in_flight}},
      {3, {:send, "P.1", "P.2", :m, :in_flight}},
      {4, {:start, "P.2"}},
      {5, {:deliver, "P.1", "P.2", :m}},
      {6, {:receive, "P.2", "P.1", :m}},
      {7, {:exit, "P.2", :normal}}
    ]

    # The receive takes the first :m, delivered at step 5: the second send is later in
    # P.1's program order and not before the receive.
    assert kept(trace, 6, :crash, "P.2") == [
             {:start, "P.1"},
             {:send, "P.1", "P.2", :m, :in_flight},
             {:start, "P.2"},
             {:deliver, "P.1", "P.2", :m},
             {:receive, "P.2", "P.1", :m}
           ]
  end

  test "operations on one ETS key, or on the whole table, are ordered; other keys are not" do
    trace = [
      {1, {:start, "P.1"}},
      {2, {:start, "P.2"}},
      {3, {:nif, "P.1", {:insert, :t, :a}}},
      {4, {:nif, "P.1", {:insert, :t, :b}}},
      {5, {:nif, "P.2", {:lookup, :t, :a}}},
      {6, {:exit, "P.2", {:error, :boom, []}}}
    ]

    assert kept(trace, 6, :crash, "P.2") == [
             {:start, "P.1"},
             {:start, "P.2"},
             {:nif, "P.1", {:insert, :t, :a}},
             {:nif, "P.2", {:lookup, :t, :a}},
             {:exit, "P.2", {:error, :boom, []}}
           ]

    whole = List.replace_at(trace, 4, {5, {:nif, "P.2", {:tab2list, :t}}})

    assert {:nif, "P.1", {:insert, :t, :b}} in kept(whole, 6, :crash, "P.2")

    # A trace file stores the operation inspected: it could touch anything.
    inspected =
      List.replace_at(trace, 4, {5, {:nif, "P.2", {:"$inspected", "{:lookup, :t, :a}"}}})

    assert {:nif, "P.1", {:insert, :t, :b}} in kept(inspected, 6, :crash, "P.2")
  end

  test "a registered name orders its register, whereis and unregister" do
    trace = [
      {1, {:start, "P.1"}},
      {2, {:start, "P.2"}},
      {3, {:register, "P.1", :srv, "P.1", true}},
      {4, {:register, "P.1", :other, "P.1", true}},
      {5, {:whereis, "P.2", :srv, "P.1"}},
      {6, {:exit, "P.2", {:error, :boom, []}}}
    ]

    events = kept(trace, 6, :crash, "P.2")
    assert {:register, "P.1", :srv, "P.1", true} in events
    refute {:register, "P.1", :other, "P.1", true} in events
  end

  test "exit signals and :DOWNs follow the last event of the process they are about" do
    trace = [
      {1, {:start, "P"}},
      {2, {:spawn, "P", "P.1"}},
      {3, {:monitor, "P", "P.1"}},
      {4, {:start, "P.1"}},
      {5, {:yield, "P.1"}},
      {6, {:exit, "P.1", {:error, :boom, []}}},
      {7, {:down, "P", "P.1", {:error, :boom, []}}},
      {8, {:exit, "P", {:error, :down, []}}}
    ]

    assert length(kept(trace, 8, :exception, "P")) == length(trace)
  end

  test "the failing step's consequences in other processes are not its causes" do
    trace = [
      {1, {:start, "P"}},
      {2, {:spawn_link, "P", "P.1"}},
      {3, {:start, "P.1"}},
      {4, {:yield, "P"}},
      {4, {:exit, "P", {:error, :boom, []}}},
      {4, {:exit_signal, "P", "P.1", :boom}}
    ]

    refute {:exit_signal, "P", "P.1", :boom} in kept(trace, 4, :exception, "P")
    # Without a failing process, every event of the step is a seed.
    assert {:exit_signal, "P", "P.1", :boom} in kept(trace, 4)
  end

  test "a deadlock slices from the last event of every process still there" do
    trace = [
      {1, {:start, "P"}},
      {2, {:spawn, "P", "P.1"}},
      {3, {:spawn, "P", "P.2"}},
      {4, {:start, "P.2"}},
      {5, {:exit, "P.2", :normal}},
      {6, {:start, "P.1"}},
      {7, {:block, "P.1"}},
      {8, {:block, "P"}}
    ]

    events = kept(trace, 8, :deadlock)
    assert {:block, "P.1"} in events and {:block, "P"} in events
    refute {:exit, "P.2", :normal} in events
  end

  test "a timer firing follows everything before it: a timeout keeps the lost message" do
    trace = [
      {1, {:start, "P"}},
      {2, {:spawn, "P", "P.1"}},
      {3, {:start, "P.1"}},
      {4, {:send, "P.1", "P.2", :ping, :in_flight}},
      {5, {:partitioned, "P", [:a], [:b], :drop}},
      {5, {:cut, "P.1", "P.2", :ping}},
      {6, {:timer_started, "P", 100}},
      {6, {:block, "P"}},
      {7, {:timer_fired, "P", 100}},
      {8, {:receive_timeout, "P"}},
      {8, {:exit, "P", {:error, :no_pong, []}}}
    ]

    events = kept(trace, 8, :exception, "P")
    assert {:cut, "P.1", "P.2", :ping} in events
    assert {:send, "P.1", "P.2", :ping, :in_flight} in events
  end

  test "a :linearizability failure slices from the records of the failing operations" do
    trace = [
      {1, {:start, "P"}},
      {2, {:spawn, "P", "P.1"}},
      {3, {:spawn, "P", "P.2"}},
      {4, {:start, "P.1"}},
      {5, {:nif, "P.1", {:history, :invoke, :write, 1}}},
      {6, {:nif, "P.1", {:history, :complete, :write, 1}}},
      {7, {:start, "P.2"}},
      {8, {:yield, "P.2"}},
      {9, {:exit, "P", :normal}}
    ]

    bug = %{
      kind: :linearizability,
      details: %{ops: [%{process: "P.1", invoke_step: 5, complete_step: 6}]},
      fail_step: 9,
      process: nil
    }

    kept = for i <- Slice.of_failure(trace, bug), do: elem(Enum.at(trace, i), 1)
    assert {:nif, "P.1", {:history, :complete, :write, 1}} in kept
    refute {:yield, "P.2"} in kept
    refute {:exit, "P", :normal} in kept
  end

  test "no failing step, no slice" do
    assert Slice.indexes([{1, {:start, "P"}}], nil) == MapSet.new()
  end

  # A body whose failure does not involve one of its processes at all: P.1 keeps to itself,
  # and P yields until it has really gone (a plain `Process.alive?/1`, which Lockstep does
  # not see, so nothing links the two in the trace).
  def unrelated_body do
    parent = self()

    noise =
      Lockstep.spawn(fn ->
        for i <- 1..5, do: Lockstep.send(self(), i)
        for _ <- 1..5, do: Lockstep.receive(do: (_ -> :ok))
      end)

    wait_gone(noise)

    worker = Lockstep.spawn(fn -> Lockstep.send(parent, :done) end)
    Lockstep.receive(do: (:done -> :ok))
    raise "failed after #{inspect(worker)} answered"
  end

  defp wait_gone(pid) do
    if Process.alive?(pid) do
      Lockstep.yield()
      wait_gone(pid)
    end
  end

  test "the report shows the slice and says how many events it left out" do
    {:error, bug} =
      Lockstep.check(&__MODULE__.unrelated_body/0, iterations: 1, seed: 7, strategy: :random)

    message = Exception.message(bug)

    [_, shown, total] = Regex.run(~r/Trace \(causal slice: (\d+) of (\d+) events/, message)
    left_out = String.to_integer(total) - String.to_integer(shown)
    assert left_out > 0
    assert message =~ "#{left_out} events that did not happen before the failing step left out"
    assert message =~ "mix lockstep.dump_trace #{bug.trace_path}"

    # P.1's own sends and receives are not in it; P.2's send to P is.
    refute message =~ ~r/P\.1\s+sends 1 to P\.1/
    assert message =~ ~r/P\.2\s+sends :done to P/

    # `slice: false` shows everything.
    whole = Lockstep.Report.format(bug, slice: false, colour: false)
    assert whole =~ ~r/P\.1\s+sends 1 to P\.1/
    refute whole =~ "causal slice"
  end
end
