defmodule Lockstep.SupervisorTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{GenServer, Supervisor}
  alias Lockstep.SupTest.{Counter, Sup, Worker}

  import Lockstep.TestSupport, only: [normalize_pids: 1]

  # Runs `fun` as the root of every iteration and returns the values it returned, one per
  # iteration.
  defp results(fun, opts) do
    test = self()
    Lockstep.run(fn -> Lockstep.send(test, {:root_result, fun.()}) end, opts)
    collect()
  end

  defp collect do
    receive do
      {:root_result, value} -> [value | collect()]
    after
      0 -> []
    end
  end

  # The value every iteration returned (the same in all, up to pids).
  defp result(fun, opts \\ []) do
    opts = Keyword.put_new(opts, :iterations, 20)
    values = results(fun, opts)
    assert length(values) == opts[:iterations]
    assert [_] = values |> Enum.map(&normalize_pids/1) |> Enum.uniq()
    hd(values)
  end

  defp exit_of(fun) do
    fun.()
  catch
    :exit, reason -> {:exited, reason}
  end

  # Lets every process run until nothing more can happen: a timer fires only then (the
  # default `timers: :on_idle`), so the supervisor has handled every exit signal.
  defp settle, do: Lockstep.sleep(1)

  defp started(tag, id) do
    Lockstep.receive do
      {^tag, ^id, pid} -> pid
    end
  end

  defp counter(name, opts \\ []) do
    {Counter, Keyword.merge([name: name, notify: self()], opts)}
  end

  describe "restarts" do
    test "a permanent child that crashes is restarted with a new pid under its name" do
      assert {true, true, 0, [{Counter, true, :worker, [Counter]}], 1} =
               result(
                 fn ->
                   {:ok, sup} = Supervisor.start_link([counter(:sup_c)], strategy: :one_for_one)
                   old = started(:counter_started, :sup_c)
                   5 = Enum.reduce(1..5, 0, fn _, _ -> GenServer.call(:sup_c, :incr) end)

                   # The crash is an exception in the child: a :crash unless crash: :ignore.
                   GenServer.cast(:sup_c, :crash)
                   new = started(:counter_started, :sup_c)
                   [{id, pid, type, modules}] = Supervisor.which_children(sup)

                   {new != old, Lockstep.whereis(:sup_c) == new, GenServer.call(:sup_c, :get),
                    [{id, pid == new, type, modules}], Supervisor.count_children(sup).active}
                 end,
                 crash: :ignore
               )
    end

    test "without crash: :ignore the child's crash is reported even though it is restarted" do
      assert {:error, bug} =
               Lockstep.check(
                 fn ->
                   {:ok, _} = Supervisor.start_link([counter(:sup_c)], strategy: :one_for_one)
                   GenServer.cast(:sup_c, :crash)
                   started(:counter_started, :sup_c)
                   started(:counter_started, :sup_c)
                 end,
                 iterations: 5
               )

      assert bug.kind == :crash
      assert {:error, %RuntimeError{message: "supervised counter crashed"}, _} = bug.reason
    end

    test "a :temporary child is not restarted and is forgotten" do
      assert result(fn ->
               {:ok, sup} =
                 Supervisor.start_link([Worker.spec(self(), :t, restart: :temporary)],
                   strategy: :one_for_one
                 )

               pid = started(:worker_started, :t)
               Lockstep.exit(pid, :kill)
               settle()

               {Supervisor.which_children(sup), Supervisor.count_children(sup),
                Supervisor.restart_child(sup, :t)}
             end) ==
               {[], %{specs: 0, active: 0, supervisors: 0, workers: 0}, {:error, :not_found}}
    end

    test "a :transient child is restarted only after an abnormal exit" do
      assert {[:normal, :killed_restarted, {:shutdown, :bye}],
              [{:c, :undefined}, {:b, :running}, {:a, :undefined}]} =
               result(fn ->
                 me = self()

                 children = for id <- [:a, :b, :c], do: Worker.spec(me, id, restart: :transient)

                 {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one)
                 [a, b, c] = for id <- [:a, :b, :c], do: started(:worker_started, id)

                 a_ref = Lockstep.monitor(a)
                 Lockstep.send(a, :stop)
                 a_reason = Lockstep.receive(do: ({:DOWN, ^a_ref, _, _, reason} -> reason))
                 b_ref = Lockstep.monitor(b)
                 Lockstep.exit(b, :kill)
                 new_b = started(:worker_started, :b)
                 b_reason = Lockstep.receive(do: ({:DOWN, ^b_ref, _, _, reason} -> reason))
                 c_ref = Lockstep.monitor(c)
                 Lockstep.exit(c, {:shutdown, :bye})
                 c_reason = Lockstep.receive(do: ({:DOWN, ^c_ref, _, _, reason} -> reason))
                 settle()

                 b_outcome = if new_b != b and b_reason == :killed, do: :killed_restarted

                 children =
                   for {id, child, :worker, [Worker]} <- Supervisor.which_children(sup) do
                     {id, if(child == new_b, do: :running, else: child)}
                   end

                 {[a_reason, b_outcome, c_reason], children}
               end)
    end

    test "a :permanent child is restarted after a normal exit too" do
      assert result(fn ->
               {:ok, sup} =
                 Supervisor.start_link([Worker.spec(self(), :p)], strategy: :one_for_one)

               old = started(:worker_started, :p)
               Lockstep.send(old, :stop)
               new = started(:worker_started, :p)
               [{:p, pid, :worker, [Worker]}] = Supervisor.which_children(sup)
               {new != old, pid == new}
             end) == {true, true}
    end
  end

  describe "restart intensity" do
    test "more than max_restarts restarts: children terminated, supervisor exits :shutdown" do
      assert {:shutdown, [:killed, :killed, :killed], [b: :shutdown, a: :shutdown], false,
              {:exited, {:noproc, {GenServer, :call, [_, :which_children, :infinity]}}}} =
               result(fn ->
                 Lockstep.flag(:trap_exit, true)
                 me = self()
                 specs = [Worker.spec(me, :a), Worker.spec(me, :b), Worker.spec(me, :crashy)]

                 {:ok, sup} =
                   Supervisor.start_link(specs, strategy: :one_for_one, max_restarts: 2)

                 [a, b] = for id <- [:a, :b], do: started(:worker_started, id)
                 a_ref = Lockstep.monitor(a)
                 b_ref = Lockstep.monitor(b)

                 kills =
                   for _ <- 1..3 do
                     pid = started(:worker_started, :crashy)
                     ref = Lockstep.monitor(pid)
                     Lockstep.exit(pid, :kill)
                     Lockstep.receive(do: ({:DOWN, ^ref, _, _, reason} -> reason))
                   end

                 sup_reason =
                   Lockstep.receive do
                     {:EXIT, ^sup, reason} -> reason
                   end

                 # Reverse start order: b was started after a, so it is terminated first.
                 downs =
                   for _ <- 1..2 do
                     Lockstep.receive do
                       {:DOWN, ^a_ref, :process, _, reason} -> {:a, reason}
                       {:DOWN, ^b_ref, :process, _, reason} -> {:b, reason}
                     end
                   end

                 {sup_reason, kills, downs, Enum.any?([a, b, sup], &Lockstep.alive?/1),
                  exit_of(fn -> Supervisor.which_children(sup) end)}
               end)
    end

    test "max_seconds counts virtual time: restarts further apart never add up" do
      assert result(fn ->
               Lockstep.flag(:trap_exit, true)

               {:ok, sup} =
                 Supervisor.start_link([Worker.spec(self(), :w)],
                   strategy: :one_for_one,
                   max_restarts: 1,
                   max_seconds: 2
                 )

               # Five crashes 2.5 virtual seconds apart: one restart per window at most.
               for _ <- 1..5 do
                 pid = started(:worker_started, :w)
                 Lockstep.exit(pid, :kill)
                 Lockstep.sleep(2_500)
               end

               pid = started(:worker_started, :w)
               alive = Lockstep.alive?(sup)
               t = Lockstep.now()

               # Two crashes within the window: the second one is too many.
               Lockstep.exit(pid, :kill)
               pid = started(:worker_started, :w)
               Lockstep.exit(pid, :kill)

               reason =
                 Lockstep.receive do
                   {:EXIT, ^sup, reason} -> reason
                 end

               {alive, t, reason, Lockstep.now() - t}
             end) == {true, 12_500, :shutdown, 0}
    end

    test "max_restarts: 0 gives up at the first exit" do
      assert result(fn ->
               Lockstep.flag(:trap_exit, true)

               {:ok, sup} =
                 Supervisor.start_link([Worker.spec(self(), :w)],
                   strategy: :one_for_one,
                   max_restarts: 0
                 )

               Lockstep.exit(started(:worker_started, :w), :kill)
               Lockstep.receive(do: ({:EXIT, ^sup, reason} -> reason))
             end) == :shutdown
    end

    test "a restart that fails is tried again (:restarting) and counts towards the intensity" do
      values =
        results(
          fn ->
            Lockstep.flag(:trap_exit, true)
            me = self()
            # Started once, then two restarts fail before the third succeeds.
            spec = %{id: :w, start: {Worker, :start_flaky, [me, :w, 2]}}
            {:ok, sup} = Supervisor.start_link([spec], strategy: :one_for_one, max_restarts: 3)
            old = started(:worker_started, :w)
            Lockstep.exit(old, :kill)
            [{:w, seen, :worker, [Worker]}] = Supervisor.which_children(sup)
            new = started(:worker_started, :w)
            [{:w, ^new, :worker, [Worker]}] = Supervisor.which_children(sup)

            # Three restarts so far: the next exit is one too many.
            Lockstep.exit(new, :kill)
            reason = Lockstep.receive(do: ({:EXIT, ^sup, reason} -> reason))
            {if(is_pid(seen), do: :pid, else: seen), reason}
          end,
          iterations: 100,
          seed: 2
        )

      assert length(values) == 100
      assert Enum.all?(values, &(elem(&1, 1) == :shutdown))
      # Right after the kill the child is :restarting or, in some schedules, running again.
      assert values |> Enum.map(&elem(&1, 0)) |> Enum.uniq() |> Enum.sort() == [:pid, :restarting]
    end
  end

  describe "which_children/1 and count_children/1" do
    test "list the children newest first and count them by state and type" do
      assert result(fn ->
               me = self()
               inner = {Sup, {[Worker.spec(me, :inner)], [strategy: :one_for_one]}}

               {:ok, sup} =
                 Supervisor.start_link([Worker.spec(me, :a), inner, Worker.spec(me, :b)],
                   strategy: :one_for_one
                 )

               before = Supervisor.count_children(sup)
               :ok = Supervisor.terminate_child(sup, :a)

               children =
                 for {id, child, type, modules} <- Supervisor.which_children(sup) do
                   {id, if(is_pid(child), do: :pid, else: child), type, modules}
                 end

               {before, children, Supervisor.count_children(sup)}
             end) ==
               {%{specs: 3, active: 3, supervisors: 1, workers: 2},
                [
                  {:b, :pid, :worker, [Worker]},
                  {Sup, :pid, :supervisor, [Sup]},
                  {:a, :undefined, :worker, [Worker]}
                ], %{specs: 3, active: 2, supervisors: 1, workers: 2}}
    end

    test "stop/3 terminates the children, a nested supervisor's included" do
      assert result(fn ->
               # The supervisor's exit with {:shutdown, :bye} would kill its linked caller.
               Lockstep.flag(:trap_exit, true)
               me = self()
               inner = {Sup, {[Worker.spec(me, :inner)], [strategy: :one_for_one]}}

               {:ok, sup} =
                 Supervisor.start_link([inner, Worker.spec(me, :b)], strategy: :one_for_one)

               inner_worker = started(:worker_started, :inner)
               b = started(:worker_started, :b)
               [{:b, ^b, _, _}, {Sup, inner_sup, :supervisor, _}] = Supervisor.which_children(sup)
               refs = for pid <- [inner_worker, inner_sup, b], do: Lockstep.monitor(pid)
               :ok = Supervisor.stop(sup, {:shutdown, :bye})

               for ref <- refs do
                 Lockstep.receive(do: ({:DOWN, ^ref, _, _, reason} -> reason))
               end
             end) == [:shutdown, :shutdown, :shutdown]
    end

    test "a supervisor that is not running: the caller exits with :noproc" do
      assert result(fn ->
               {:ok, sup} = Supervisor.start_link([], strategy: :one_for_one)
               :ok = Supervisor.stop(sup)

               {exit_of(fn -> Supervisor.count_children(sup) end) ==
                  {:exited, {:noproc, {GenServer, :call, [sup, :count_children, :infinity]}}},
                exit_of(fn -> Supervisor.which_children(:sup_nobody) end)}
             end) ==
               {true,
                {:exited,
                 {:noproc, {GenServer, :call, [:sup_nobody, :which_children, :infinity]}}}}
    end
  end

  describe "terminate_child/2, restart_child/2, delete_child/2, start_child/2" do
    test "the lifecycle of a child and the return values" do
      {values, pids} =
        result(fn ->
          me = self()
          {:ok, sup} = Supervisor.start_link([Worker.spec(me, :a)], strategy: :one_for_one)
          a1 = started(:worker_started, :a)

          v = [
            Supervisor.restart_child(sup, :a),
            Supervisor.delete_child(sup, :a),
            Supervisor.terminate_child(sup, :a),
            Lockstep.alive?(a1),
            Supervisor.terminate_child(sup, :a),
            Supervisor.terminate_child(sup, :nope)
          ]

          {:ok, a2} = Supervisor.restart_child(sup, :a)
          ^a2 = started(:worker_started, :a)
          :ok = Supervisor.terminate_child(sup, :a)

          v =
            v ++
              [
                Supervisor.restart_child(sup, :nope),
                Supervisor.delete_child(sup, :a),
                Supervisor.delete_child(sup, :a),
                Supervisor.which_children(sup)
              ]

          {:ok, b} = Supervisor.start_child(sup, Worker.spec(me, :b))
          ^b = started(:worker_started, :b)
          {:ok, c} = Supervisor.start_child(sup, counter(:sup_started_counter))
          1 = GenServer.call(:sup_started_counter, :incr)

          v =
            v ++
              [
                Supervisor.start_child(sup, Worker.spec(me, :b)) ==
                  {:error, {:already_started, b}},
                Supervisor.terminate_child(sup, :b),
                Supervisor.start_child(sup, Worker.spec(me, :b)),
                Enum.map(Supervisor.which_children(sup), &elem(&1, 0))
              ]

          {v, {a1, a2, b, c}}
        end)

      assert values == [
               {:error, :running},
               {:error, :running},
               :ok,
               false,
               :ok,
               {:error, :not_found},
               {:error, :not_found},
               :ok,
               {:error, :not_found},
               [],
               true,
               :ok,
               {:error, :already_present},
               [Counter, :b]
             ]

      {a1, a2, _b, _c} = pids
      assert a1 != a2
    end

    test "start_child/2: start results and invalid specifications" do
      {values, raised} =
        result(
          fn ->
            {:ok, sup} = Supervisor.start_link([], strategy: :one_for_one)
            spec = fn id, result -> %{id: id, start: {Worker, :start, [result]}} end

            values = [
              Supervisor.start_child(sup, spec.(:ignored, :ignore)),
              Supervisor.start_child(sup, spec.(:failed, {:error, :boom})),
              Supervisor.start_child(sup, spec.(:odd, :what)),
              Supervisor.start_child(sup, Map.put(spec.(:tmp, :ignore), :restart, :temporary)),
              Supervisor.start_child(sup, %{start: {Worker, :start, [:ignore]}}),
              Supervisor.start_child(sup, %{id: :x}),
              Supervisor.start_child(sup, %{id: :x, start: :nope}),
              Supervisor.start_child(sup, Map.put(spec.(:x, :ignore), :restart, :sometimes)),
              Supervisor.start_child(sup, Map.put(spec.(:x, :ignore), :shutdown, -1)),
              Supervisor.start_child(sup, Map.put(spec.(:x, :ignore), :type, :boss)),
              Supervisor.which_children(sup),
              Supervisor.restart_child(sup, :ignored)
            ]

            {values, Supervisor.start_child(sup, spec.(:raises, :raise))}
          end,
          crash: :ignore
        )

      assert values == [
               {:ok, :undefined},
               {:error, {:boom, %{id: :failed, start: {Worker, :start, [{:error, :boom}]}}}},
               {:error, {:what, %{id: :odd, start: {Worker, :start, [:what]}}}},
               {:ok, :undefined},
               {:error, :missing_id},
               {:error, :missing_start},
               {:error, {:invalid_mfa, :nope}},
               {:error, {:invalid_restart_type, :sometimes}},
               {:error, {:invalid_shutdown, -1}},
               {:error, {:invalid_child_type, :boss}},
               [{:ignored, :undefined, :worker, [Worker]}],
               {:ok, :undefined}
             ]

      assert {:error,
              {{:EXIT, {%ArgumentError{message: "cannot start"}, [_ | _]}}, %{id: :raises}}} =
               raised
    end
  end

  describe "shutdown" do
    test "a child that ignores :shutdown is killed after its shutdown time (virtual ms)" do
      assert result(fn ->
               me = self()

               stubborn = %{
                 id: :stubborn,
                 start: {Worker, :start_link, [me, :stubborn, :stubborn]},
                 shutdown: 300
               }

               brutal = %{
                 id: :brutal,
                 start: {Worker, :start_link, [me, :brutal, :stubborn]},
                 shutdown: :brutal_kill
               }

               {:ok, sup} = Supervisor.start_link([stubborn, brutal], strategy: :one_for_one)
               s = started(:worker_started, :stubborn)
               b = started(:worker_started, :brutal)
               refs = %{Lockstep.monitor(s) => :stubborn, Lockstep.monitor(b) => :brutal}

               t0 = Lockstep.now()
               :ok = Supervisor.stop(sup)
               elapsed = Lockstep.now() - t0

               downs =
                 for _ <- 1..2 do
                   Lockstep.receive do
                     {:DOWN, ref, :process, _, reason} -> {refs[ref], reason}
                   end
                 end

               got =
                 Lockstep.receive do
                   {:worker_got, id, reason} -> {id, reason}
                 after
                   0 -> :nothing
                 end

               {elapsed, downs, got}
             end) ==
               {300, [brutal: :killed, stubborn: :killed], {:stubborn, :shutdown}}
    end

    test "terminate_child/2 waits for the child to exit" do
      assert result(fn ->
               me = self()

               spec = %{
                 id: :s,
                 start: {Worker, :start_link, [me, :s, :stubborn]},
                 shutdown: 1_000
               }

               {:ok, sup} = Supervisor.start_link([spec], strategy: :one_for_one)
               s = started(:worker_started, :s)
               t0 = Lockstep.now()
               :ok = Supervisor.terminate_child(sup, :s)
               {Lockstep.now() - t0, Lockstep.alive?(s), Supervisor.which_children(sup)}
             end) == {1_000, false, [{:s, :undefined, :worker, [Worker]}]}
    end
  end

  describe "starting" do
    test "a child that fails to start: the started ones are terminated, start_link fails" do
      assert result(fn ->
               Lockstep.flag(:trap_exit, true)
               bad = %{id: :bad, start: {Worker, :start, [{:error, :boom}]}}
               children = [counter(:sup_first), bad]
               result = Supervisor.start_link(children, strategy: :one_for_one)
               first = started(:counter_started, :sup_first)

               exit =
                 Lockstep.receive do
                   {:EXIT, _sup, reason} -> reason
                 end

               {result, Lockstep.alive?(first), Lockstep.whereis(:sup_first), exit}
             end) ==
               {{:error, {:shutdown, {:failed_to_start_child, :bad, :boom}}}, false, nil,
                {:shutdown, {:failed_to_start_child, :bad, :boom}}}
    end

    test "invalid specifications and flags" do
      assert result(
               fn ->
                 Lockstep.flag(:trap_exit, true)
                 me = self()

                 {Supervisor.start_link([Worker.spec(me, :a), Worker.spec(me, :a)],
                    strategy: :one_for_one
                  ),
                  Supervisor.start_link([%{id: :a, start: {Worker, :start, []}, restart: :no}],
                    strategy: :one_for_one
                  ), Supervisor.start_link([], strategy: :one_for_one, max_restarts: -1),
                  Supervisor.start_link([], strategy: :one_for_one, max_seconds: 0)}
               end,
               # The supervisors exit with these reasons: crashes, as in OTP.
               crash: :ignore
             ) ==
               {{:error, {:start_spec, {:duplicate_child_name, :a}}},
                {:error, {:start_spec, {:invalid_restart_type, :no}}},
                {:error, {:supervisor_data, {:invalid_intensity, -1}}},
                {:error, {:supervisor_data, {:invalid_period, 0}}}}
    end

    test "a module-based supervisor: init/1, :name, :ignore and a bad return" do
      assert result(
               fn ->
                 # Sup.start_link({:raw, :oops}) fails: the supervisor's exit reaches us.
                 Lockstep.flag(:trap_exit, true)
                 me = self()
                 arg = {[Worker.spec(me, :w)], [strategy: :one_for_one]}
                 {:ok, sup} = Sup.start_link(arg, name: :sup_named)
                 w = started(:worker_started, :w)

                 {Supervisor.which_children(:sup_named) == [{:w, w, :worker, [Worker]}],
                  Lockstep.whereis(:sup_named) == sup,
                  Sup.start_link(arg, name: :sup_named) == {:error, {:already_started, sup}},
                  Sup.start_link({:raw, :ignore}), Sup.start_link({:raw, :oops}),
                  Supervisor.start_link(Sup, {:raw, {:ok, {{:one_for_one, 1, 5}, []}}}) |> elem(0)}
               end,
               crash: :ignore
             ) == {true, true, true, :ignore, {:error, {:bad_return, {Sup, :init, :oops}}}, :ok}
    end

    test "flags naming another strategy make init/1 raise" do
      assert {:error, {%ArgumentError{message: message}, [_ | _]}} =
               result(
                 fn ->
                   Lockstep.flag(:trap_exit, true)
                   Sup.start_link({:raw, {:ok, {%{strategy: :rest_for_one}, []}}})
                 end,
                 crash: :ignore
               )

      assert message =~ "only the :one_for_one strategy"
    end
  end

  describe "links" do
    test "start_link links the supervisor to its caller: the caller's exit stops it" do
      assert result(fn ->
               me = self()

               caller =
                 Lockstep.spawn(fn ->
                   children = [{Counter, name: :sup_linked, notify: me}]
                   {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one)

                   Lockstep.send(me, {:sup, sup})
                   Lockstep.receive(do: (:go -> exit(:shutdown)))
                 end)

               sup = Lockstep.receive(do: ({:sup, sup} -> sup))
               child = started(:counter_started, :sup_linked)
               sup_ref = Lockstep.monitor(sup)
               child_ref = Lockstep.monitor(child)
               Lockstep.send(caller, :go)

               downs =
                 for _ <- 1..2 do
                   Lockstep.receive do
                     {:DOWN, ^child_ref, _, _, reason} -> {:child, reason}
                     {:DOWN, ^sup_ref, _, _, reason} -> {:sup, reason}
                   end
                 end

               {downs, Lockstep.whereis(:sup_linked)}
             end) == {[child: :shutdown, sup: :shutdown], nil}
    end

    test "a supervisor giving up kills its non-trapping caller with :shutdown" do
      assert result(fn ->
               me = self()

               caller =
                 Lockstep.spawn(fn ->
                   {:ok, _sup} =
                     Supervisor.start_link([Worker.spec(me, :w)],
                       strategy: :one_for_one,
                       max_restarts: 0
                     )

                   Lockstep.receive(do: (:never -> :ok))
                 end)

               ref = Lockstep.monitor(caller)
               Lockstep.exit(started(:worker_started, :w), :kill)
               Lockstep.receive(do: ({:DOWN, ^ref, _, _, reason} -> reason))
             end) == :shutdown
    end
  end

  describe "exploring a crash-and-restart race" do
    # A client increments a supervised, named counter while another process crashes it.
    # Depending on the schedule the client's call reaches the old counter (2), dies with it,
    # finds no process under the name ({:noproc, _}: the supervisor has not restarted it
    # yet), or reaches the restarted counter and sees its state reset (1).
    defp race(on_reset) do
      fn ->
        {:ok, _sup} = Supervisor.start_link([counter(:sup_race)], strategy: :one_for_one)
        1 = GenServer.call(:sup_race, :incr)
        Lockstep.spawn(fn -> GenServer.cast(:sup_race, :crash) end)

        outcome =
          try do
            GenServer.call(:sup_race, :incr)
          catch
            :exit, {:noproc, {GenServer, :call, _}} -> :noproc
            :exit, {{%RuntimeError{}, _}, {GenServer, :call, _}} -> :died_during_call
          end

        on_reset.(outcome)
      end
    end

    test "Lockstep.check finds the schedule where the client sees the counter reset" do
      assert {:error, bug} =
               Lockstep.check(
                 race(fn
                   1 -> raise "counter reset by the restart"
                   outcome -> outcome
                 end),
                 iterations: 500,
                 crash: :ignore,
                 seed: 11
               )

      assert bug.kind == :exception
      assert {:error, %RuntimeError{message: "counter reset by the restart"}, _} = bug.reason
    end

    test "every outcome happens in some schedule" do
      outcomes = results(race(& &1), iterations: 300, crash: :ignore, seed: 5) |> Enum.uniq()
      assert Enum.sort(outcomes) == Enum.sort([1, 2, :noproc, :died_during_call])
    end
  end

  describe "init/2 and child_spec/2 (no run needed)" do
    test "init/2 builds the flags and normalises children" do
      assert Supervisor.init([{Counter, [name: :x]}, Counter, %{id: :m, start: {M, :f, []}}],
               strategy: :one_for_one,
               max_seconds: 10
             ) ==
               {:ok,
                {%{strategy: :one_for_one, intensity: 3, period: 10},
                 [
                   %{id: Counter, start: {Counter, :start_link, [[name: :x]]}},
                   %{id: Counter, start: {Counter, :start_link, [[]]}},
                   %{id: :m, start: {M, :f, []}}
                 ]}}
    end

    test "only :one_for_one is simulated; :strategy is required" do
      for strategy <- [:one_for_all, :rest_for_one, :simple_one_for_one, :bogus] do
        assert_raise ArgumentError,
                     ~r/only the :one_for_one strategy, got: #{inspect(strategy)}/,
                     fn ->
                       Supervisor.init([], strategy: strategy)
                     end

        # start_link/2 raises in the caller, before starting anything.
        assert_raise ArgumentError, ~r/only the :one_for_one strategy/, fn ->
          Supervisor.start_link([], strategy: strategy)
        end
      end

      assert_raise ArgumentError, "expected :strategy option to be given", fn ->
        Supervisor.init([], max_restarts: 1)
      end
    end

    test "child_spec/2 calls module.child_spec/1 and applies overrides" do
      assert Supervisor.child_spec({Counter, [initial: 3]}, id: :c, restart: :transient) ==
               %{id: :c, start: {Counter, :start_link, [[initial: 3]]}, restart: :transient}

      assert Supervisor.child_spec(Sup, []) ==
               %{id: Sup, start: {Sup, :start_link, [[]]}, type: :supervisor}

      assert_raise ArgumentError, ~r/unknown key :bogus/, fn ->
        Supervisor.child_spec(Counter, bogus: 1)
      end

      assert_raise ArgumentError,
                   ~r/String was given as a child.*does not implement child_spec/,
                   fn ->
                     Supervisor.child_spec(String, [])
                   end

      assert_raise ArgumentError, ~r/expects each child to be/, fn ->
        Supervisor.child_spec("child", [])
      end
    end
  end
end
