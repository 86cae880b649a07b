defmodule Lockstep.SessionTest do
  # STYLE 5: Lockstep.Native holds stubs only, and one gateway, Lockstep.Session, calls it;
  # the hot path (Lockstep.Runtime) calls it directly for the sync points and the calls
  # around them, and for nothing else.
  use ExUnit.Case, async: true

  alias Lockstep.Session

  # What Lockstep.Runtime may call directly (see Lockstep.Session's comment).
  @hot_path [
    :sync_send,
    :sync_receive,
    :relay_hop,
    :external_received,
    :await_outside,
    :yield,
    :sync_random,
    :sync_spawn,
    :sync_link,
    :sync_monitor,
    :sync_demonitor,
    :sync_trap_exit,
    :sync_exit_signal,
    :sync_alive,
    :sync_name,
    :sync_time,
    :sync_send_after,
    :sync_cancel_timer,
    :sync_read_timer,
    :sync_nif,
    :sync_cluster,
    :exit,
    :external_exit,
    :consumed,
    :note_site,
    :note_label,
    :hold,
    :mark_park,
    :register_child,
    :registered,
    :managed_pid,
    :alias,
    :node_name,
    :ets_names,
    :rand_seed
  ]

  defp native_calls(module) do
    {:ok, {^module, [imports: imports]}} = :beam_lib.chunks(:code.which(module), [:imports])
    for {Lockstep.Native, function, _arity} <- imports, uniq: true, do: function
  end

  test "only the gateway and the hot path call the NIF" do
    {:ok, modules} = :application.get_key(:lockstep, :modules)
    callers = for m <- modules, m != Lockstep.Native, native_calls(m) != [], do: m
    assert Enum.sort(callers) == [Lockstep.Runtime, Lockstep.Session]
  end

  test "the hot path calls the NIF only for sync points and the calls around them" do
    assert native_calls(Lockstep.Runtime) -- @hot_path == []
  end

  test "every stub is reached, through the gateway or the hot path" do
    # poison_for_test/1 is the NIF error tests' hook (native_error_test.exs), never called
    # by Lockstep itself
    stubs = Lockstep.Native.__info__(:functions) -- [load_nif: 0, poison_for_test: 1]
    gateway = native_calls(Lockstep.Session)
    runtime = native_calls(Lockstep.Runtime)

    # Every stub is reached through the gateway or the hot path.
    assert Enum.sort(Keyword.keys(stubs)) == Enum.sort(Enum.uniq(gateway ++ runtime))
  end

  describe "what the gateway returns" do
    setup do
      {:ok, ctl} = Lockstep.Controller.start_link(seed: 3)
      %{session: session} = GenServer.call(ctl, :handle)
      %{ctl: ctl, session: session}
    end

    test "processes and progress as structs, the outcome once the iteration ends", %{
      ctl: ctl,
      session: session
    } do
      assert [%Session.Proc{id: 0, name: "P", pid: nil, state: :ready, node: :nonode@nohost}] =
               Session.procs(session)

      assert %Session.Progress{step: 0, now: 0, running: nil} = Session.progress(session)
      assert Session.now(session) == 0
      assert Session.outcome(session) == nil

      root = Lockstep.Controller.spawn_root(ctl, fn -> Lockstep.sleep(25) end)
      assert %{kind: :pass} = Lockstep.Controller.await_done(ctl)

      assert [%Session.Proc{name: "P", pid: ^root, state: :exited}] = Session.procs(session)
      assert %Session.Progress{now: 25} = Session.progress(session)
      assert Session.outcome(session) == :pass
      assert [{:run, "P"} | _] = Session.schedule(session)
      assert {1, {:start, "P"}} in Session.trace(session)
    end
  end

  test "a finished session's metrics are a struct" do
    cell = Session.strategy(:random)

    {session, tag} =
      Session.open(cell, 1, Lockstep.Options.validate!(fn -> :ok end, []), false, make_ref())

    assert is_integer(tag)
    assert :ok = Session.abort(session)

    assert {{:aborted, nil}, %Session.Metrics{steps: 0, cleanup: false}} = Session.finish(session)
  end

  test "a replay the program stops following ends as a Divergence" do
    cfg = Lockstep.Options.validate!(fn -> :ok end, iterations: 1)
    cell = Session.strategy({:replay, [{:run, "P"}, {:run, "P.1"}]})

    result =
      Lockstep.Janitor.with_janitor(fn ->
        Lockstep.Iteration.run(cell, fn -> Lockstep.yield() end, 1, cfg, true)
      end)

    assert result.kind == :diverged

    assert {:diverged, %Session.Divergence{step: 2, expected: {:run, "P.1"}, got: [{:run, "P"}]}} =
             result.outcome
  end

  describe "errors at the boundary (STYLE 6)" do
    test "the NIF's own exceptions pass through" do
      assert_raise Lockstep.InternalError, ~r/bad strategy spec no_such_strategy/, fn ->
        Session.strategy(:no_such_strategy)
      end
    end

    test "a term the NIF cannot decode is an InternalError naming the call, not a raw error" do
      error = assert_raise Lockstep.InternalError, fn -> Session.iteration_seed(-1, 1) end
      assert error.message =~ "iteration_seed"

      # a schedule the NIF decodes itself says what is wrong with it
      error =
        assert_raise Lockstep.InternalError, fn ->
          Session.strategy({:replay, [{:run, "not a name"}]})
        end

      assert error.message =~ "invalid schedule: bad process name"
    end
  end
end
