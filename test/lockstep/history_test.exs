defmodule Lockstep.HistoryTest do
  # Lockstep.History end to end: histories recorded at sync points, checked when the
  # iteration ends, failures of kind :linearizability reported, saved and replayed.
  use ExUnit.Case, async: true

  require Lockstep
  alias Lockstep.{Cluster, History, TraceFile}
  alias Lockstep.Examples.ReplicatedRegister
  alias Lockstep.Model.Register

  @moduletag :tmp_dir

  describe "the replicated register under a partition" do
    for strategy <- [:random, :pct, :pos, :fair_pct, :idpct] do
      test "the naive one is found not linearizable by #{strategy}", %{tmp_dir: dir} do
        {:error, bug} =
          Lockstep.check(&ReplicatedRegister.naive_body/0,
            iterations: 300,
            strategy: unquote(strategy),
            seed: 7,
            trace_dir: dir
          )

        assert bug.kind == :linearizability
        assert %{model: Register, consistency: :linearizable, ops: ops, history: 1} = bug.details
        assert length(ops) >= 2

        # Every operation of the failing sub-history names its process, node and steps,
        # and its steps are the trace's history records.
        for op <- ops do
          assert op.process =~ ~r/^P\.\d+$/
          assert op.node in [:n1, :n2, :n3]
          assert_record(bug.trace, op.invoke_step, {:history, :invoke, op.op, op.arg})

          if op.type == :ok,
            do: assert_record(bug.trace, op.complete_step, {:history, :ok, op.op, op.result})
        end

        message = Exception.message(bug)
        assert message =~ "a history is not linearizable (Lockstep.Model.Register)"
        assert message =~ "cannot be linearized"
        assert message =~ "time-line:"
      end
    end

    test "its failure is replayed from the trace file", %{tmp_dir: dir} do
      {:error, bug} =
        Lockstep.check(&ReplicatedRegister.naive_body/0, iterations: 300, seed: 3, trace_dir: dir)

      assert TraceFile.load!(bug.trace_path).kind == :linearizability

      replayed =
        assert_raise Lockstep.BugFound, fn ->
          Lockstep.replay(&ReplicatedRegister.naive_body/0, bug.trace_path)
        end

      assert replayed.kind == :linearizability
      assert replayed.details.ops == bug.details.ops
    end

    test "parallel workers find it too", %{tmp_dir: dir} do
      {:error, bug} =
        Lockstep.check(&ReplicatedRegister.naive_body/0,
          iterations: 300,
          workers: 2,
          seed: 3,
          trace_dir: dir
        )

      assert bug.kind == :linearizability
    end

    test "shrinking keeps it a :linearizability failure", %{tmp_dir: dir} do
      {:error, bug} =
        Lockstep.check(&ReplicatedRegister.naive_body/0, iterations: 300, seed: 3, trace_dir: dir)

      {:ok, shrunk} = Lockstep.shrink(&ReplicatedRegister.naive_body/0, bug.trace_path, [])
      assert shrunk.kind == :linearizability
      assert shrunk.new_switches <= shrunk.original_switches
      assert %{ops: [_, _ | _]} = shrunk.bug.details
    end

    test "the majority-quorum one passes 500 iterations" do
      summary = Lockstep.run(&ReplicatedRegister.quorum_body/0, iterations: 500, seed: 11)
      assert summary.iterations == 500
    end
  end

  defp assert_record(trace, step, kind) do
    assert Enum.any?(trace, &match?({^step, {:nif, _, ^kind}}, &1)),
           "no #{inspect(kind)} at step #{step}"
  end

  describe "recording" do
    test "a crash inside call/4 is :info and goes on as it was" do
      # The write crashed: it may have happened, so reading 1 later is fine.
      Lockstep.run(
        fn ->
          h = History.new(model: Register)

          assert_raise RuntimeError, "boom", fn ->
            History.call(h, :write, 1, fn -> raise "boom" end)
          end

          assert catch_exit(History.call(h, :write, 2, fn -> exit(:timeout) end)) == :timeout
          History.call(h, :read, nil, fn -> 1 end)
        end,
        iterations: 3
      )
    end

    test "a user model, checked when the iteration ends" do
      alias Lockstep.HistoryModels.Stack

      {:error, bug} =
        Lockstep.check(
          fn ->
            h = History.new(model: Stack)
            History.call(h, :push, 1, fn -> :ok end)
            History.call(h, :push, 2, fn -> :ok end)
            # A queue passed off as a stack.
            History.call(h, :pop, nil, fn -> 1 end)
          end,
          iterations: 1
        )

      assert bug.kind == :linearizability
      # The pop of 1 is shown with the push it took 1 from.
      assert %{model: Stack, ops: ops} = bug.details

      assert Enum.map(ops, &{&1.op, &1.arg, &1.result}) ==
               [{:push, 1, :ok}, {:push, 2, :ok}, {:pop, nil, 1}]

      assert Exception.message(bug) =~
               "a history is not linearizable (Lockstep.HistoryModels.Stack)"
    end

    test "a failed result did not happen" do
      {:error, bug} =
        Lockstep.check(
          fn ->
            h = History.new(model: Register)
            assert History.call(h, :write, 1, fn -> {:error, :nope} end) == {:error, :nope}
            History.call(h, :read, nil, fn -> 1 end)
          end,
          iterations: 1
        )

      assert bug.kind == :linearizability
      assert [%{op: :read, result: 1}] = bug.details.ops
    end

    test "invoke and complete from different processes; open operations count as :info" do
      Lockstep.run(
        fn ->
          h = History.new(model: Register, consistency: :sequential)
          ref = History.invoke(h, :write, 1)
          pid = Lockstep.spawn(fn -> History.complete(h, ref, :ok) end)
          Lockstep.monitor(pid)

          Lockstep.receive do
            {:DOWN, _, _, _, _} -> :ok
          end

          History.invoke(h, :write, 2)
          History.call(h, :read, nil, fn -> 2 end)
        end,
        iterations: 5
      )
    end

    test "a history checked across a node stop and start" do
      body = fn restarted_reads ->
        fn ->
          Cluster.start_nodes([:b])
          h = History.new(model: Register)
          root = self()

          Cluster.spawn(:b, fn ->
            History.call(h, :write, 1, fn -> :ok end)
            # Left open when its node stops: :info.
            History.invoke(h, :write, 2)
            Lockstep.send(root, :written)

            Lockstep.receive do
              :never -> :ok
            end
          end)

          Lockstep.receive do
            :written -> :ok
          end

          Cluster.stop_node(:b)
          Cluster.start_node(:b)

          Cluster.spawn(:b, fn ->
            History.call(h, :read, nil, fn -> restarted_reads end)
            Lockstep.send(root, :read)
          end)

          Lockstep.receive do
            :read -> :ok
          end
        end
      end

      # The write of 2 may have happened before the node went down: reading 2 or 1 is fine.
      Lockstep.run(body.(2), iterations: 20)
      Lockstep.run(body.(1), iterations: 20)

      # A restarted node that lost the completed write of 1 (reads nil) is caught.
      {:error, bug} = Lockstep.check(body.(nil), iterations: 20)
      assert bug.kind == :linearizability

      assert [%{op: :write, arg: 1, node: :b, process: p1}, %{op: :read, node: :b, process: p2}] =
               bug.details.ops

      assert p1 != p2
    end

    test "an iteration's records are taken when it ends, open operations too" do
      tags = :ets.new(:tags, [:public, :bag])

      Lockstep.run(
        fn ->
          {_session, _id, tag} = Lockstep.Runtime.context()
          :ets.insert(tags, {:tag, tag})
          h = History.new(model: Register)
          History.call(h, :read, nil, fn -> nil end)
          History.invoke(h, :write, 1)
        end,
        iterations: 10
      )

      table = Lockstep.History.Store.table()
      seen = for {:tag, tag} <- :ets.tab2list(tags), do: tag
      assert length(seen) == 10

      for tag <- seen do
        assert :ets.select_count(table, [
                 {{{tag, :_, :_}, :_}, [], [true]},
                 {{{tag, :_, :_, :_}, :_}, [], [true]}
               ]) == 0
      end
    end

    test "KV with a map as its initial state: those keys start at their values" do
      summary =
        Lockstep.run(
          fn ->
            h = History.new(model: {Lockstep.Model.KV, %{x: 1}})
            me = self()

            Lockstep.spawn(fn ->
              History.call(h, :read, :x, fn -> 1 end)
              Lockstep.send(me, :done)
            end)

            History.call(h, :read, :y, fn -> nil end)
            Lockstep.recv()
          end,
          iterations: 20
        )

      assert summary.iterations == 20
    end

    test "instrumented code: a lost update of a get/put counter" do
      alias Lockstep.TestSupport.PlainCounter

      body = fn ->
        h = History.new(model: Lockstep.Model.Counter)
        counter = PlainCounter.start(0)
        root = self()

        for _ <- 1..2 do
          Lockstep.spawn(fn ->
            History.call(h, :add, 1, fn -> PlainCounter.increment(counter) end)
            Lockstep.send(root, :done)
          end)
        end

        for _ <- 1..2 do
          Lockstep.receive do
            :done -> :ok
          end
        end

        History.call(h, :read, nil, fn -> PlainCounter.value(counter) end)
      end

      {:error, bug} = Lockstep.check(body, iterations: 200, instrument: [PlainCounter], seed: 5)

      assert bug.kind == :linearizability
      assert [%{op: :add}, %{op: :add}, %{op: :read, result: 1}] = bug.details.ops
    end
  end

  describe "bad input" do
    test "outside a run" do
      assert_raise Lockstep.NotManagedError, fn -> History.new(model: Register) end
    end

    test "bad options, unknown operations and refs are named" do
      errors =
        for fun <- [
              fn -> History.new([]) end,
              fn -> History.new(model: Register, strong: true) end,
              fn -> History.new(model: Register, consistency: :strict) end,
              fn -> History.new(model: :nope) end,
              fn -> History.invoke(History.new(model: Register), :cas, {1, 2}) end,
              fn -> History.complete(History.new(model: Register), make_ref(), :ok) end,
              fn ->
                h = History.new(model: Register)
                ref = History.invoke(h, :write, 1)
                History.complete(h, ref, :ok)
                History.complete(h, ref, :ok)
              end,
              fn -> History.invoke(:not_a_history, :read, nil) end,
              fn -> History.call(History.new(model: Register), :read, nil, :not_a_fun) end,
              fn -> History.new(model: {Lockstep.Model.Counter, :zero}) end,
              fn -> History.new(model: {Lockstep.Model.Queue, :empty}) end,
              fn ->
                History.call(History.new(model: Lockstep.Model.CASRegister), :cas, {nil, 1}, fn ->
                  :ok
                end)
              end,
              fn ->
                h = History.new(model: Lockstep.Model.Set)
                ref = History.invoke(h, :read, nil)

                try do
                  History.complete(h, ref, :not_a_list)
                rescue
                  ArgumentError -> History.complete(h, ref, [])
                end

                History.complete(h, ref, :twice)
              end
            ] do
          {:error, bug} = Lockstep.check(fun, iterations: 1)
          assert bug.kind == :exception
          {:error, %ArgumentError{message: message}, _} = bug.reason
          message
        end

      assert [
               "Lockstep.History.new/1 needs model:" <> _,
               "unknown Lockstep.History option(s) [:strong]" <> _,
               "consistency must be :linearizable or :sequential, got: :strict",
               ":nope is not a Lockstep.Model" <> _,
               "Lockstep.Model.Register has no operation :cas (its operations: :read, :write)",
               "Lockstep.History.complete/3: #Reference" <> _,
               "Lockstep.History.complete/3: #Reference" <> second,
               "expected a Lockstep.History" <> _,
               "Lockstep.History.call/4 expects a zero-arity function" <> _,
               # A bad initial state is named where it is given, not when the iteration ends.
               "a Counter starts at an integer, got: :zero",
               "a Queue starts with a list of elements, got: :empty",
               # So is a result the model's operation cannot have, where it is recorded.
               "Lockstep.Model.CASRegister :cas: the result must be true or false, got: :ok",
               # (the operation stayed open: completed again, then no more)
               "Lockstep.History.complete/3: #Reference" <> third
             ] = errors

      assert third =~ "not an open operation of this history"

      assert second =~ "not an open operation of this history"
    end
  end
end
