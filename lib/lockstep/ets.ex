defmodule Lockstep.ETS do
  @moduledoc """
  `:ets` with a sync point before every operation, so Lockstep can interleave the processes
  of a run between table accesses.

  Inside a run (in a managed process) each function is one scheduling step: it announces the
  operation to the scheduler (a trace event `{:nif, process, kind}` such as
  `{:nif, "P.1", {:ets_lookup, :hits, :count}}`), waits for its turn, then performs the real
  `:ets` call and returns its real result. Errors are the real ones: a missing table or a bad
  argument raises the same `ArgumentError` `:ets` raises. Outside a run every function is the
  plain `:ets` call, after a single process-dictionary check.

  ## Example: a lost update

      test "lookup-then-insert loses an update" do
        assert_raise Lockstep.BugFound, fn ->
          Lockstep.run(fn ->
            Lockstep.ETS.new(:hits, [:named_table, :public])
            Lockstep.ETS.insert(:hits, {:count, 0})
            me = self()

            for _ <- 1..2 do
              Lockstep.spawn(fn ->
                [{:count, n}] = Lockstep.ETS.lookup(:hits, :count)
                Lockstep.ETS.insert(:hits, {:count, n + 1})
                Lockstep.send(me, :done)
              end)
            end

            Lockstep.recv()
            Lockstep.recv()
            assert Lockstep.ETS.lookup(:hits, :count) == [{:count, 2}]
          end)
        end
      end

  The fix is one atomic operation: `Lockstep.ETS.update_counter(:hits, :count, 1)`.
  See the guide `docs/guide-ets.md`.

  ## Named tables are per simulated node

  Inside a run, `new(name, [:named_table | _])` does **not** create a table under the global
  name `name`: it creates an unnamed table and registers `name` for the caller's simulated
  node (see `Lockstep.Cluster`), so two simulated nodes may each own a table called `:cache`
  and a run never collides with a table of the same name elsewhere in the VM. Every function
  here accepts the name and resolves it on the caller's node. Consequences:

    * creating a name that already exists on the node raises the `ArgumentError` `:ets.new/2`
      raises for a duplicate name (so two processes racing to create a table show up as a
      crash);
    * a name nobody created on the caller's node behaves like a missing table (`ArgumentError`,
      or `:undefined` from `info/1,2`) — including a real named table created outside the run:
      pass its tid instead if a run must use it, and remember that its contents then persist
      across iterations;
    * `new/2` returns the name, like `:ets`; `info/1,2` through the name report
      `named_table: true`;
    * the table is owned by the creating process and disappears with it, as in OTP; the name
      then becomes free again.

  Calling plain `:ets` with the name inside a run does not see these tables: use this
  module throughout the code under test (an alias such as `alias Lockstep.ETS, as: Ets`
  in a module that can be compiled either way is the usual trick).

  ## What the scheduler knows about each operation

  Each sync point names the *object* it touches, so the `:pos` strategy treats operations on
  the same object as racing:

    * key-based operations (`insert/2` of one object, `insert_new/2`, `lookup/2`,
      `lookup_element/3`, `member/2`, `update_counter/3,4`, `update_element/3`, `delete/2`,
      `delete_object/2`, `take/2`) touch *table + key*;
    * whole-table operations (`new/2`, `delete/1`, `delete_all_objects/1`, `select/2,3`,
      `select_count/2`, `select_delete/2`, `select_replace/2`, `select_reverse/2,3`,
      `match/2,3`, `match_object/2,3`, `match_delete/2`, `tab2list/1`, `info/1,2`,
      `first/1`, `next/2`, `last/1`, `prev/2`, `foldl/3`, `foldr/3`, `slot/2`,
      `safe_fixtable/2`, `setopts/2`, `give_away/3`, `rename/2`, `whereis/1`, and
      `insert/2`/`insert_new/2` of several objects) touch one object standing for *the
      whole table*; `select/1`, `select_reverse/1`, `match/1` and `match_object/1` touch
      the table their continuation carries (as a tid), and `all/0` nothing.

  ## Owners and errors

  A table dies with the process that created it, as in OTP: when a managed process exits,
  the tables it created are deleted at that point of the schedule (one it gave away with
  `give_away/3` is its new owner's, and one with an heir is left to the BEAM, which hands
  it to the heir with a real `{:"ETS-TRANSFER", …}` message outside the schedule). A table's access rights are
  the real ones: another process reading a `:private` table or writing a `:protected` one
  gets `badarg`. Every error is `:ets`'s: class `:error`, reason `:badarg` (an
  `ArgumentError` to Elixir code, with `:ets`'s message), also for a per-node name this
  module resolves itself.

  Limitation: an object is a single identity, so a whole-table operation is seen as racing
  only with other whole-table operations on that table, not with key-based operations on it,
  although in reality it races with all of them. This only affects how `:pos` prioritises
  interleavings; every strategy still explores them, and the trace is exact.

  A table is identified by its name (on the caller's node) when the caller uses the name and
  by its tid otherwise; the trace shows what the caller passed.
  """

  alias Lockstep.{Runtime, SharedState}

  @transfer_copy :"$lockstep_ets_transfer_copy"

  @typedoc "A table: a name (for `:named_table` tables) or a tid."
  @type table :: atom() | :ets.tid()

  # What `:ets` says about a bad argument, by position (OTP's erl_stdlib_errors):
  # Lockstep's own badargs carry the same text through `format_error/2`.
  @causes %{
    no_table: {1, "the table identifier does not refer to an existing ETS table"},
    dead_process: {2, "the pid refers to a terminated process"},
    name_exists: {1, "table name already exists"},
    new_name_exists: {2, "table name already exists"}
  }

  # Creation and deletion ------------------------------------------------------------------

  @doc """
  Creates a table; mirrors `:ets.new/2` and returns the tid, or the name for a
  `:named_table`. Inside a run a named table is registered for the caller's simulated node
  only (see the module doc); a name already in use there raises `ArgumentError`.
  """
  @spec new(atom(), list()) :: table()
  def new(name, options) do
    if SharedState.managed?() do
      managed_new(name, options)
    else
      :ets.new(name, options)
    end
  end

  defp managed_new(name, options) do
    if is_atom(name) and is_list(options) and :named_table in options do
      SharedState.sync({:ets_new, name}, whole_object(name))

      case Runtime.ets_lookup(name) do
        nil ->
          :ok

        tid ->
          if alive_table?(tid) do
            badarg!(:new, [name, options], :name_exists)
          else
            # Its owner exited and took the table with it: the name is free, as in OTP.
            Runtime.ets_unregister(name)
          end
      end

      tid = :ets.new(name, Enum.reject(options, &(&1 == :named_table)))
      Runtime.own_table(tid)
      Runtime.ets_register(name, tid)
      name
    else
      SharedState.sync({:ets_new, name}, nil)
      tid = :ets.new(name, options)
      Runtime.own_table(tid)
      tid
    end
  end

  @doc """
  Deletes the whole table; mirrors `:ets.delete/1`. Inside a run, deleting a named table
  frees its name on the caller's node.
  """
  @spec delete(table()) :: true
  def delete(table) do
    if SharedState.managed?() do
      result = :ets.delete(whole(table, {:ets_delete, table}))
      if is_atom(table), do: Runtime.ets_unregister(table)
      result
    else
      :ets.delete(table)
    end
  end

  @doc "Deletes the objects with `key`; mirrors `:ets.delete/2`."
  @spec delete(table(), term()) :: true
  def delete(table, key) do
    if SharedState.managed?() do
      :ets.delete(keyed(table, :ets_delete, key), key)
    else
      :ets.delete(table, key)
    end
  end

  @doc "Deletes every object of the table; mirrors `:ets.delete_all_objects/1`."
  @spec delete_all_objects(table()) :: true
  def delete_all_objects(table) do
    if SharedState.managed?() do
      :ets.delete_all_objects(whole(table, {:ets_delete_all_objects, table}))
    else
      :ets.delete_all_objects(table)
    end
  end

  # Writes ---------------------------------------------------------------------------------

  @doc """
  Inserts an object or a list of objects; mirrors `:ets.insert/2`. The trace shows the key
  (`{:ets_insert, table, key}`), or `{:keys, keys}` for several objects.
  """
  @spec insert(table(), tuple() | [tuple()]) :: true
  def insert(table, objects) do
    if SharedState.managed?() do
      :ets.insert(insert_sync(table, :ets_insert, objects), objects)
    else
      :ets.insert(table, objects)
    end
  end

  @doc """
  Inserts unless a key is already present; mirrors `:ets.insert_new/2` (returns `false` and
  inserts nothing when one is).
  """
  @spec insert_new(table(), tuple() | [tuple()]) :: boolean()
  def insert_new(table, objects) do
    if SharedState.managed?() do
      :ets.insert_new(insert_sync(table, :ets_insert_new, objects), objects)
    else
      :ets.insert_new(table, objects)
    end
  end

  @doc """
  Atomically updates a counter field and returns the new value(s); mirrors
  `:ets.update_counter/3`. This is the atomic read-modify-write that fixes lookup-then-insert
  lost updates.
  """
  @spec update_counter(table(), term(), term()) :: integer() | [integer()]
  def update_counter(table, key, update_op) do
    if SharedState.managed?() do
      :ets.update_counter(keyed(table, :ets_update_counter, key), key, update_op)
    else
      :ets.update_counter(table, key, update_op)
    end
  end

  @doc """
  Like `update_counter/3`, inserting `default` first when `key` is absent; mirrors
  `:ets.update_counter/4`.
  """
  @spec update_counter(table(), term(), term(), tuple()) :: integer() | [integer()]
  def update_counter(table, key, update_op, default) do
    if SharedState.managed?() do
      :ets.update_counter(keyed(table, :ets_update_counter, key), key, update_op, default)
    else
      :ets.update_counter(table, key, update_op, default)
    end
  end

  @doc "Updates fields of the object with `key`; mirrors `:ets.update_element/3`."
  @spec update_element(table(), term(), {pos_integer(), term()} | [{pos_integer(), term()}]) ::
          boolean()
  def update_element(table, key, element_spec) do
    if SharedState.managed?() do
      :ets.update_element(keyed(table, :ets_update_element, key), key, element_spec)
    else
      :ets.update_element(table, key, element_spec)
    end
  end

  @doc "Returns and deletes the objects with `key`; mirrors `:ets.take/2`."
  @spec take(table(), term()) :: [tuple()]
  def take(table, key) do
    if SharedState.managed?() do
      :ets.take(keyed(table, :ets_take, key), key)
    else
      :ets.take(table, key)
    end
  end

  @doc "Deletes the objects matching `pattern`; mirrors `:ets.match_delete/2`."
  @spec match_delete(table(), :ets.match_pattern()) :: true
  def match_delete(table, pattern) do
    if SharedState.managed?() do
      :ets.match_delete(whole(table, {:ets_match_delete, table}), pattern)
    else
      :ets.match_delete(table, pattern)
    end
  end

  # Reads ----------------------------------------------------------------------------------

  @doc "Returns the objects with `key`; mirrors `:ets.lookup/2`."
  @spec lookup(table(), term()) :: [tuple()]
  def lookup(table, key) do
    if SharedState.managed?() do
      :ets.lookup(keyed(table, :ets_lookup, key), key)
    else
      :ets.lookup(table, key)
    end
  end

  @doc """
  Returns field `pos` of the object(s) with `key`; mirrors `:ets.lookup_element/3` (raises
  `ArgumentError` when there is no such key).
  """
  @spec lookup_element(table(), term(), pos_integer()) :: term()
  def lookup_element(table, key, pos) do
    if SharedState.managed?() do
      :ets.lookup_element(keyed(table, :ets_lookup_element, key), key, pos)
    else
      :ets.lookup_element(table, key, pos)
    end
  end

  @doc "Whether an object with `key` exists; mirrors `:ets.member/2`."
  @spec member(table(), term()) :: boolean()
  def member(table, key) do
    if SharedState.managed?() do
      :ets.member(keyed(table, :ets_member, key), key)
    else
      :ets.member(table, key)
    end
  end

  @doc "Runs a match specification over the table; mirrors `:ets.select/2`."
  @spec select(table(), :ets.match_spec()) :: [term()]
  def select(table, match_spec) do
    if SharedState.managed?() do
      :ets.select(whole(table, {:ets_select, table}), match_spec)
    else
      :ets.select(table, match_spec)
    end
  end

  @doc "Returns the bindings of the objects matching `pattern`; mirrors `:ets.match/2`."
  @spec match(table(), :ets.match_pattern()) :: [[term()]]
  def match(table, pattern) do
    if SharedState.managed?() do
      :ets.match(whole(table, {:ets_match, table}), pattern)
    else
      :ets.match(table, pattern)
    end
  end

  @doc "Returns the objects matching `pattern`; mirrors `:ets.match_object/2`."
  @spec match_object(table(), :ets.match_pattern()) :: [tuple()]
  def match_object(table, pattern) do
    if SharedState.managed?() do
      :ets.match_object(whole(table, {:ets_match_object, table}), pattern)
    else
      :ets.match_object(table, pattern)
    end
  end

  @doc "Returns every object of the table; mirrors `:ets.tab2list/1`."
  @spec tab2list(table()) :: [tuple()]
  def tab2list(table) do
    if SharedState.managed?() do
      :ets.tab2list(whole(table, {:ets_tab2list, table}))
    else
      :ets.tab2list(table)
    end
  end

  @doc """
  Information about the table, or `:undefined` when it does not exist; mirrors
  `:ets.info/1`. Inside a run, a table reached through its per-node name reports
  `named_table: true`; `:node` is the real node, not the simulated one.
  """
  @spec info(table()) :: [{atom(), term()}] | :undefined
  def info(table) do
    if SharedState.managed?() do
      SharedState.sync({:ets_info, table}, whole_object(table))

      case resolve_info(table) do
        :undefined ->
          :undefined

        tid ->
          case :ets.info(tid) do
            # The real table is unnamed and keeps the name it was created with; the name
            # it is reached by (after a rename/2 too) is the one OTP reports.
            list when is_list(list) and is_atom(table) ->
              list
              |> List.keystore(:named_table, 0, {:named_table, true})
              |> List.keystore(:name, 0, {:name, table})

            other ->
              other
          end
      end
    else
      :ets.info(table)
    end
  end

  @doc """
  One item of information about the table, or `:undefined` when it does not exist; mirrors
  `:ets.info/2`.
  """
  @spec info(table(), atom()) :: term() | :undefined
  def info(table, item) do
    if SharedState.managed?() do
      SharedState.sync({:ets_info, table, item}, whole_object(table))

      case resolve_info(table) do
        :undefined ->
          :undefined

        tid ->
          case :ets.info(tid, item) do
            false when item == :named_table and is_atom(table) -> true
            _name when item == :name and is_atom(table) -> table
            other -> other
          end
      end
    else
      :ets.info(table, item)
    end
  end

  # Traversal ------------------------------------------------------------------------------

  @doc "The first key (`:\"$end_of_table\"` when empty); mirrors `:ets.first/1`."
  @spec first(table()) :: term()
  def first(table) do
    if SharedState.managed?() do
      :ets.first(whole(table, {:ets_first, table}))
    else
      :ets.first(table)
    end
  end

  @doc "The key after `key`; mirrors `:ets.next/2`."
  @spec next(table(), term()) :: term()
  def next(table, key) do
    if SharedState.managed?() do
      :ets.next(whole(table, {:ets_next, table, key}), key)
    else
      :ets.next(table, key)
    end
  end

  @doc "The last key (the first for unordered tables); mirrors `:ets.last/1`."
  @spec last(table()) :: term()
  def last(table) do
    if SharedState.managed?() do
      :ets.last(whole(table, {:ets_last, table}))
    else
      :ets.last(table)
    end
  end

  @doc "The key before `key`; mirrors `:ets.prev/2`."
  @spec prev(table(), term()) :: term()
  def prev(table, key) do
    if SharedState.managed?() do
      :ets.prev(whole(table, {:ets_prev, table, key}), key)
    else
      :ets.prev(table, key)
    end
  end

  # More of `:ets` ---------------------------------------------------------------------------

  @doc "Deletes exactly `object`; mirrors `:ets.delete_object/2`."
  @spec delete_object(table(), tuple()) :: true
  def delete_object(table, object) do
    if SharedState.managed?() do
      :ets.delete_object(object_sync(table, :ets_delete_object, object), object)
    else
      :ets.delete_object(table, object)
    end
  end

  @doc "Counts the objects `match_spec` returns `true` for; mirrors `:ets.select_count/2`."
  @spec select_count(table(), :ets.match_spec()) :: non_neg_integer()
  def select_count(table, match_spec) do
    if SharedState.managed?() do
      :ets.select_count(whole(table, {:ets_select_count, table}), match_spec)
    else
      :ets.select_count(table, match_spec)
    end
  end

  @doc "Deletes the objects `match_spec` returns `true` for; mirrors `:ets.select_delete/2`."
  @spec select_delete(table(), :ets.match_spec()) :: non_neg_integer()
  def select_delete(table, match_spec) do
    if SharedState.managed?() do
      :ets.select_delete(whole(table, {:ets_select_delete, table}), match_spec)
    else
      :ets.select_delete(table, match_spec)
    end
  end

  @doc "Replaces the objects `match_spec` selects; mirrors `:ets.select_replace/2`."
  @spec select_replace(table(), :ets.match_spec()) :: non_neg_integer()
  def select_replace(table, match_spec) do
    if SharedState.managed?() do
      :ets.select_replace(whole(table, {:ets_select_replace, table}), match_spec)
    else
      :ets.select_replace(table, match_spec)
    end
  end

  @doc """
  `:ets.select/3`: at most `limit` results and a continuation for `select/1`, or
  `:"$end_of_table"`.
  """
  @spec select(table(), :ets.match_spec(), pos_integer()) ::
          {[term()], :ets.continuation()} | :"$end_of_table"
  def select(table, match_spec, limit) do
    if SharedState.managed?() do
      :ets.select(whole(table, {:ets_select, table}), match_spec, limit)
    else
      :ets.select(table, match_spec, limit)
    end
  end

  @doc "`:ets.select/1`: the next chunk of a `select/3` or `select_reverse/3`."
  @spec select(:ets.continuation()) :: {[term()], :ets.continuation()} | :"$end_of_table"
  def select(continuation) do
    continued(:ets_select, continuation)
    :ets.select(continuation)
  end

  @doc "`:ets.select_reverse/2`: `select/2` in reverse order for `ordered_set` tables."
  @spec select_reverse(table(), :ets.match_spec()) :: [term()]
  def select_reverse(table, match_spec) do
    if SharedState.managed?() do
      :ets.select_reverse(whole(table, {:ets_select_reverse, table}), match_spec)
    else
      :ets.select_reverse(table, match_spec)
    end
  end

  @doc "`:ets.select_reverse/3`: the chunked form."
  @spec select_reverse(table(), :ets.match_spec(), pos_integer()) ::
          {[term()], :ets.continuation()} | :"$end_of_table"
  def select_reverse(table, match_spec, limit) do
    if SharedState.managed?() do
      :ets.select_reverse(whole(table, {:ets_select_reverse, table}), match_spec, limit)
    else
      :ets.select_reverse(table, match_spec, limit)
    end
  end

  @doc "`:ets.select_reverse/1`: the next chunk of a `select_reverse/3`."
  @spec select_reverse(:ets.continuation()) ::
          {[term()], :ets.continuation()} | :"$end_of_table"
  def select_reverse(continuation) do
    continued(:ets_select_reverse, continuation)
    :ets.select_reverse(continuation)
  end

  @doc "`:ets.match/3`: at most `limit` results and a continuation for `match/1`."
  @spec match(table(), :ets.match_pattern(), pos_integer()) ::
          {[[term()]], :ets.continuation()} | :"$end_of_table"
  def match(table, pattern, limit) do
    if SharedState.managed?() do
      :ets.match(whole(table, {:ets_match, table}), pattern, limit)
    else
      :ets.match(table, pattern, limit)
    end
  end

  @doc "`:ets.match/1`: the next chunk of a `match/3`."
  @spec match(:ets.continuation()) :: {[[term()]], :ets.continuation()} | :"$end_of_table"
  def match(continuation) do
    continued(:ets_match, continuation)
    :ets.match(continuation)
  end

  @doc "`:ets.match_object/3`: at most `limit` objects and a continuation."
  @spec match_object(table(), :ets.match_pattern(), pos_integer()) ::
          {[tuple()], :ets.continuation()} | :"$end_of_table"
  def match_object(table, pattern, limit) do
    if SharedState.managed?() do
      :ets.match_object(whole(table, {:ets_match_object, table}), pattern, limit)
    else
      :ets.match_object(table, pattern, limit)
    end
  end

  @doc "`:ets.match_object/1`: the next chunk of a `match_object/3`."
  @spec match_object(:ets.continuation()) :: {[tuple()], :ets.continuation()} | :"$end_of_table"
  def match_object(continuation) do
    continued(:ets_match_object, continuation)
    :ets.match_object(continuation)
  end

  @doc """
  `:ets.foldl/3`. One sync point, then the real fold: like OTP's, it is not atomic, and
  `fun` may itself reach sync points (a `Lockstep.ETS` call on another table).
  """
  @spec foldl((tuple(), acc -> acc), acc, table()) :: acc when acc: term()
  def foldl(fun, acc, table) do
    if SharedState.managed?() do
      :ets.foldl(fun, acc, whole(table, {:ets_foldl, table}))
    else
      :ets.foldl(fun, acc, table)
    end
  end

  @doc "`:ets.foldr/3`, as `foldl/3`."
  @spec foldr((tuple(), acc -> acc), acc, table()) :: acc when acc: term()
  def foldr(fun, acc, table) do
    if SharedState.managed?() do
      :ets.foldr(fun, acc, whole(table, {:ets_foldr, table}))
    else
      :ets.foldr(fun, acc, table)
    end
  end

  @doc "The objects in slot `i` of the table; mirrors `:ets.slot/2`."
  @spec slot(table(), non_neg_integer()) :: [tuple()] | :"$end_of_table"
  def slot(table, i) do
    if SharedState.managed?() do
      :ets.slot(whole(table, {:ets_slot, table, i}), i)
    else
      :ets.slot(table, i)
    end
  end

  @doc "Fixes the table for safe traversal; mirrors `:ets.safe_fixtable/2`."
  @spec safe_fixtable(table(), boolean()) :: true
  def safe_fixtable(table, fix) do
    if SharedState.managed?() do
      :ets.safe_fixtable(whole(table, {:ets_safe_fixtable, table}), fix)
    else
      :ets.safe_fixtable(table, fix)
    end
  end

  @doc "Sets the table's `heir` (or `{:heir, :none}`); mirrors `:ets.setopts/2`."
  @spec setopts(table(), tuple() | [tuple()]) :: true
  def setopts(table, opts) do
    if SharedState.managed?() do
      :ets.setopts(whole(table, {:ets_setopts, table}), opts)
    else
      :ets.setopts(table, opts)
    end
  end

  @doc """
  Makes `pid` the table's owner; mirrors `:ets.give_away/3`. The new owner gets OTP's
  `{:"ETS-TRANSFER", table, from, data}` (`table` is the name of a named table, as in
  OTP): inside a run, to a process of the run, it is a message of the schedule, sent by
  the caller in the give-away's step, which `Lockstep.receive/1` and instrumented code
  take like any other; to a process outside the run it is the BEAM's real message. From
  then on the table is the BEAM's to delete when its new owner dies. Raises
  `ArgumentError` (`:ets`'s `badarg`) when the caller does not own the table, gives it to
  itself, or `pid` is not alive (in the run, as the run sees it).
  """
  @spec give_away(table(), pid(), term()) :: true
  def give_away(table, pid, data) do
    if SharedState.managed?() do
      managed_give_away(table, pid, data)
    else
      :ets.give_away(table, pid, data)
    end
  end

  # The transfer for real first (`:ets`'s own badarg if it cannot happen: the caller does
  # not own the table, gives it to itself, or `pid` is not alive), in the give-away's own
  # step; then the message, sent by the caller to a process of the run as a send of the
  # schedule (a step of its own: another process may see the new owner before the message
  # comes, as in OTP). The BEAM's own 'ETS-TRANSFER' to a process of the run is a copy of
  # that message: its gift is marked (`transfer_copy?/1`) so that no receive of the run
  # takes it. A process that ended in the run is refused as OTP refuses a dead one, even
  # while its BEAM process is still winding down.
  defp managed_give_away(table, pid, data) do
    tid = whole(table, {:ets_give_away, table})

    case is_pid(pid) and Runtime.run_process(pid) do
      :alive ->
        true = :ets.give_away(tid, pid, {@transfer_copy, data})
        # lost if `pid` dies before it is sent, as any message to a dead process
        Runtime.send_to(pid, {:"ETS-TRANSFER", transfer_table(table, tid), self(), data})
        true

      :exited ->
        if :ets.info(tid, :owner) == self(),
          do: badarg!(:give_away, [table, pid, data], :dead_process),
          else: :ets.give_away(tid, pid, data)

      _outside ->
        :ets.give_away(tid, pid, data)
    end
  end

  # What OTP's message names the table by: its name when it is a named table.
  defp transfer_table(name, _tid) when is_atom(name), do: name

  defp transfer_table(tid, tid) do
    name = :ets.info(tid, :name)
    if is_atom(name) and Runtime.ets_lookup(name) == tid, do: name, else: tid
  end

  @doc false
  # The BEAM's copy of a scheduled `'ETS-TRANSFER'` (see `give_away/3`), which the run's
  # receives and reports leave alone.
  def transfer_copy?({:"ETS-TRANSFER", _tab, _from, {@transfer_copy, _data}}), do: true
  def transfer_copy?(_message), do: false

  @doc false
  # The marker itself, for the instrumented receive's guard (`Lockstep.Instrument.Rewrite`).
  def transfer_copy_marker, do: @transfer_copy

  @doc """
  Renames a named table; mirrors `:ets.rename/2` (returns `name`). Inside a run the name
  moves on the caller's node; a name in use there raises `ArgumentError`, as in OTP.
  """
  @spec rename(table(), atom()) :: atom()
  def rename(table, name) do
    if SharedState.managed?() do
      managed_rename(table, name)
    else
      :ets.rename(table, name)
    end
  end

  defp managed_rename(table, name) when is_atom(table) and is_atom(name) do
    SharedState.sync({:ets_rename, table, name}, whole_object(table))
    tid = resolve(table, :ets_rename)

    case Runtime.ets_lookup(name) do
      nil ->
        :ok

      other ->
        if other != tid and alive_table?(other),
          do: badarg!(:rename, [table, name], :new_name_exists),
          else: Runtime.ets_unregister(name)
    end

    Runtime.ets_unregister(table)
    Runtime.ets_register(name, tid)
    name
  end

  # A tid: not a name this run knows, so the real call says what OTP says.
  defp managed_rename(table, name) do
    :ets.rename(whole(table, {:ets_rename, table, name}), name)
  end

  @doc """
  The tid of the named table, or `:undefined`; mirrors `:ets.whereis/1`. Inside a run it
  looks the name up on the caller's node.
  """
  @spec whereis(atom()) :: :ets.tid() | :undefined
  def whereis(name) do
    if SharedState.managed?() and is_atom(name) do
      SharedState.sync({:ets_whereis, name}, whole_object(name))

      case Runtime.ets_lookup(name) do
        nil -> :undefined
        tid -> if alive_table?(tid), do: tid, else: :undefined
      end
    else
      :ets.whereis(name)
    end
  end

  @doc """
  The tables of the VM; mirrors `:ets.all/0`: a named table is listed by its name, any other
  by its tid. Inside a run, the named tables of the caller's simulated node are listed by
  their names, and those of the other simulated nodes by their tids (as tables of other
  nodes, they are not the caller's node's).
  """
  @spec all() :: [table()]
  def all do
    if SharedState.managed?() do
      SharedState.sync(:ets_all, nil)
      names = Map.new(Runtime.ets_named(), fn {name, tid} -> {tid, name} end)
      Enum.map(:ets.all(), &Map.get(names, &1, &1))
    else
      :ets.all()
    end
  end

  # Helpers (only reached inside a run) ----------------------------------------------------

  # A sync point on `table` + `key`, then the real table to operate on.
  defp keyed(table, op, key) do
    SharedState.sync({op, table, key}, key_object(table, key))
    resolve(table, op)
  end

  # A sync point on the whole table, then the real table to operate on.
  defp whole(table, kind) do
    SharedState.sync(kind, whole_object(table))
    resolve(table, elem(kind, 0))
  end

  defp insert_sync(table, op, objects) do
    keypos = keypos(table)

    case objects do
      [object] -> insert_one(table, op, object, keypos)
      [_ | _] -> insert_many(table, op, objects, keypos)
      object -> insert_one(table, op, object, keypos)
    end

    resolve(table, op)
  end

  # A sync point on the key of one object.
  defp object_sync(table, op, object) do
    insert_one(table, op, object, keypos(table))
    resolve(table, op)
  end

  # A sync point for a continuation, on the table it carries (nothing outside a run).
  defp continued(op, continuation) do
    object =
      case continuation do
        c when is_tuple(c) and tuple_size(c) > 0 -> {:ets, elem(c, 0)}
        _ -> nil
      end

    SharedState.sync({op, :continuation}, object)
  end

  defp insert_one(table, op, object, keypos) do
    case key_of(object, keypos) do
      {:ok, key} -> SharedState.sync({op, table, key}, key_object(table, key))
      # Not an object: the real call raises the real error after the sync point.
      :error -> SharedState.sync({op, table}, whole_object(table))
    end
  end

  defp insert_many(table, op, objects, keypos) do
    keys =
      Enum.reduce_while(objects, [], fn object, acc ->
        case key_of(object, keypos) do
          {:ok, key} -> {:cont, [key | acc]}
          :error -> {:halt, :error}
        end
      end)

    case keys do
      :error -> SharedState.sync({op, table}, whole_object(table))
      keys -> SharedState.sync({op, table, {:keys, Enum.reverse(keys)}}, whole_object(table))
    end
  end

  defp key_of(object, keypos)
       when is_tuple(object) and is_integer(keypos) and tuple_size(object) >= keypos,
       do: {:ok, :erlang.element(keypos, object)}

  defp key_of(_object, _keypos), do: :error

  # The key position, read before the sync point (it never changes once the table exists);
  # 1 when the table cannot be found, in which case the real call will raise anyway.
  defp keypos(table) do
    tid = if is_atom(table), do: Runtime.ets_lookup(table), else: table

    case tid && :ets.info(tid, :keypos) do
      pos when is_integer(pos) -> pos
      _ -> 1
    end
  end

  # The real table behind `name` on the caller's node; `op` (`:ets_lookup`…) names the
  # `:ets` function in the error's stack frame.
  defp resolve(name, op) when is_atom(name) do
    case Runtime.ets_lookup(name) do
      nil -> badarg!(ets_function(op), [name], :no_table)
      tid -> tid
    end
  end

  defp resolve(tid, _op), do: tid

  defp ets_function(op) do
    case Atom.to_string(op) do
      "ets_" <> fun -> String.to_existing_atom(fun)
      _ -> op
    end
  end

  defp resolve_info(name) when is_atom(name) do
    case Runtime.ets_lookup(name) do
      nil -> :undefined
      tid -> tid
    end
  end

  defp resolve_info(tid), do: tid

  defp alive_table?(tid), do: :ets.info(tid, :owner) != :undefined

  # `:ets`'s `badarg` for a per-node name it cannot know about, raised as `:ets` raises
  # it (class `:error`, reason `:badarg`: Erlang code catching `error:badarg` sees it),
  # with a stack frame of `:ets` and error_info naming the cause, so Elixir prints the
  # message `:ets` would.
  defp badarg!(fun, args, cause) do
    {:current_stacktrace, [_info, _self | stacktrace]} = Process.info(self(), :current_stacktrace)

    frame = {:ets, fun, args, [error_info: %{module: __MODULE__, cause: cause}]}
    :erlang.raise(:error, :badarg, [frame | stacktrace])
  end

  @doc false
  # OTP's error_info callback for the badargs above.
  def format_error(:badarg, [{_m, _f, _args, info} | _]) do
    case info[:error_info] do
      %{cause: cause} when is_map_key(@causes, cause) -> Map.new([Map.fetch!(@causes, cause)])
      _ -> %{}
    end
  end

  def format_error(_reason, _stacktrace), do: %{}

  # A name stands for the table of that name on the caller's node, whichever table that is
  # at the time (so creating, deleting and using a name all touch the same object).
  defp identity(name) when is_atom(name), do: {Runtime.node(), name}
  defp identity(tid), do: tid

  # The terms naming the objects a sync point touches (SharedState hashes them).
  defp key_object(table, key), do: {:ets, identity(table), key}
  defp whole_object(table), do: {:ets, identity(table)}
end
