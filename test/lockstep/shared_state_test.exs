defmodule Lockstep.SharedStateTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{Atomics, BugFound, Counters, ETS, PersistentTerm}
  import Lockstep.TestSupport, only: [tmp_dir!: 0]

  # Programs under test ----------------------------------------------------------------------

  # Two processes bump a counter in a named ETS table; the root checks the total.
  defp ets_counter(:racy) do
    fn ->
      ETS.new(:hits, [:named_table, :public, :set])
      ETS.insert(:hits, {:count, 0})
      me = self()

      for _ <- 1..2 do
        Lockstep.spawn(fn ->
          [{:count, n}] = ETS.lookup(:hits, :count)
          ETS.insert(:hits, {:count, n + 1})
          Lockstep.send(me, :done)
        end)
      end

      Lockstep.recv()
      Lockstep.recv()
      [{:count, total}] = ETS.lookup(:hits, :count)
      if total != 2, do: raise("lost update: count is #{total}, expected 2")
    end
  end

  defp ets_counter(:atomic) do
    fn ->
      ETS.new(:hits, [:named_table, :public, :set])
      ETS.insert(:hits, {:count, 0})
      me = self()

      for _ <- 1..2 do
        Lockstep.spawn(fn ->
          ETS.update_counter(:hits, :count, 1)
          Lockstep.send(me, :done)
        end)
      end

      Lockstep.recv()
      Lockstep.recv()
      [{:count, total}] = ETS.lookup(:hits, :count)
      if total != 2, do: raise("lost update: count is #{total}, expected 2")
    end
  end

  # Same lost update on an unnamed table (tid passed around).
  defp ets_counter_unnamed do
    fn ->
      tid = ETS.new(:hits, [:public])
      ETS.insert(tid, {:count, 0})
      me = self()

      for _ <- 1..2 do
        Lockstep.spawn(fn ->
          [{:count, n}] = ETS.lookup(tid, :count)
          ETS.insert(tid, {:count, n + 1})
          Lockstep.send(me, :done)
        end)
      end

      Lockstep.recv()
      Lockstep.recv()
      if ETS.lookup(tid, :count) != [{:count, 2}], do: raise("lost update")
    end
  end

  # "Create the table unless it exists", done by two processes at once. Each stays alive
  # until both are ready (a table dies with its owner: stopping one early would make the
  # other's insert fail, a different bug).
  defp ensure_table_race do
    fn ->
      me = self()

      workers =
        for _ <- 1..2 do
          Lockstep.spawn(fn ->
            if ETS.info(:cache) == :undefined do
              ETS.new(:cache, [:named_table, :public])
            end

            ETS.insert(:cache, {self(), :ready})
            Lockstep.send(me, :ready)
            :stop = Lockstep.recv()
          end)
        end

      :ready = Lockstep.recv()
      :ready = Lockstep.recv()
      Enum.each(workers, &Lockstep.send(&1, :stop))
    end
  end

  defp atomics_counter(mode) do
    fn ->
      ref = Atomics.new(1, [])
      me = self()

      for _ <- 1..2 do
        Lockstep.spawn(fn ->
          case mode do
            :racy ->
              v = Atomics.get(ref, 1)
              Atomics.put(ref, 1, v + 1)

            :atomic ->
              Atomics.add(ref, 1, 1)
          end

          Lockstep.send(me, :done)
        end)
      end

      Lockstep.recv()
      Lockstep.recv()
      total = Atomics.get(ref, 1)
      if total != 2, do: raise("lost update: atomic is #{total}, expected 2")
    end
  end

  defp counters_counter(mode) do
    fn ->
      ref = Counters.new(1, [:write_concurrency])
      me = self()

      for _ <- 1..2 do
        Lockstep.spawn(fn ->
          case mode do
            :racy -> Counters.put(ref, 1, Counters.get(ref, 1) + 1)
            :atomic -> Counters.add(ref, 1, 1)
          end

          Lockstep.send(me, :done)
        end)
      end

      Lockstep.recv()
      Lockstep.recv()
      total = Counters.get(ref, 1)
      if total != 2, do: raise("lost update: counter is #{total}, expected 2")
    end
  end

  # ETS ----------------------------------------------------------------------------------------

  describe "ETS lookup-then-insert lost update" do
    for strategy <- [:pct, :pos, :random] do
      test "is found by #{inspect(strategy)} and the trace shows the shared-state steps" do
        dir = tmp_dir!()

        bug =
          assert_raise BugFound, fn ->
            Lockstep.run(ets_counter(:racy),
              strategy: unquote(strategy),
              iterations: 300,
              seed: 7,
              trace_dir: dir
            )
          end

        assert bug.kind == :exception

        assert {:error, %RuntimeError{message: "lost update: count is 1, expected 2"}, _} =
                 bug.reason

        # Every table operation is an {:nif, proc, kind} event carrying the kind the wrapper
        # gave, table name and key included.
        nifs = for {step, {:nif, who, kind}} <- bug.trace, do: {step, who, kind}
        assert Enum.all?(bug.trace, &match?({step, _} when is_integer(step), &1))

        assert {_, "P", {:ets_new, :hits}} = hd(nifs)
        assert Enum.any?(nifs, &match?({_, "P", {:ets_insert, :hits, :count}}, &1))

        for worker <- ["P.1", "P.2"] do
          worker_ops = for {_, ^worker, kind} <- nifs, do: kind
          assert worker_ops == [{:ets_lookup, :hits, :count}, {:ets_insert, :hits, :count}]
        end

        # The lost update itself: both workers read before either wrote.
        order = for {_, who, {op, :hits, :count}} <- nifs, who != "P", do: {who, op}
        assert [{_, :ets_lookup}, {_, :ets_lookup}, {_, :ets_insert}, {_, :ets_insert}] = order

        assert File.exists?(bug.trace_path)
        assert Exception.message(bug) =~ ":ets_lookup"
      end
    end

    test "is found on an unnamed table too (trace shows the tid)" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(ets_counter_unnamed(),
                 iterations: 300,
                 seed: 3,
                 trace_dir: tmp_dir!()
               )

      assert bug.kind == :exception

      assert Enum.any?(bug.trace, fn
               {_, {:nif, "P.1", {:ets_lookup, tid, :count}}} -> is_reference(tid)
               _ -> false
             end)
    end

    test "is deterministic for a seed and replays exactly from its trace file" do
      dir = tmp_dir!()
      opts = [strategy: :pos, iterations: 300, seed: 21, trace_dir: dir]

      assert {:error, %BugFound{} = bug} = Lockstep.check(ets_counter(:racy), opts)
      assert {:error, %BugFound{} = again} = Lockstep.check(ets_counter(:racy), opts)
      assert again.trace == bug.trace
      assert again.schedule == bug.schedule

      replayed =
        assert_raise BugFound, fn -> Lockstep.replay(ets_counter(:racy), bug.trace_path) end

      assert replayed.kind == bug.kind
      assert replayed.trace == bug.trace
    end

    for strategy <- [:pct, :pos, :random] do
      test "update_counter version passes 300 iterations under #{inspect(strategy)}" do
        summary =
          Lockstep.run(ets_counter(:atomic),
            strategy: unquote(strategy),
            iterations: 300,
            seed: 11
          )

        assert summary.iterations == 300
        assert summary.max_steps_hit == 0
        assert summary.distinct_schedules > 1
      end
    end
  end

  describe "named tables" do
    test "two processes racing to create the same named table is found as a :crash" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(ensure_table_race(),
                 iterations: 300,
                 seed: 42,
                 trace_dir: tmp_dir!()
               )

      assert bug.kind == :crash
      assert bug.process in ["P.1", "P.2"]
      assert {:error, %ArgumentError{message: message}, stacktrace} = bug.reason
      assert message =~ "table name already exists"

      assert Enum.any?(
               stacktrace,
               &match?({Lockstep.ETS, fun, 2, _} when fun in [:new, :managed_new], &1)
             )

      # Both checked that the table did not exist before either created it.
      kinds = for {_, {:nif, who, kind}} <- bug.trace, do: {who, kind}
      assert [{w1, {:ets_info, :cache}}, {w2, {:ets_info, :cache}} | _] = kinds
      assert Enum.sort([w1, w2]) == ["P.1", "P.2"]
      assert {w1, {:ets_new, :cache}} in kinds
      assert {w2, {:ets_new, :cache}} in kinds
    end

    test "info/1,2 report the name a table was renamed to, as :ets.info does" do
      plain = fn ->
        name = :"lockstep_ren_#{System.unique_integer([:positive])}"
        to = :"#{name}_2"
        :ets.new(name, [:named_table])
        ^to = :ets.rename(name, to)
        result = {:ets.info(to, :name) == to, Keyword.get(:ets.info(to), :name) == to}
        :ets.delete(to)
        result
      end

      assert plain.() == {true, true}
      test = self()

      Lockstep.run(
        fn ->
          ETS.new(:before, [:named_table])
          :after = ETS.rename(:before, :after)

          Lockstep.send(
            test,
            {:names, ETS.info(:after, :name), Keyword.get(ETS.info(:after), :name)}
          )
        end,
        iterations: 3
      )

      assert_received {:names, :after, :after}
    end

    test "a duplicate name raises the same ArgumentError as :ets.new/2" do
      expected =
        try do
          name = :"lockstep_dup_#{System.unique_integer([:positive])}"
          :ets.new(name, [:named_table])
          :ets.new(name, [:named_table])
        rescue
          e in ArgumentError -> e
        end

      Lockstep.run(
        fn ->
          assert ETS.new(:dup, [:named_table]) == :dup

          assert_raise ArgumentError, expected.message, fn ->
            ETS.new(:dup, [:named_table, :set])
          end
        end,
        iterations: 3
      )
    end

    test "are not created under the global name, are resolved by name, and free the name on delete" do
      Lockstep.run(
        fn ->
          assert ETS.new(:lockstep_run_only, [:named_table, :public, :ordered_set]) ==
                   :lockstep_run_only

          # Not a real named table: invisible to plain :ets.
          assert :ets.whereis(:lockstep_run_only) == :undefined
          assert ETS.info(:lockstep_run_only, :named_table) == true
          assert ETS.info(:lockstep_run_only, :name) == :lockstep_run_only
          assert ETS.info(:lockstep_run_only, :type) == :ordered_set
          assert Keyword.fetch!(ETS.info(:lockstep_run_only), :named_table) == true

          assert ETS.insert(:lockstep_run_only, {1, :a})
          assert ETS.lookup(:lockstep_run_only, 1) == [{1, :a}]

          # Another process of the same node sees it by name.
          me = self()
          Lockstep.spawn(fn -> Lockstep.send(me, ETS.lookup(:lockstep_run_only, 1)) end)
          assert Lockstep.recv() == [{1, :a}]

          assert ETS.delete(:lockstep_run_only)
          assert ETS.info(:lockstep_run_only) == :undefined

          assert_raise ArgumentError, ~r/does not refer to an existing ETS table/, fn ->
            ETS.lookup(:lockstep_run_only, 1)
          end

          # The name is free again.
          assert ETS.new(:lockstep_run_only, [:named_table]) == :lockstep_run_only
        end,
        iterations: 5
      )

      assert :ets.whereis(:lockstep_run_only) == :undefined
    end

    test "a table dies with its owner and its name becomes free, as in OTP" do
      Lockstep.run(
        fn ->
          me = self()

          owner =
            Lockstep.spawn(fn ->
              ETS.new(:owned, [:named_table, :public])
              Lockstep.send(me, :created)
            end)

          ref = Lockstep.monitor(owner)
          :created = Lockstep.recv_first(&(&1 == :created))

          # :normal, or :noproc when it had exited before the monitor was set.
          Lockstep.receive do
            {:DOWN, ^ref, :process, _, reason} when reason in [:normal, :noproc] -> :ok
          end

          assert ETS.info(:owned) == :undefined
          assert ETS.new(:owned, [:named_table]) == :owned
        end,
        iterations: 5
      )
    end

    test "all/0 lists a named table of the caller's node by its name, as :ets.all/0 does" do
      # Plain OTP: a named table by its name, an unnamed one by its tid.
      named = :"lockstep_all_#{System.unique_integer([:positive])}"
      :ets.new(named, [:named_table])
      unnamed = :ets.new(:unnamed, [])
      assert named in :ets.all() and unnamed in :ets.all()
      :ets.delete(named)

      Lockstep.run(
        fn ->
          [a] = Lockstep.Cluster.start_nodes([:a])
          assert ETS.new(:listed, [:named_table, :public]) == :listed
          tid = ETS.new(:not_named, [:public])
          me = self()

          other =
            Lockstep.spawn(
              fn ->
                ETS.new(:listed_on_a, [:named_table, :public])
                Lockstep.send(me, {:on_a, ETS.all()})
                :stop = Lockstep.recv()
              end,
              node: a
            )

          {:on_a, seen_on_a} = Lockstep.recv()
          here = ETS.all()

          # By name on its own node, never also as its tid.
          assert :listed in here and tid in here
          refute ETS.whereis(:listed) in here
          assert :listed_on_a in seen_on_a
          refute :listed in seen_on_a

          # A table named on another simulated node is not the root node's: its tid.
          refute :listed_on_a in here

          Lockstep.send(other, :stop)
        end,
        iterations: 10
      )
    end

    test "a real named table outside the run is not visible by name inside it" do
      name = :"lockstep_outside_#{System.unique_integer([:positive])}"
      :ets.new(name, [:named_table, :public])

      Lockstep.run(
        fn ->
          assert ETS.info(name) == :undefined
          assert_raise ArgumentError, fn -> ETS.insert(name, {1}) end
          # A run may create its own table of that name.
          assert ETS.new(name, [:named_table]) == name
        end,
        iterations: 2
      )

      assert :ets.info(name, :size) == 0
    end

    test "are per simulated node" do
      Lockstep.run(
        fn ->
          [a, b] = Lockstep.Cluster.start_nodes([:a, :b])
          me = self()

          owners =
            for {node, value} <- [{a, :on_a}, {b, :on_b}] do
              Lockstep.spawn(
                fn ->
                  # Both nodes may own a table named :cache (no "name already exists").
                  ETS.new(:cache, [:named_table, :public])
                  ETS.insert(:cache, {:value, value})
                  Lockstep.send(me, {:created, Lockstep.node()})
                  # The owner stays alive (its table with it) until told to stop.
                  :stop = Lockstep.recv()
                end,
                node: node
              )
            end

          created = for _ <- 1..2, do: Lockstep.recv()
          assert Enum.sort(created) == Enum.sort([{:created, a}, {:created, b}])

          # Another process on each node reads its own node's table by name.
          for node <- [a, b] do
            Lockstep.spawn(
              fn -> Lockstep.send(me, {Lockstep.node(), ETS.lookup(:cache, :value)}) end,
              node: node
            )
          end

          reads = for _ <- 1..2, do: Lockstep.recv()

          assert Enum.sort(reads) ==
                   Enum.sort([{a, [{:value, :on_a}]}, {b, [{:value, :on_b}]}])

          # The root's node (:nonode@nohost) has no :cache, and no global table was made.
          assert ETS.info(:cache) == :undefined
          assert :ets.whereis(:cache) == :undefined

          Enum.each(owners, &Lockstep.send(&1, :stop))
        end,
        iterations: 30
      )
    end
  end

  describe "errors stay real inside a run" do
    test "ArgumentError from :ets is an ArgumentError; info of a missing table is :undefined" do
      Lockstep.run(
        fn ->
          tid = ETS.new(:t, [:set, :protected])

          assert_raise ArgumentError, ~r/not a key that exists in the table/, fn ->
            ETS.lookup_element(tid, :missing, 2)
          end

          assert_raise ArgumentError, ~r/does not refer to an existing ETS table/, fn ->
            ETS.lookup(:no_such_table, 1)
          end

          assert_raise ArgumentError, fn -> ETS.insert(tid, :not_a_tuple) end
          assert_raise ArgumentError, fn -> ETS.update_counter(tid, :missing, 1) end
          assert ETS.info(:no_such_table) == :undefined
          assert ETS.info(:no_such_table, :size) == :undefined

          assert_raise ArgumentError, ~r/out of range/, fn ->
            Atomics.get(Atomics.new(1, []), 2)
          end

          assert_raise ArgumentError, ~r/no persistent term stored with this key/, fn ->
            PersistentTerm.get(:lockstep_missing_key)
          end
        end,
        iterations: 2
      )
    end

    test "a protected table refuses writes from other processes, as in OTP" do
      Lockstep.run(
        fn ->
          ETS.new(:prot, [:named_table, :protected])
          me = self()

          Lockstep.spawn(fn ->
            result =
              try do
                ETS.insert(:prot, {1})
              rescue
                e in ArgumentError -> {:error, e.message}
              end

            Lockstep.send(me, result)
          end)

          assert {:error, message} = Lockstep.recv()
          assert message =~ "access"
        end,
        iterations: 2
      )
    end
  end

  # Every wrapper, inside and outside a run ---------------------------------------------------

  # Exercises every ETS, atomics and counters wrapper and returns what they returned. Run
  # inside a run and outside one, the results must be equal (and equal to plain calls).
  defp exercise_all(name) do
    t = ETS.new(name, [:named_table, :public, :ordered_set])
    s = ETS.new(:bag, [:bag, :public])

    r = %{
      new: t,
      insert: ETS.insert(t, [{1, :a, 0}, {2, :b, 0}, {3, :c, 0}]),
      insert_one: ETS.insert(t, {4, :d, 0}),
      insert_new_dup: ETS.insert_new(t, {1, :x, 0}),
      insert_new: ETS.insert_new(t, {5, :e, 0}),
      lookup: ETS.lookup(t, 1),
      lookup_missing: ETS.lookup(t, 99),
      lookup_element: ETS.lookup_element(t, 2, 2),
      member: {ETS.member(t, 3), ETS.member(t, 99)},
      update_counter: ETS.update_counter(t, 1, {3, 5}),
      update_counter4: ETS.update_counter(t, 6, {3, 1}, {6, :f, 10}),
      update_element: ETS.update_element(t, 2, {2, :bb}),
      select: ETS.select(t, [{{:"$1", :_, :"$2"}, [{:>, :"$2", 0}], [:"$1"]}]),
      match: ETS.match(t, {:"$1", :bb, :_}),
      match_object: ETS.match_object(t, {:_, :c, :_}),
      first: ETS.first(t),
      next: ETS.next(t, 1),
      last: ETS.last(t),
      prev: ETS.prev(t, 6),
      take: ETS.take(t, 4),
      delete_key: ETS.delete(t, 5),
      match_delete: ETS.match_delete(t, {:_, :c, :_}),
      tab2list: ETS.tab2list(t),
      info_size: ETS.info(t, :size),
      info_type: ETS.info(t, :type),
      info_named: ETS.info(t, :named_table),
      info_list: ETS.info(t) |> Keyword.take([:size, :type, :keypos, :named_table, :name]),
      bag: {ETS.insert(s, [{:k, 1}, {:k, 2}]), Enum.sort(ETS.lookup(s, :k))},
      delete_all_objects: ETS.delete_all_objects(t),
      after_clear: ETS.tab2list(t),
      delete: ETS.delete(t),
      info_deleted: ETS.info(t)
    }

    a = Atomics.new(2, signed: true)

    atomics = %{
      put: Atomics.put(a, 1, 10),
      get: Atomics.get(a, 1),
      add: Atomics.add(a, 1, 5),
      add_get: Atomics.add_get(a, 1, 1),
      sub: Atomics.sub(a, 1, 2),
      sub_get: Atomics.sub_get(a, 1, 1),
      exchange: Atomics.exchange(a, 2, 7),
      cas_ok: Atomics.compare_exchange(a, 2, 7, 8),
      cas_fail: Atomics.compare_exchange(a, 2, 7, 9),
      final: {Atomics.get(a, 1), Atomics.get(a, 2)},
      info_size: Atomics.info(a).size
    }

    c = Counters.new(2, [:atomics])

    counters = %{
      add: Counters.add(c, 1, 4),
      sub: Counters.sub(c, 1, 1),
      put: Counters.put(c, 2, 9),
      get: {Counters.get(c, 1), Counters.get(c, 2)},
      info_size: Counters.info(c).size
    }

    %{ets: r, atomics: atomics, counters: counters}
  end

  defp expected_results(name) do
    %{
      ets: %{
        new: name,
        insert: true,
        insert_one: true,
        insert_new_dup: false,
        insert_new: true,
        lookup: [{1, :a, 0}],
        lookup_missing: [],
        lookup_element: :b,
        member: {true, false},
        update_counter: 5,
        update_counter4: 11,
        update_element: true,
        select: [1, 6],
        match: [[2]],
        match_object: [{3, :c, 0}],
        first: 1,
        next: 2,
        last: 6,
        prev: 5,
        take: [{4, :d, 0}],
        delete_key: true,
        match_delete: true,
        tab2list: [{1, :a, 5}, {2, :bb, 0}, {6, :f, 11}],
        info_size: 3,
        info_type: :ordered_set,
        info_named: true,
        info_list: [name: name, named_table: true, type: :ordered_set, keypos: 1, size: 3],
        bag: {true, [{:k, 1}, {:k, 2}]},
        delete_all_objects: true,
        after_clear: [],
        delete: true,
        info_deleted: :undefined
      },
      atomics: %{
        put: :ok,
        get: 10,
        add: :ok,
        add_get: 16,
        sub: :ok,
        sub_get: 13,
        exchange: 0,
        cas_ok: :ok,
        cas_fail: 8,
        final: {13, 8},
        info_size: 2
      },
      counters: %{add: :ok, sub: :ok, put: :ok, get: {3, 9}, info_size: 2}
    }
  end

  defp sort_info(results), do: update_in(results, [:ets, :info_list], &Enum.sort/1)

  describe "every wrapper" do
    test "works outside a run as the plain call" do
      name = :"lockstep_plain_#{System.unique_integer([:positive])}"
      results = exercise_all(name)
      assert sort_info(results) == sort_info(expected_results(name))

      # Outside a run a named table is a real, global named table.
      t = ETS.new(name, [:named_table, :public])
      assert :ets.whereis(name) != :undefined
      assert ETS.insert(name, {:k, 1}) and :ets.lookup(name, :k) == [{:k, 1}]

      assert_raise ArgumentError, ~r/table name already exists/, fn ->
        ETS.new(name, [:named_table])
      end

      assert ETS.delete(t)

      assert_raise ArgumentError, fn -> ETS.lookup(:lockstep_no_such_table, 1) end
      assert ETS.info(:lockstep_no_such_table) == :undefined

      key = {__MODULE__, :plain, System.unique_integer([:positive])}
      assert PersistentTerm.get(key, :none) == :none
      assert PersistentTerm.put(key, 42) == :ok
      assert PersistentTerm.get(key) == 42
      assert :persistent_term.get(key) == 42
      assert PersistentTerm.erase(key) == true
      assert PersistentTerm.erase(key) == false
      assert_raise ArgumentError, fn -> PersistentTerm.get(key) end
    end

    test "return the same results inside a run, each as a sync point" do
      name = :lockstep_in_run

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   results = exercise_all(name)
                   assert sort_info(results) == sort_info(expected_results(name))

                   key = :cfg
                   assert PersistentTerm.get(key, :none) == :none
                   assert PersistentTerm.put(key, %{limit: 3}) == :ok
                   assert PersistentTerm.get(key) == %{limit: 3}
                   assert PersistentTerm.erase(key) == true
                   assert PersistentTerm.erase(key) == false
                   # Fail on purpose to get the captured trace of this passing body.
                   raise "done"
                 end,
                 iterations: 1,
                 trace_dir: tmp_dir!()
               )

      assert {:error, %RuntimeError{message: "done"}, _} = bug.reason
      kinds = for {_, {:nif, "P", kind}} <- bug.trace, do: kind

      for expected <- [
            {:ets_new, name},
            {:ets_insert, name, {:keys, [1, 2, 3]}},
            {:ets_insert, name, 4},
            {:ets_insert_new, name, 1},
            {:ets_lookup, name, 1},
            {:ets_lookup_element, name, 2},
            {:ets_member, name, 3},
            {:ets_update_counter, name, 1},
            {:ets_update_element, name, 2},
            {:ets_select, name},
            {:ets_match, name},
            {:ets_match_object, name},
            {:ets_first, name},
            {:ets_next, name, 1},
            {:ets_last, name},
            {:ets_prev, name, 6},
            {:ets_take, name, 4},
            {:ets_delete, name, 5},
            {:ets_match_delete, name},
            {:ets_tab2list, name},
            {:ets_info, name, :size},
            {:ets_info, name},
            {:ets_delete_all_objects, name},
            {:ets_delete, name},
            {:persistent_term_get, :cfg},
            {:persistent_term_put, :cfg},
            {:persistent_term_erase, :cfg}
          ] do
        assert expected in kinds, "missing #{inspect(expected)} in #{inspect(kinds)}"
      end

      for op <- [
            :atomics_put,
            :atomics_get,
            :atomics_add,
            :atomics_add_get,
            :atomics_sub,
            :atomics_sub_get,
            :atomics_exchange,
            :atomics_compare_exchange,
            :counters_add,
            :counters_sub,
            :counters_put,
            :counters_get
          ] do
        # An atomics ref is a reference; a counters ref is a tuple holding one.
        assert Enum.any?(kinds, &match?({^op, ref, ix} when ref != nil and ix in [1, 2], &1)),
               "missing #{op}"
      end

      assert {:atomics_new, 2} in kinds
      assert {:counters_new, 2} in kinds
      assert Enum.any?(kinds, &match?({:atomics_info, _}, &1))
      assert Enum.any?(kinds, &match?({:counters_info, _}, &1))

      # The run did not leave a global table or a persistent term behind.
      assert :ets.whereis(name) == :undefined
      assert :persistent_term.get(:cfg, :none) == :none
    end
  end

  # Atomics and counters ----------------------------------------------------------------------

  describe "atomics" do
    test "get-then-put lost update is found" do
      bug =
        assert_raise BugFound, fn ->
          Lockstep.run(atomics_counter(:racy), iterations: 300, seed: 5, trace_dir: tmp_dir!())
        end

      assert bug.kind == :exception

      assert {:error, %RuntimeError{message: "lost update: atomic is 1, expected 2"}, _} =
               bug.reason

      order =
        for {_, {:nif, who, {op, ref, 1}}} <- bug.trace,
            who in ["P.1", "P.2"],
            is_reference(ref),
            do: op

      assert [:atomics_get, :atomics_get, :atomics_put, :atomics_put] = order
    end

    for strategy <- [:pct, :pos] do
      test "add version passes 300 iterations under #{inspect(strategy)}" do
        summary =
          Lockstep.run(atomics_counter(:atomic),
            strategy: unquote(strategy),
            iterations: 300,
            seed: 5
          )

        assert summary.iterations == 300
        assert summary.distinct_schedules > 1
      end
    end
  end

  describe "counters" do
    test "get-then-put lost update is found; add passes" do
      assert {:error, %BugFound{kind: :exception}} =
               Lockstep.check(counters_counter(:racy),
                 iterations: 300,
                 seed: 8,
                 trace_dir: tmp_dir!()
               )

      assert %Lockstep.Summary{iterations: 300} =
               Lockstep.run(counters_counter(:atomic), iterations: 300, seed: 8)
    end
  end

  # persistent_term ---------------------------------------------------------------------------

  describe "persistent_term" do
    test "values do not leak across simulated nodes" do
      Lockstep.run(
        fn ->
          [a, b] = Lockstep.Cluster.start_nodes([:a, :b])
          me = self()

          Lockstep.spawn(
            fn ->
              PersistentTerm.put(:config, :from_a)
              Lockstep.send(me, {:a, PersistentTerm.get(:config)})
            end,
            node: a
          )

          assert Lockstep.recv() == {:a, :from_a}

          Lockstep.spawn(
            fn ->
              before = PersistentTerm.get(:config, :unset)

              missing =
                try do
                  PersistentTerm.get(:config)
                rescue
                  ArgumentError -> :raised
                end

              PersistentTerm.put(:config, :from_b)
              Lockstep.send(me, {:b, before, missing, PersistentTerm.get(:config)})
            end,
            node: b
          )

          assert Lockstep.recv() == {:b, :unset, :raised, :from_b}

          # The root's node saw neither; node a still has its own value.
          assert PersistentTerm.get(:config, :unset) == :unset

          Lockstep.spawn(fn -> Lockstep.send(me, PersistentTerm.get(:config)) end, node: a)
          assert Lockstep.recv() == :from_a
        end,
        iterations: 20
      )

      assert :persistent_term.get(:config, :unset) == :unset
    end

    test "values do not leak from one iteration to the next" do
      key = {__MODULE__, :per_iteration}

      summary =
        Lockstep.run(
          fn ->
            assert PersistentTerm.get(key, :unset) == :unset
            PersistentTerm.put(key, :set)
            assert PersistentTerm.get(key) == :set
          end,
          iterations: 10
        )

      assert summary.iterations == 10
      assert :persistent_term.get(key, :unset) == :unset
    end

    test "get-then-put on a persistent term is a race the scheduler explores" do
      assert {:error, %BugFound{kind: :exception} = bug} =
               Lockstep.check(
                 fn ->
                   PersistentTerm.put(:n, 0)
                   me = self()

                   for _ <- 1..2 do
                     Lockstep.spawn(fn ->
                       PersistentTerm.put(:n, PersistentTerm.get(:n) + 1)
                       Lockstep.send(me, :done)
                     end)
                   end

                   Lockstep.recv()
                   Lockstep.recv()
                   if PersistentTerm.get(:n) != 2, do: raise("lost update")
                 end,
                 iterations: 300,
                 seed: 9,
                 trace_dir: tmp_dir!()
               )

      assert Enum.any?(bug.trace, &match?({_, {:nif, "P.1", {:persistent_term_get, :n}}}, &1))
    end
  end

  describe "one helper for the four wrappers (Lockstep.SharedState)" do
    defp calls(module) do
      {:ok, {^module, [imports: imports]}} = :beam_lib.chunks(:code.which(module), [:imports])
      imports
    end

    test "each wrapper reaches the scheduler through it, and none hashes objects itself" do
      for wrapper <- [ETS, Atomics, Counters, PersistentTerm] do
        imports = calls(wrapper)
        assert Enum.any?(imports, &match?({Lockstep.SharedState, _, _}, &1)), inspect(wrapper)
        refute {Lockstep.Runtime, :nif_sync, 2} in imports, inspect(wrapper)
        refute {Lockstep.Runtime, :context_or_nil, 0} in imports, inspect(wrapper)
        refute {:erlang, :phash2, 2} in imports, inspect(wrapper)
      end

      assert {:erlang, :phash2, 2} in calls(Lockstep.SharedState)
    end

    test "the end of an iteration erases persistent_term keys without calling the wrapper" do
      for teardown <- [Lockstep.Iteration, Lockstep.Janitor] do
        refute Enum.any?(calls(teardown), &match?({PersistentTerm, _, _}, &1))
      end

      for other <- [Lockstep.Iteration, Lockstep.Janitor, Lockstep.Runtime] do
        refute Enum.any?(calls(PersistentTerm), &match?({^other, _, _}, &1))
      end
    end
  end
end
