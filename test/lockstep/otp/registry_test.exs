defmodule Lockstep.Otp.RegistryTest do
  # The real Registry under control: its ETS tables (created by the registry's own managed
  # processes, one of them named after the registry) and the links its partitions keep to
  # registered processes. Each program runs under plain OTP 25 and under Lockstep.
  use Lockstep.Test, async: true

  alias Lockstep.OtpCompare
  alias Lockstep.OtpReg.Sessions
  alias Lockstep.OtpSup.Stash

  @moduletag :capture_log
  @app [Stash, Sessions]

  defp agree(fun, opts \\ []) do
    opts = Keyword.merge([iterations: 30, instrument: @app], opts)
    {plain, controlled} = OtpCompare.both(fun, opts)
    assert controlled == [plain]
    plain
  end

  # A process that registers `key` with `value` in `registry`, says so, and exits when told.
  defp owner(registry, key, value) do
    me = self()

    pid =
      spawn(fn ->
        result = Registry.register(registry, key, value)
        send(me, {:registered, self(), result})

        serve(me)
      end)

    receive(do: ({:registered, ^pid, result} -> {pid, result}))
  end

  defp serve(parent) do
    receive do
      :stop ->
        :ok

      {:dispatched, v} ->
        send(parent, {:got, self(), v})
        serve(parent)
    end
  end

  # The partitions clean up after a dead owner when they get its exit signal: poll (a sleep
  # is a point where the registry can run) until `registry` holds `n` entries.
  defp await_count(registry, n, tries \\ 200) do
    cond do
      Registry.count(registry) == n -> :ok
      tries == 0 -> {:count_stuck_at, Registry.count(registry)}
      true -> Process.sleep(5) && await_count(registry, n, tries - 1)
    end
  end

  test ":unique: register, lookup, a second registration, keys, unregister, the owner's death" do
    body = fn ->
      {:ok, _} = Registry.start_link(keys: :unique, name: :reg_u, partitions: 2)
      {a, {:ok, owner_side}} = owner(:reg_u, :k, :va)
      looked = Registry.lookup(:reg_u, :k)
      taken = Registry.register(:reg_u, :k, :mine)
      keys = Registry.keys(:reg_u, a)
      where = Registry.whereis_name({:reg_u, :k}) == a
      send(a, :stop)
      gone = await_count(:reg_u, 0)
      after_death = Registry.lookup(:reg_u, :k)
      {:ok, _} = Registry.register(:reg_u, :k, :mine)
      mine = Registry.lookup(:reg_u, :k)
      :ok = Registry.unregister(:reg_u, :k)

      {is_pid(owner_side), looked, taken, keys, where, gone, after_death, mine,
       Registry.lookup(:reg_u, :k)}
    end

    assert {:ok,
            {true, [{{:pid, 1}, :va}], {:error, {:already_registered, {:pid, 1}}}, [:k], true,
             :ok, [], [{{:pid, 2}, :mine}], []}} = agree(body)
  end

  test ":duplicate: several owners, lookup, dispatch, match, count_match, one owner's death" do
    body = fn ->
      {:ok, _} = Registry.start_link(keys: :duplicate, name: :reg_d, partitions: 2)
      {a, {:ok, _}} = owner(:reg_d, :topic, 1)
      {b, {:ok, _}} = owner(:reg_d, :topic, 2)
      {_c, {:ok, _}} = owner(:reg_d, :other, 3)
      looked = Registry.lookup(:reg_d, :topic) |> Enum.sort_by(&elem(&1, 1))

      :ok =
        Registry.dispatch(:reg_d, :topic, fn entries ->
          for {pid, v} <- entries, do: send(pid, {:dispatched, v * 10})
        end)

      got = for _ <- 1..2, do: receive(do: ({:got, pid, v} -> {pid == a or pid == b, v}))
      matched = Registry.match(:reg_d, :topic, 2)
      counted = Registry.count_match(:reg_d, :topic, :_)
      send(a, :stop)
      gone = await_count(:reg_d, 2)
      left = Registry.lookup(:reg_d, :topic)

      {looked == [{a, 1}, {b, 2}], Enum.sort(got), matched == [{b, 2}], counted, gone,
       left == [{b, 2}]}
    end

    assert {:ok, {true, [{true, 10}, {true, 20}], true, 2, :ok, true}} = agree(body)
  end

  test "{:via, Registry, key} names a GenServer: start, call, already_started, stop frees the name" do
    body = fn ->
      {:ok, _} = Registry.start_link(keys: :unique, name: :reg_v)
      name = {:via, Registry, {:reg_v, :acct}}
      {:ok, pid} = GenServer.start_link(Stash, [], name: name)
      again = GenServer.start(Stash, [], name: name)
      :ok = GenServer.call(name, {:put, 7})
      value = GenServer.call(name, :get)
      where = GenServer.whereis(name) == pid
      :ok = GenServer.stop(name)
      gone = await_count(:reg_v, 0)
      missing = catch_exit(GenServer.call(name, :get))
      {again, value, where, gone, Registry.lookup(:reg_v, :acct), missing}
    end

    assert {:ok,
            {{:error, {:already_started, {:pid, 1}}}, 7, true, :ok, [],
             {:noproc, {GenServer, :call, [{:via, Registry, {:reg_v, :acct}}, :get, 5000]}}}} =
             agree(body)
  end

  test "meta, update_value, select, unregister_match, and listeners told of (un)registrations" do
    body = fn ->
      Process.register(self(), :reg_listener)

      {:ok, _} =
        Registry.start_link(
          keys: :unique,
          name: :reg_m,
          meta: [role: :test],
          listeners: [:reg_listener]
        )

      meta =
        {Registry.meta(:reg_m, :role), Registry.put_meta(:reg_m, :role, :other),
         Registry.meta(:reg_m, :role)}

      {:ok, _} = Registry.register(:reg_m, :a, 1)
      {:ok, _} = Registry.register(:reg_m, :b, 2)
      updated = Registry.update_value(:reg_m, :a, &(&1 + 10))
      missing = Registry.update_value(:reg_m, :zzz, & &1)

      selected =
        Registry.select(:reg_m, [{{:"$1", :_, :"$2"}, [{:>, :"$2", 5}], [{{:"$1", :"$2"}}]}])

      :ok = Registry.unregister_match(:reg_m, :b, 2)
      left = Registry.keys(:reg_m, self()) |> Enum.sort()

      told =
        for _ <- 1..3 do
          receive do
            {:register, :reg_m, key, _pid, _value} -> {:register, key}
            {:unregister, :reg_m, key, _pid} -> {:unregister, key}
          end
        end

      {meta, updated, missing, selected, left, told}
    end

    assert {:ok,
            {{{:ok, :test}, :ok, {:ok, :other}}, {11, 1}, :error, [a: 11], [:a],
             [register: :a, register: :b, unregister: :b]}} = agree(body)
  end

  test "a dead owner's entry stays visible until its partition handles the exit: both windows reached" do
    body = fn ->
      {:ok, _} = Registry.start_link(keys: :unique, name: :reg_w)
      {owner, {:ok, _}} = owner(:reg_w, :k, :v)
      ref = Process.monitor(owner)
      Process.exit(owner, :kill)
      receive(do: ({:DOWN, ^ref, _, _, _} -> :ok))
      if Registry.lookup(:reg_w, :k) == [], do: :cleaned, else: :stale
    end

    {_summary, outcomes} = OtpCompare.controlled(body, iterations: 300, instrument: @app)
    assert Enum.sort(outcomes) == [{:ok, :cleaned}, {:ok, :stale}]
  end

  describe "find-or-start through Registry and DynamicSupervisor (the issue's test)" do
    defp find_or_start(find) do
      fn ->
        {:ok, _} = Sessions.start_link(:sessions)
        me = self()

        for _ <- 1..2 do
          spawn(fn -> send(me, {:pid, find.(:sessions, "alice")}) end)
        end

        pids = for _ <- 1..2, do: receive(do: ({:pid, pid} -> pid))
        assert [_one] = Enum.uniq(pids)

        assert [{:undefined, _, :worker, [Stash]}] =
                 DynamicSupervisor.which_children(Sessions.sup(:sessions))
      end
    end

    test "lookup-then-start_child loses the race with {:error, {:already_started, pid}} (found)" do
      bug =
        OtpCompare.assert_deterministic_bug(find_or_start(&Sessions.find_or_start/2),
          iterations: 1_000,
          instrument: @app
        )

      assert bug.kind == :crash
      assert {:error, %MatchError{term: {:error, {:already_started, pid}}}, _} = bug.reason
      assert is_pid(pid)
    end

    test "the found schedule shrinks, and the shrunk file replays the same crash" do
      body = find_or_start(&Sessions.find_or_start/2)
      {:error, bug} = Lockstep.check(body, seed: 3, iterations: 1_000, instrument: @app)
      assert {:ok, info} = Lockstep.shrink(body, bug.trace_path, [])
      assert info.kind == :crash
      assert info.new_length <= info.original_length
      assert info.new_switches <= info.original_switches

      replayed = assert_raise Lockstep.BugFound, fn -> Lockstep.replay(body, info.trace_path) end
      assert {:error, %MatchError{term: {:error, {:already_started, _}}}, _} = replayed.reason
    end

    test "every strategy finds it" do
      OtpCompare.assert_every_strategy_finds(find_or_start(&Sessions.find_or_start/2),
        instrument: @app
      )
    end

    test "taking the winner's pid from {:error, {:already_started, pid}} passes 1,000 iterations" do
      assert %Lockstep.Summary{iterations: 1_000} =
               Lockstep.run(find_or_start(&Sessions.find_or_start_fixed/2),
                 iterations: 1_000,
                 instrument: @app
               )
    end
  end
end
