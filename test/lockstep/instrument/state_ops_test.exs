defmodule Lockstep.Instrument.StateOpsTest do
  # Lockstep.Instrument.Ops.State against OTP 25: each program runs plainly on the real
  # :ets, :atomics, :counters and :persistent_term and in a managed process on the ops
  # functions; results and exceptions (class, reason, message) are compared.
  use ExUnit.Case, async: true

  require Lockstep

  import Lockstep.OpsSupport

  alias Lockstep.BugFound
  alias Lockstep.Instrument.Ops.State, as: Ops
  alias Lockstep.OpsSupport.Real.State, as: Real

  describe "__ops__/0" do
    test "every entry names an exported function of its arity, and the original exists" do
      ops = Ops.__ops__()
      assert length(ops) == length(Enum.uniq(ops))

      for {{mod, fun, arity}, target} <- ops do
        assert function_exported?(Ops, target, arity), "#{target}/#{arity}"
        Code.ensure_loaded!(mod)
        assert function_exported?(mod, fun, arity), "#{inspect(mod)}.#{fun}/#{arity}"
      end
    end

    test "covers every function of the wrappers, and every :atomics, :counters function" do
      mfas = Enum.map(Ops.__ops__(), &elem(&1, 0))

      wrappers = [
        {Lockstep.ETS, :ets},
        {Lockstep.Atomics, :atomics},
        {Lockstep.Counters, :counters},
        {Lockstep.PersistentTerm, :persistent_term}
      ]

      for {wrapper, erlang} <- wrappers,
          {fun, arity} <- wrapper.__info__(:functions),
          # OTP's error_info callback, and the marker of the BEAM's copy of a scheduled
          # 'ETS-TRANSFER' (for the run's receives and reports)
          fun not in [:format_error, :transfer_copy?, :transfer_copy_marker] do
        assert {erlang, fun, arity} in mfas, "#{inspect(wrapper)}.#{fun}/#{arity}"
      end

      for erlang <- [:atomics, :counters, :persistent_term],
          {fun, arity} <- erlang.module_info(:exports),
          fun not in [:module_info] do
        assert {erlang, fun, arity} in mfas, "#{erlang}.#{fun}/#{arity}"
      end
    end
  end

  # Results ---------------------------------------------------------------------------------

  # Real tids and refs differ between the two runs.
  defp normalize(term) when is_reference(term), do: :ref
  defp normalize(term) when is_list(term), do: Enum.map(term, &normalize/1)

  defp normalize(term) when is_tuple(term),
    do: term |> Tuple.to_list() |> normalize() |> List.to_tuple()

  defp normalize(term) when is_map(term), do: Map.new(term, fn {k, v} -> {k, normalize(v)} end)
  defp normalize(term), do: term

  defp ets_program(m) do
    t = m.ets_new(:state_ops_set, [:set, :public])
    o = m.ets_new(:state_ops_ordered, [:ordered_set, :public])
    all_ms = [{{:"$1", :"$2"}, [], [:"$_"]}]

    steps = [
      insert_one: fn -> m.ets_insert(t, {:a, 1}) end,
      insert_list: fn -> m.ets_insert(t, [{:b, 2}, {:c, 3}]) end,
      insert_new_taken: fn -> m.ets_insert_new(t, {:a, 9}) end,
      insert_new_list: fn -> m.ets_insert_new(t, [{:d, 4}, {:e, 5}]) end,
      lookup: fn -> m.ets_lookup(t, :a) end,
      lookup_element: fn -> m.ets_lookup_element(t, :b, 2) end,
      member: fn -> {m.ets_member(t, :c), m.ets_member(t, :zz)} end,
      update_counter: fn -> m.ets_update_counter(t, :a, 1) end,
      update_counter_ops: fn -> m.ets_update_counter(t, :a, [{2, 1}, {2, 10, 15, 0}]) end,
      update_counter_default: fn -> m.ets_update_counter(t, :z, 5, {:z, 100}) end,
      update_element: fn -> m.ets_update_element(t, :b, {2, 20}) end,
      take: fn -> m.ets_take(t, :e) end,
      delete_object: fn -> m.ets_delete_object(t, {:d, 4}) end,
      select: fn -> Enum.sort(m.ets_select(t, all_ms)) end,
      select_count: fn -> m.ets_select_count(t, [{{:_, :"$1"}, [{:>, :"$1", 10}], [true]}]) end,
      match: fn -> Enum.sort(m.ets_match(t, {:"$1", :_})) end,
      match_object: fn -> Enum.sort(m.ets_match_object(t, {:_, 3})) end,
      tab2list: fn -> Enum.sort(m.ets_tab2list(t)) end,
      foldl: fn -> m.ets_foldl(fn {_, v}, acc -> acc + v end, 0, t) end,
      foldr: fn -> m.ets_foldr(fn {k, _}, acc -> [k | acc] end, [], t) |> Enum.sort() end,
      info_size: fn -> m.ets_info(t, :size) end,
      info: fn -> Keyword.take(m.ets_info(t), [:size, :type, :protection, :keypos]) end,
      safe_fixtable: fn -> {m.ets_safe_fixtable(t, true), m.ets_safe_fixtable(t, false)} end,
      slot: fn -> is_list(m.ets_slot(t, 0)) or m.ets_slot(t, 0) == :"$end_of_table" end,
      select_replace: fn ->
        m.ets_select_replace(t, [{{:c, :"$1"}, [], [{{:c, {:+, :"$1", 100}}}]}])
      end,
      after_replace: fn -> m.ets_lookup(t, :c) end,
      select_delete: fn -> m.ets_select_delete(t, [{{:_, :"$1"}, [{:>, :"$1", 100}], [true]}]) end,
      match_delete: fn -> m.ets_match_delete(t, {:z, :_}) end,
      delete_key: fn -> m.ets_delete(t, :b) end,
      left: fn -> Enum.sort(m.ets_tab2list(t)) end,
      ordered: fn -> m.ets_insert(o, for(i <- 1..7, do: {i, i * i})) end,
      first_last: fn -> {m.ets_first(o), m.ets_last(o), m.ets_next(o, 3), m.ets_prev(o, 3)} end,
      select_reverse: fn -> m.ets_select_reverse(o, all_ms) end,
      chunks: fn ->
        {first, cont} = m.ets_select(o, all_ms, 3)
        {second, cont2} = m.ets_select(cont)
        {third, cont3} = m.ets_select(cont2)
        {first, second, third, m.ets_select(cont3)}
      end,
      reverse_chunks: fn ->
        {first, cont} = m.ets_select_reverse(o, all_ms, 4)
        {first, m.ets_select_reverse(cont)}
      end,
      match_chunks: fn ->
        {first, cont} = m.ets_match(o, {:"$1", :_}, 5)
        {first, m.ets_match(cont)}
      end,
      match_object_chunks: fn ->
        {first, cont} = m.ets_match_object(o, {:_, :_}, 6)
        {first, m.ets_match_object(cont)}
      end,
      delete_all: fn -> {m.ets_delete_all_objects(o), m.ets_info(o, :size)} end,
      setopts: fn -> m.ets_setopts(o, {:heir, :none}) end,
      named: fn -> m.ets_new(:state_ops_named, [:named_table, :public]) end,
      named_insert: fn -> m.ets_insert(:state_ops_named, {:k, :v}) end,
      named_info: fn -> m.ets_info(:state_ops_named, :named_table) end,
      whereis: fn -> is_reference(m.ets_whereis(:state_ops_named)) end,
      whereis_none: fn -> m.ets_whereis(:state_ops_nobody) end,
      rename: fn -> m.ets_rename(:state_ops_named, :state_ops_renamed) end,
      renamed_lookup: fn -> m.ets_lookup(:state_ops_renamed, :k) end,
      old_name_gone: fn -> m.ets_whereis(:state_ops_named) end,
      all: fn -> is_list(m.ets_all()) end,
      give_away_self: fn -> m.ets_give_away(o, self(), :gift) end,
      delete_table: fn -> {m.ets_delete(t), m.ets_delete(:state_ops_renamed)} end,
      info_gone: fn -> {m.ets_info(t), m.ets_info(t, :size)} end
    ]

    for {name, step} <- steps, do: {name, normalize(outcome(step))}
  end

  test ":ets: every operation gives OTP's result" do
    real = plain(fn -> ets_program(Real) end)
    virtual = managed(fn -> ets_program(Ops) end)
    assert {:ok, real_steps} = real
    assert {:ok, virtual_steps} = virtual

    # give_away to oneself is OTP's badarg (the caller already owns the table)
    assert {:error, :badarg, _} = Keyword.fetch!(real_steps, :give_away_self)

    for {{name, r}, {name, v}} <- Enum.zip(real_steps, virtual_steps) do
      assert v == r, "#{name}: real #{inspect(r)}, under Lockstep #{inspect(v)}"
    end
  end

  defp shared_program(m) do
    a = m.atomics_new(3, signed: true)
    c = m.counters_new(2, [:write_concurrency])

    steps = [
      atomics: fn ->
        {m.atomics_put(a, 1, 5), m.atomics_add(a, 1, 2), m.atomics_add_get(a, 1, 3),
         m.atomics_sub(a, 2, 4), m.atomics_sub_get(a, 2, 1), m.atomics_exchange(a, 3, 9),
         m.atomics_compare_exchange(a, 3, 9, 10), m.atomics_compare_exchange(a, 3, 9, 11),
         m.atomics_get(a, 1), m.atomics_get(a, 2), m.atomics_get(a, 3)}
      end,
      atomics_info: fn -> Map.take(m.atomics_info(a), [:size, :max, :min]) end,
      counters: fn ->
        {m.counters_add(c, 1, 7), m.counters_sub(c, 1, 2), m.counters_put(c, 2, 40),
         m.counters_get(c, 1), m.counters_get(c, 2)}
      end,
      counters_info: fn -> Map.take(m.counters_info(c), [:size]) end,
      persistent: fn ->
        key = {__MODULE__, :key}

        {m.persistent_term_put(key, %{v: 1}), m.persistent_term_get(key),
         m.persistent_term_get({__MODULE__, :missing}, :default), m.persistent_term_erase(key),
         m.persistent_term_erase(key), m.persistent_term_get(key, :gone)}
      end,
      persistent_all: fn -> is_list(m.persistent_term_get()) end,
      persistent_info: fn -> Map.keys(m.persistent_term_info()) end
    ]

    for {name, step} <- steps, do: {name, normalize(outcome(step))}
  end

  test ":atomics, :counters, :persistent_term: every operation gives OTP's result" do
    assert plain(fn -> shared_program(Real) end) == managed(fn -> shared_program(Ops) end)
  end

  test ":persistent_term.get/0 and info/0 see the iteration's keys on the caller's node" do
    assert {:ok, {[], %{count: 0, memory: 0}, [{:b, 2}, {:a, [1]}], %{count: 2, memory: m}}} =
             managed(fn ->
               before = {Ops.persistent_term_get(), Ops.persistent_term_info()}
               Ops.persistent_term_put(:a, [1])
               Ops.persistent_term_put(:b, 2)

               Tuple.append(before, Enum.sort_by(Ops.persistent_term_get(), &elem(&1, 1)))
               |> Tuple.append(Ops.persistent_term_info())
             end)

    assert m > 0
  end

  # Exceptions ----------------------------------------------------------------------------

  @bad_calls [
    lookup_missing_name: &__MODULE__.lookup_missing_name/1,
    insert_missing_name: &__MODULE__.insert_missing_name/1,
    new_twice: &__MODULE__.new_twice/1,
    deleted_tid: &__MODULE__.deleted_tid/1,
    not_a_tuple: &__MODULE__.not_a_tuple/1,
    empty_tuple: &__MODULE__.empty_tuple/1,
    counter_missing: &__MODULE__.counter_missing/1,
    counter_not_integer: &__MODULE__.counter_not_integer/1,
    lookup_element_missing: &__MODULE__.lookup_element_missing/1,
    bad_option: &__MODULE__.bad_option/1,
    bad_match_spec: &__MODULE__.bad_match_spec/1,
    rename_to_taken: &__MODULE__.rename_to_taken/1,
    atomics_index: &__MODULE__.atomics_index/1,
    atomics_arity: &__MODULE__.atomics_arity/1,
    counters_index: &__MODULE__.counters_index/1,
    persistent_missing: &__MODULE__.persistent_missing/1
  ]

  @doc false
  def lookup_missing_name(m), do: m.ets_lookup(:state_ops_no_such_table, :k)
  @doc false
  def insert_missing_name(m), do: m.ets_insert(:state_ops_no_such_table, {:k, 1})

  @doc false
  def new_twice(m) do
    m.ets_new(:state_ops_twice, [:named_table])
    m.ets_new(:state_ops_twice, [:named_table, :public])
  end

  @doc false
  def deleted_tid(m) do
    t = m.ets_new(:t, [])
    m.ets_delete(t)
    m.ets_lookup(t, :k)
  end

  @doc false
  def not_a_tuple(m), do: m.ets_insert(m.ets_new(:t, []), :not_a_tuple)
  @doc false
  def empty_tuple(m), do: m.ets_insert(m.ets_new(:t, []), {})
  @doc false
  def counter_missing(m), do: m.ets_update_counter(m.ets_new(:t, []), :missing, 1)

  @doc false
  def counter_not_integer(m) do
    t = m.ets_new(:t, [])
    m.ets_insert(t, {:k, :v})
    m.ets_update_counter(t, :k, 1)
  end

  @doc false
  def lookup_element_missing(m), do: m.ets_lookup_element(m.ets_new(:t, []), :missing, 2)
  @doc false
  def bad_option(m), do: m.ets_new(:t, [:no_such_option])
  @doc false
  def bad_match_spec(m), do: m.ets_select(m.ets_new(:t, []), [:not_a_match_spec])

  @doc false
  def rename_to_taken(m) do
    m.ets_new(:state_ops_first, [:named_table])
    m.ets_new(:state_ops_second, [:named_table])
    m.ets_rename(:state_ops_first, :state_ops_second)
  end

  @doc false
  def atomics_index(m), do: m.atomics_get(m.atomics_new(2, []), 3)
  @doc false
  def atomics_arity(m), do: m.atomics_new(0, [])
  @doc false
  def counters_index(m), do: m.counters_add(m.counters_new(1, []), 2, 1)
  @doc false
  def persistent_missing(m), do: m.persistent_term_get({__MODULE__, :never_stored})

  test "bad arguments raise OTP's exception: class, reason and message" do
    for {name, call} <- @bad_calls do
      real = plain(fn -> call.(Real) end)
      virtual = managed(fn -> call.(Ops) end)
      assert {:error, _reason, _message} = real, "#{name} did not raise: #{inspect(real)}"
      assert virtual == real, "#{name}: real #{inspect(real)}, under Lockstep #{inspect(virtual)}"
    end
  end

  test "Erlang-style code catching error:badarg sees Lockstep's own badargs" do
    assert {:ok, {:caught, :caught}} =
             managed(fn ->
               a =
                 try do
                   Ops.ets_lookup(:state_ops_missing, :k)
                 catch
                   :error, :badarg -> :caught
                 end

               Ops.ets_new(:state_ops_once, [:named_table])

               b =
                 try do
                   Ops.ets_new(:state_ops_once, [:named_table])
                 catch
                   :error, :badarg -> :caught
                 end

               {a, b}
             end)
  end

  # Access rights: another process reads or writes the table ---------------------------------

  defp access_program(m, spawn_and_wait) do
    for access <- [:private, :protected, :public] do
      t = m.ets_new(:access, [access])
      m.ets_insert(t, {:k, 1})

      other =
        spawn_and_wait.(fn ->
          {outcome(fn -> m.ets_lookup(t, :k) end), outcome(fn -> m.ets_insert(t, {:k, 2}) end)}
        end)

      {access, other, m.ets_lookup(t, :k)}
    end
  end

  test ":private and :protected tables refuse other processes as OTP does" do
    plain_wait = fn fun ->
      me = self()
      spawn(fn -> send(me, {:other, fun.()}) end)

      receive do
        {:other, result} -> result
      end
    end

    managed_wait = fn fun ->
      me = self()
      Lockstep.spawn(fn -> Lockstep.send(me, {:other, fun.()}) end)
      Lockstep.receive(do: ({:other, result} -> result))
    end

    real = plain(fn -> access_program(Real, plain_wait) end)
    assert managed(fn -> access_program(Ops, managed_wait) end) == real

    assert {:ok,
            [
              {:private, {{:error, :badarg, _}, {:error, :badarg, _}}, [k: 1]},
              {:protected, {{:ok, [k: 1]}, {:error, :badarg, _}}, [k: 1]},
              {:public, {{:ok, [k: 1]}, {:ok, true}}, [k: 2]}
            ]} = real
  end

  # A table dies with its owner -------------------------------------------------------------

  test "a table is gone for the others at the point of the schedule where its owner exits" do
    test = self()

    body = fn ->
      me = self()

      owner =
        Lockstep.spawn(fn ->
          tid = Ops.ets_new(:owned, [:public])
          Ops.ets_new(:owned_named, [:named_table, :public])
          Ops.ets_insert(tid, {:k, 1})
          Lockstep.send(me, {:tid, tid})
        end)

      tid = Lockstep.receive(do: ({:tid, tid} -> tid))
      alive = Lockstep.alive?(owner)
      info = Ops.ets_info(tid)
      named = Ops.ets_whereis(:owned_named)

      if alive do
        # it may still be running, or have exited in between: nothing to check yet
        :ok
      else
        unless info == :undefined and named == :undefined do
          raise "the table outlived its owner: #{inspect({info, named})}"
        end

        Lockstep.send(test, :checked_after_exit)

        # the name is free again
        :owned_named = Ops.ets_new(:owned_named, [:named_table])

        try do
          Ops.ets_lookup(tid, :k)
          raise "lookup on a dead table did not raise"
        catch
          :error, :badarg -> :ok
        end
      end
    end

    assert {:ok, summary} = Lockstep.check(body, iterations: 300, seed: 4, strategy: :random)
    assert summary.iterations == 300
    checked = count(:checked_after_exit)
    assert checked > 30, "only #{checked} iterations saw the owner exited"

    # As in OTP: once the owner is down, the table is gone.
    real =
      plain(fn ->
        {pid, ref} = spawn_monitor(fn -> exit({:tid, :ets.new(:owned, [:public])}) end)
        tid = receive do: ({:DOWN, ^ref, :process, ^pid, {:tid, tid}} -> tid)
        {:ets.info(tid), outcome(fn -> :ets.lookup(tid, :k) end)}
      end)

    assert {:ok, {:undefined, {:error, :badarg, _}}} = real
  end

  test "a crashed owner's table is gone too" do
    assert {:ok, :gone} =
             managed(
               fn ->
                 me = self()

                 owner =
                   Lockstep.spawn(fn ->
                     Lockstep.send(me, {:tid, Ops.ets_new(:crashy, [:public])})
                     raise "owner crashes"
                   end)

                 ref = Lockstep.monitor(owner)
                 tid = Lockstep.receive(do: ({:tid, tid} -> tid))
                 Lockstep.receive(do: ({:DOWN, ^ref, _, _, _} -> :ok))
                 if Ops.ets_info(tid) == :undefined, do: :gone, else: :still_there
               end,
               crash: :ignore
             )
  end

  defp count(msg) do
    receive do
      ^msg -> 1 + count(msg)
    after
      0 -> 0
    end
  end

  # Bugs found --------------------------------------------------------------------------------

  defp counter_body(fixed?) do
    fn ->
      Ops.ets_new(:hits, [:named_table, :public])
      Ops.ets_insert(:hits, {:count, 0})
      me = self()

      for _ <- 1..2 do
        Lockstep.spawn(fn ->
          if fixed? do
            Ops.ets_update_counter(:hits, :count, 1)
          else
            [{:count, n}] = Ops.ets_lookup(:hits, :count)
            Ops.ets_insert(:hits, {:count, n + 1})
          end

          Lockstep.send(me, :done)
        end)
      end

      Lockstep.recv()
      Lockstep.recv()
      [{:count, 2}] = Ops.ets_lookup(:hits, :count)
    end
  end

  test "ETS lookup-then-insert loses an update: found; update_counter passes" do
    assert {:error, %BugFound{kind: :exception}} =
             Lockstep.check(counter_body(false), iterations: 300, seed: 2)

    assert {:ok, %{iterations: 300}} =
             Lockstep.check(counter_body(true), iterations: 300, seed: 2)
  end

  # Two workers each create the shared table if it does not exist yet: both may see no
  # table, and the second `new` raises badarg.
  defp create_body(fixed?) do
    fn ->
      me = self()

      for i <- 1..2 do
        Lockstep.spawn(fn ->
          if Ops.ets_whereis(:shared_cache) == :undefined do
            if fixed? do
              try do
                Ops.ets_new(:shared_cache, [:named_table, :public])
              catch
                :error, :badarg -> :created_by_the_other
              end
            else
              Ops.ets_new(:shared_cache, [:named_table, :public])
            end
          end

          Ops.ets_insert(:shared_cache, {i, :ready})
          Lockstep.send(me, :ready)
          Lockstep.receive(do: (:stop -> :ok))
        end)
      end

      workers = for _ <- 1..2, do: Lockstep.receive(do: (:ready -> :ok))
      2 = Ops.ets_info(:shared_cache, :size)
      workers
    end
  end

  test "a named table created twice by two processes: found as a crash; the fix passes" do
    assert {:error, %BugFound{kind: :crash} = bug} =
             Lockstep.check(create_body(false), iterations: 300, seed: 6)

    assert inspect(bug.reason) =~ "table name already exists"
    assert {:ok, %{iterations: 300}} = Lockstep.check(create_body(true), iterations: 300, seed: 6)
  end
end
