defmodule Lockstep.BugFindingTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.BugFound
  alias Lockstep.Examples.CounterRace
  import Lockstep.TestSupport

  describe "get-then-put lost update (CounterRace :racy)" do
    for strategy <- [:pct, :random] do
      test "is found by strategy #{inspect(strategy)}" do
        dir = tmp_dir!()
        strategy = unquote(strategy)

        assert {:error, %BugFound{} = bug} =
                 Lockstep.check(CounterRace.test_body(:racy),
                   strategy: strategy,
                   iterations: 500,
                   seed: 2026,
                   trace_dir: dir
                 )

        assert bug.kind == :exception
        assert bug.process == "P"
        assert bug.strategy == strategy
        assert bug.seed == 2026
        assert bug.iteration in 1..500
        assert is_integer(bug.iter_seed)
        assert bug.nondeterminism == nil

        assert {:error, %RuntimeError{message: message}, stacktrace} = bug.reason
        assert message =~ "lost update"
        assert is_list(stacktrace)

        # The failing step is the root's exit, and the trace shows the lost update: both
        # clients read the same value before either wrote.
        at_fail_step = for {step, event} <- bug.trace, step == bug.fail_step, do: event
        assert Enum.any?(at_fail_step, &match?({:exit, "P", {:error, %RuntimeError{}, _}}, &1))

        reads =
          for {_, {:send, "P.1", to, {:value, v}, _}} <- bug.trace, to in ["P.2", "P.3"], do: v

        assert reads == [0, 0]
        assert {:run, "P"} = hd(bug.schedule)
        assert File.exists?(bug.trace_path)
        assert Path.dirname(bug.trace_path) == dir
      end
    end
  end

  describe "atomic counter (CounterRace :atomic)" do
    for strategy <- [:pct, :random] do
      test "passes 400 iterations under #{inspect(strategy)}" do
        summary =
          Lockstep.run(CounterRace.test_body(:atomic),
            strategy: unquote(strategy),
            iterations: 400,
            seed: 99
          )

        assert %Lockstep.Summary{} = summary
        assert summary.iterations == 400
        assert summary.max_steps_hit == 0
        assert summary.distinct_schedules > 1
      end
    end
  end

  test "a call-cycle deadlock is reported with every blocked process and what it waits for" do
    dir = tmp_dir!()

    assert {:error, %BugFound{} = bug} =
             Lockstep.check(call_cycle(), iterations: 20, seed: 5, trace_dir: dir)

    assert bug.kind == :deadlock
    assert bug.iteration == 1
    assert is_list(bug.details)

    by_name = Map.new(bug.details, &{&1.name, &1})
    # P.1 and P.2 wait for each other's reply; the root waits for :done.
    assert Enum.sort(Map.keys(by_name)) == ["P", "P.1", "P.2"]

    for name <- ["P.1", "P.2"] do
      entry = Map.fetch!(by_name, name)
      assert is_pid(entry.pid)
      assert entry.waiting_for =~ "receive"
      assert entry.waiting_for =~ ":reply"
      # Each holds the other's unserved request.
      assert [{:call, caller}] = entry.mailbox
      assert is_pid(caller)
    end

    assert by_name["P.1"].mailbox == [{:call, by_name["P.2"].pid}]
    assert by_name["P.2"].mailbox == [{:call, by_name["P.1"].pid}]
    assert by_name["P"].waiting_for =~ "receive"
    assert by_name["P.1"].pid != by_name["P.2"].pid

    # The trace ends with every process blocked.
    blocked = for {_, {:block, p}} <- bug.trace, do: p
    assert "P.1" in blocked and "P.2" in blocked and "P" in blocked
    refute Enum.any?(bug.trace, &match?({_, {:exit, _, _}}, &1))
    refute Enum.any?(by_name, fn {_, e} -> Process.alive?(e.pid) end)
  end

  describe "reordering across two senders" do
    # The root spawns S1 (P.1); S1 sends :first to the root and only then spawns S2 (P.1.1),
    # which sends :second. The root receives FIFO and asserts :first comes first. Under
    # :instant delivery :first is in the root's mailbox before S2 even exists; under
    # :delayed both are in flight and the strategy may deliver :second first.
    defp reorder_body do
      fn ->
        root = self()

        Lockstep.spawn(fn ->
          Lockstep.send(root, :first)
          Lockstep.spawn(fn -> Lockstep.send(root, :second) end)
        end)

        a = Lockstep.recv()
        b = Lockstep.recv()

        if [a, b] != [:first, :second] do
          raise "reordered: got #{inspect([a, b])}"
        end

        :ok
      end
    end

    for strategy <- [:pct, :random] do
      test "is found with delivery: :delayed (#{inspect(strategy)})" do
        dir = tmp_dir!()

        assert {:error, %BugFound{} = bug} =
                 Lockstep.check(reorder_body(),
                   delivery: :delayed,
                   strategy: unquote(strategy),
                   iterations: 300,
                   seed: 11,
                   trace_dir: dir
                 )

        assert bug.kind == :exception
        assert bug.process == "P"
        assert {:error, %RuntimeError{message: msg}, _} = bug.reason
        assert msg =~ "[:second, :first]"

        events = events(bug.trace)
        assert {:send, "P.1", "P", :first, :in_flight} in events
        assert {:send, "P.1.1", "P", :second, :in_flight} in events

        delivered = for {:deliver, from, "P", payload} <- events, do: {from, payload}
        assert delivered == [{"P.1.1", :second}, {"P.1", :first}]

        received = for {:receive, "P", from, payload} <- events, do: {from, payload}
        assert received == [{"P.1.1", :second}, {"P.1", :first}]

        assert {:deliver, "P.1.1", "P"} in bug.schedule
        assert {:deliver, "P.1", "P"} in bug.schedule
      end

      test "is not found with the default :instant delivery (#{inspect(strategy)})" do
        summary =
          Lockstep.run(reorder_body(),
            strategy: unquote(strategy),
            iterations: 300,
            seed: 11
          )

        assert summary.iterations == 300
      end
    end
  end

  describe "a crash after the root returned" do
    defp late_crash_body do
      fn ->
        Lockstep.spawn(fn ->
          Lockstep.yield()
          Lockstep.yield()
          Lockstep.yield()
          raise "late child crash"
        end)

        :root_done
      end
    end

    test "is reported as :crash naming the child" do
      dir = tmp_dir!()

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(late_crash_body(), iterations: 10, seed: 3, trace_dir: dir)

      assert bug.kind == :crash
      assert bug.process == "P.1"
      assert bug.iteration == 1
      assert {:error, %RuntimeError{message: "late child crash"}, _} = bug.reason

      events = events(bug.trace)
      assert {:exit, "P", :normal} in events
      root_exit = Enum.find_index(events, &(&1 == {:exit, "P", :normal}))

      child_exit =
        Enum.find_index(events, &match?({:exit, "P.1", {:error, %RuntimeError{}, _}}, &1))

      assert root_exit < child_exit
      assert Enum.count(events, &(&1 == {:yield, "P.1"})) == 3
      at_fail_step = for {step, event} <- bug.trace, step == bug.fail_step, do: event
      assert Enum.any?(at_fail_step, &match?({:exit, "P.1", {:error, _, _}}, &1))
    end

    test "passes with crash: :ignore" do
      summary = Lockstep.run(late_crash_body(), iterations: 10, seed: 3, crash: :ignore)
      assert summary.iterations == 10
    end
  end

  test "Lockstep.random/1 drives a bug found only for one value; the schedule records it" do
    dir = tmp_dir!()

    body = fn ->
      a = Lockstep.random(4)
      b = Lockstep.random(4)
      if a == 3 and b == 1, do: raise("unlucky draw #{a},#{b}")
      :ok
    end

    for strategy <- [:pct, :random] do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(body,
                 strategy: strategy,
                 iterations: 400,
                 seed: 17,
                 trace_dir: dir
               )

      assert bug.kind == :exception
      assert {:error, %RuntimeError{message: "unlucky draw 3,1"}, _} = bug.reason
      assert [{:random, 3}, {:random, 1}] == for({:random, _} = d <- bug.schedule, do: d)
      assert {:random, "P", 4, 3} in events(bug.trace)
      assert {:random, "P", 4, 1} in events(bug.trace)
    end

    # And without the unlucky pair it passes: random values stay in range.
    test_pid = self()

    summary =
      Lockstep.run(
        fn ->
          v = Lockstep.random(3)
          Lockstep.send(test_pid, {:drew, v})
        end,
        iterations: 60,
        seed: 1
      )

    assert summary.iterations == 60
    draws = for _ <- 1..60, do: assert_receive({:drew, v} when v in 0..2)
    assert length(Enum.uniq(draws)) > 1
  end
end
