defmodule Lockstep.NativeErrorTest do
  # The Rust → Elixir error mapping of Lockstep.Native, pinned the way rustler's own
  # rustler_tests/test/error_test.exs pins its: each NIF is called directly with bad input
  # and the test asserts the exact exception it raises (or the atom it answers). Misuse
  # raises a struct with fields (Lockstep.NotManagedError, Lockstep.InternalError with its
  # message, ArgumentError for a term of the wrong type); no bad value is read as a
  # default, nothing takes the VM down, nothing prints a panic.
  #
  # Not async: it creates sessions, and owner_death_test counts the VM's live ones.
  use ExUnit.Case, async: false

  alias Lockstep.{InternalError, Native, NotManagedError}

  @config %{
    max_steps: 100,
    delivery: :instant,
    crash: :fail,
    timers: :on_idle,
    blocked_at_end: :kill
  }

  defp new_session(cell \\ Native.strategy_new(:random)),
    do: Native.session_new(cell, 1, @config, false, make_ref())

  defp internal!(fun) do
    %InternalError{message: "Lockstep internal error: " <> message} =
      assert_raise(InternalError, fun)

    message
  end

  # Runs `fun.(context)` as the root of a one-iteration run and returns
  # `{:ok, value}` or `{:raised, exception}`; the run itself must pass.
  defp in_run(fun) do
    parent = self()

    Lockstep.run(
      fn ->
        result =
          try do
            {:ok, fun.(Process.get(:"$lockstep"))}
          rescue
            e -> {:raised, e}
          end

        send(parent, {:in_run, self(), result})
      end,
      iterations: 1,
      seed: 1
    )

    assert_received {:in_run, root, result}
    {root, result}
  end

  # What a managed process sees from `call` (the run goes on either way).
  defp from_managed(call) do
    {_root, result} = in_run(call)
    result
  end

  describe "strategy_new/1 decodes its spec (decode::StrategySpec)" do
    test "every spec Lockstep builds is accepted" do
      for spec <- [
            :random,
            :pos,
            {:pct, 3},
            {:fair_pct, 3, 10},
            {:idpct, 1, 4},
            {:replay, [{:run, "P"}, {:deliver, "P.1", "P"}, {:fire, "P", 0}, {:random, 2}]},
            {:shrink_replay, [], 7}
          ] do
        assert is_reference(Native.strategy_new(spec)), inspect(spec)
      end
    end

    test "an unknown strategy, a bad field or a bad shape raises InternalError naming it" do
      expected =
        "(expected :random, :pos, {:pct, depth}, {:fair_pct, depth, switch}, " <>
          "{:idpct, d_min, d_max}, {:replay, schedule}, {:shrink_replay, schedule, seed} or " <>
          "{:exhaustive, :none | :source | :optimal, nil | bound})"

      for {spec, shown} <- [
            {:bogus, "bogus"},
            {"random", "<<\"random\">>"},
            {{:pct, :deep}, "{pct,deep}"},
            {{:pct, -1}, "{pct,-1}"},
            {{:fair_pct, 3}, "{fair_pct,3}"},
            {{:idpct, 1, 2, 3}, "{idpct,1,2,3}"},
            # The three-element replay (random past the end) has no caller and is gone.
            {{:replay, [], 7}, "{replay,[],7}"},
            {{:shrink_replay, [], -7}, "{shrink_replay,[],-7}"}
          ] do
        assert internal!(fn -> Native.strategy_new(spec) end) ==
                 "bad strategy spec #{shown} #{expected}"
      end
    end

    test "a long bad spec is cut short in the message" do
      message = internal!(fn -> Native.strategy_new({:bogus, List.duplicate(1, 1000)}) end)
      assert message =~ ~r/^bad strategy spec \{bogus,\[1,1,.*\.\.\. \(expected/
      assert String.length(message) < 500
    end

    test "a malformed replay schedule raises InternalError saying what is wrong" do
      for {schedule, detail} <- [
            {[{:run, "P"} | :tail], "expected a proper list of decisions"},
            {:nope, "expected a proper list of decisions"},
            {[{:walk, "P"}],
             "expected {:run, name}, {:deliver, from, to}, {:fire, owner, n} or " <>
               "{:random, n}, got {walk,<<\"P\">>}"},
            {[{:run, "P", 1}], "got {run,<<\"P\">>,1}"},
            {[{:run, "x"}], "bad process name \"x\""},
            {[{:run, :P}], "bad process name 'P'"},
            {[{:deliver, "P", 1}], "bad process name 1"},
            {[{:random, -1}], "a random value must be an integer in 0..2^64-1"},
            {[{:fire, "P", -1}], "a timer ordinal must be an integer in 0..2^32-1"}
          ] do
        message = internal!(fn -> Native.strategy_new({:replay, schedule}) end)
        assert message =~ "invalid schedule: ", message
        assert message =~ detail, inspect({schedule, message})
      end
    end
  end

  describe "session_new/5 decodes its config map (decode::SessionConfig)" do
    test "a bad value in any field raises InternalError naming the config" do
      for {config, shown} <- [
            {%{@config | delivery: :sometimes}, "delivery=>sometimes"},
            {%{@config | crash: :maybe}, "crash=>maybe"},
            {%{@config | timers: :never}, "timers=>never"},
            {%{@config | blocked_at_end: :wait}, "blocked_at_end=>wait"},
            {%{@config | max_steps: -1}, "max_steps=>-1"},
            {Map.delete(@config, :timers),
             "\#{blocked_at_end=>kill,crash=>fail,delivery=>instant,max_steps=>100}"},
            # The positional tuple it replaced.
            {{100, :instant, :fail, :on_idle}, "{100,instant,fail,on_idle}"}
          ] do
        message =
          internal!(fn ->
            Native.session_new(Native.strategy_new(:random), 1, config, false, make_ref())
          end)

        assert message =~ "bad session config ", inspect(config)
        assert message =~ shown, message

        assert message =~
                 "(expected %{max_steps: non-negative integer, delivery: :instant | " <>
                   ":delayed, crash: :fail | :ignore | :strict, timers: :on_idle | :anytime, " <>
                   "blocked_at_end: :kill | :fail})"
      end
    end

    test "every accepted value decodes, and a refused config leaves the strategy free" do
      cell = Native.strategy_new(:random)

      internal!(fn ->
        Native.session_new(cell, 1, %{@config | delivery: :x}, false, make_ref())
      end)

      for delivery <- [:instant, :delayed],
          crash <- [:fail, :ignore, :strict],
          timers <- [:on_idle, :anytime],
          blocked <- [:kill, :fail] do
        config = %{
          @config
          | delivery: delivery,
            crash: crash,
            timers: timers,
            blocked_at_end: blocked
        }

        {session, tag} = Native.session_new(cell, 1, config, false, make_ref())
        assert is_integer(tag)
        assert {nil, {0, 0, 0, _fingerprint, false, false, nil}} = Native.session_finish(session)
      end
    end

    test "a strategy lent to a running iteration cannot be lent twice" do
      cell = Native.strategy_new(:random)
      {session, _tag} = new_session(cell)

      assert internal!(fn -> new_session(cell) end) ==
               "this run's strategy is already in use by another iteration"

      Native.session_finish(session)
      assert {_, _} = new_session(cell)
    end

    test "an argument of the wrong type raises ArgumentError" do
      cell = Native.strategy_new(:random)

      assert_raise ArgumentError, fn ->
        Native.session_new(cell, -1, @config, false, make_ref())
      end

      assert_raise ArgumentError, fn ->
        Native.session_new(:cell, 1, @config, false, make_ref())
      end

      assert_raise ArgumentError, fn -> Native.session_new(cell, 1, @config, :yes, make_ref()) end
    end
  end

  describe "a session used by the wrong process or after its end" do
    test "a term that is not a session raises ArgumentError" do
      assert_raise ArgumentError, fn -> Native.progress(:session) end
      assert_raise ArgumentError, fn -> Native.yield(make_ref(), 0, :undefined) end
      assert_raise ArgumentError, fn -> Native.session_finish(Native.strategy_new(:random)) end
    end

    test "a process that is not the context's raises NotManagedError :copied" do
      {session, _tag} = new_session()
      root = spawn(fn -> receive do: (:stop -> :ok) end)
      assert :ok = Native.session_start(session, root)
      me = self()

      assert %NotManagedError{reason: :copied, process: ^me, context_owner: ^root, function: nil} =
               assert_raise(NotManagedError, fn -> Native.yield(session, 0, :undefined) end)

      # An id with no process behind it.
      assert %NotManagedError{reason: :copied, context_owner: nil} =
               assert_raise(NotManagedError, fn -> Native.sync_random(session, 42, 2) end)

      assert internal!(fn -> Native.session_start(session, root) end) ==
               "the session was already started"

      Native.session_abort(session)
      send(root, :stop)
      assert {{:aborted, _}, _} = Native.session_finish(session)
    end

    test "a context used after its iteration ended raises NotManagedError :ended" do
      {root, {:ok, {session, id, _tag}}} = in_run(& &1)
      me = self()

      for call <- [
            fn -> Native.yield(session, id, :undefined) end,
            fn -> Native.sync_time(session, id, :now) end,
            fn -> Native.sync_send(session, id, me, :hi, :undefined) end,
            fn -> Native.consumed(session, id, 1) end
          ] do
        assert %NotManagedError{reason: :ended, process: ^me, context_owner: ^root} =
                 assert_raise(NotManagedError, call)
      end

      # A process's own exit after the end is no error: there is nothing left to tell.
      assert :ok = Native.exit(session, id, :normal, :normal, :normal, :undefined)
      assert :pass = Native.outcome(session)
    end
  end

  describe "bad values from a managed process" do
    test "an unknown exit class raises InternalError (it used to mean :abnormal)" do
      assert {:raised, %InternalError{message: message}} =
               from_managed(fn {s, id, _} ->
                 Native.exit(s, id, :weird, :r, :normal, :undefined)
               end)

      assert message ==
               "Lockstep internal error: bad exit class weird (expected :normal or :abnormal)"
    end

    test "a bad time operation raises InternalError (it used to mean :now)" do
      for op <- [:bogus, {:sleep, -1}, {:nap, 5}, {:sleep, 1, 2}] do
        assert {:raised,
                %InternalError{message: "Lockstep internal error: bad time operation " <> rest}} =
                 from_managed(fn {s, id, _} -> Native.sync_time(s, id, op) end)

        assert rest =~ "(expected :now or {:sleep, ms} (ms a non-negative integer))"
      end
    end

    test "a bad name operation raises InternalError (it used to answer :badarg)" do
      for op <- [:bogus, {:register, "name", self()}, {:register, :name}, {:whereis, 1}] do
        assert {:raised,
                %InternalError{message: "Lockstep internal error: bad name operation " <> _}} =
                 from_managed(fn {s, id, _} -> Native.sync_name(s, id, op) end)
      end
    end

    test "a bad alias operation raises InternalError naming it (true/false are no longer accepted)" do
      for op <- [true, :bogus, {:ref, :not_a_ref, false, nil}, {:ref, make_ref(), :yes, nil}] do
        result = from_managed(fn {s, id, _} -> Native.alias(s, id, 1, op) end)

        case op do
          {:ref, :not_a_ref, _, _} ->
            assert {:raised, %ArgumentError{}} = result

          _ ->
            assert {:raised,
                    %InternalError{message: "Lockstep internal error: bad alias operation " <> _}} =
                     result
        end
      end
    end

    test "a bad ets_names operation raises InternalError naming it" do
      assert {:raised, %InternalError{message: message}} =
               from_managed(fn {s, id, _} -> Native.ets_names(s, id, {:lookup, :table}) end)

      assert message =~ "bad ets_names operation {lookup,table}"
    end

    test "a bad cluster operation answers :badarg without a sync point" do
      outsider = self()

      assert {:ok, results} =
               from_managed(fn {s, id, _} ->
                 {progress, _, _, _} = Native.progress(s)

                 results =
                   for op <- [
                         :bogus,
                         {:partition, [], [], :sometimes},
                         {:partition, [:a | :b], [], :drop},
                         {:set_ticktime, -1},
                         {:start_node, "n"},
                         {:node_of, :me},
                         {:stop_node, :nowhere@host},
                         {:node_of, outsider}
                       ],
                       do: Native.sync_cluster(s, id, op)

                 {^progress, _, _, _} = Native.progress(s)
                 results
               end)

      assert results == List.duplicate(:badarg, 6) ++ [:badnode, :unmanaged]
    end

    test "the cluster API raises ArgumentError naming the operation" do
      assert {:raised, %ArgumentError{message: message}} =
               from_managed(fn _ -> Lockstep.Runtime.cluster({:partition, [], [], :sometimes}) end)

      assert message == "invalid cluster operation: {:partition, [], [], :sometimes}"
    end

    test "a bad pending value or an argument of the wrong type raises ArgumentError" do
      for call <- [
            fn {s, id, _} -> Native.yield(s, id, :bogus) end,
            fn {s, id, _} -> Native.yield(s, id, "seq") end,
            fn {s, id, _} -> Native.sync_receive(s, id, false, 0, {self(), 1}) end,
            fn {s, id, _} -> Native.sync_receive(s, id, :no, 0, :undefined) end,
            fn {s, id, _} -> Native.sync_random(s, id, -1) end,
            fn {s, id, _} -> Native.sync_link(s, id, :pid, true) end,
            fn {s, _id, _} -> Native.sync_random(s, -1, 2) end
          ] do
        assert {:raised, %ArgumentError{message: "argument error"}} = from_managed(call)
      end
    end

    test "the run goes on after a refused call" do
      assert {:ok, :ok} =
               from_managed(fn {s, id, _} = _ctx ->
                 catch_error(Native.sync_time(s, id, :bogus))
                 catch_error(Native.yield(s, id, :bogus))
                 :badarg = Native.sync_cluster(s, id, {:partition, [:a | :b], [], :drop})
                 Lockstep.yield()
               end)
    end
  end

  describe "a poisoned session" do
    test "the panicking call raises :nif_panicked; later calls raise InternalError" do
      {session, _tag} = new_session()

      assert %ErlangError{original: :nif_panicked} =
               assert_raise(ErlangError, fn -> Native.poison_for_test(session) end)

      poisoned = "the session state is poisoned by an earlier panic; the run cannot go on"
      assert internal!(fn -> Native.yield(session, 0, :undefined) end) == poisoned
      assert internal!(fn -> Native.session_start(session, self()) end) == poisoned
      assert internal!(fn -> Native.mark_cleanup(session) end) == poisoned

      # The owner's queries and teardown still read it.
      assert {0, 0, nil, 0} = Native.progress(session)
      assert [{0, "P", nil, :ready, :start, :nonode@nohost}] = Native.procs(session)
      assert :ok = Native.session_abort(session)
      assert {{:aborted, nil}, {0, _, _, _, _, _, _}} = Native.session_finish(session)
    end

    test "a run whose session is poisoned raises Lockstep.InternalError and stops" do
      # The root dies after poisoning the session (killed: left to crash in its exit
      # path, it would log that crash after the test has ended); the resource monitor
      # then tells the owner.
      error =
        assert_raise InternalError, fn ->
          Lockstep.run(
            fn ->
              {session, _id, _tag} = Process.get(:"$lockstep")

              try do
                Native.poison_for_test(session)
              rescue
                ErlangError -> Process.exit(self(), :kill)
              end
            end,
            iterations: 1,
            seed: 1
          )
        end

      assert error.message =~ "a Lockstep NIF call panicked and left the session half-updated"
      assert error.message =~ "Every managed process was stopped"
    end
  end
end
