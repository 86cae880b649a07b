defmodule Lockstep.OTP.GenServerTest do
  # Real GenServer code (OTP 25's :gen_server, :gen, :proc_lib, instrumented in place) under
  # control: each program runs on the plain BEAM and under Lockstep, and the outcomes must
  # be the same — replies, exit reasons, the init/1 handshake, names, stop/3, casts and
  # infos — over every interleaving the run tries.
  use Lockstep.Test, async: true

  # Servers that crash or stop abnormally log OTP's reports, as they should.
  @moduletag capture_log: true

  alias Lockstep.TestSupport.OTP.{Account, Compare, Server}

  defp same_as_plain(program, opts \\ []) do
    expected = Compare.plain(program)

    {outcomes, summary} =
      Compare.controlled(program, Keyword.put_new(opts, :instrument, [Server]))

    assert outcomes == [expected]
    assert summary.iterations == Keyword.get(opts, :iterations, 20)
    expected
  end

  defp exit_reason(fun) do
    fun.()
    :no_exit
  catch
    :exit, reason -> {:exit, reason}
  end

  describe "GenServer.call" do
    test "replies" do
      assert {:ok, {1, 2}} =
               same_as_plain(fn ->
                 {:ok, pid} = Server.start_link({:ok, 1})
                 first = GenServer.call(pid, :get)
                 {first, GenServer.call(pid, {:sleep, 10, 2})}
               end)
    end

    test "to a name nobody holds exits with {:noproc, {GenServer, :call, args}}" do
      assert {:exit, {:noproc, {GenServer, :call, [:lockstep_nobody, :get, 5000]}}} =
               same_as_plain(fn -> GenServer.call(:lockstep_nobody, :get) end)
    end

    test "to a dead pid exits with :noproc" do
      assert {:exit, {:noproc, {GenServer, :call, [:pid, :get, 5000]}}} =
               same_as_plain(fn ->
                 {:ok, pid} = Server.start({:ok, 1})
                 :ok = GenServer.stop(pid)
                 GenServer.call(pid, :get)
               end)
    end

    test "times out after the call's timeout in virtual time, and the late reply is dropped" do
      program = fn ->
        {:ok, pid} = Server.start_link({:ok, 1})
        started = System.monotonic_time(:millisecond)
        reason = exit_reason(fn -> GenServer.call(pid, {:sleep, 200, :late}, 50) end)
        waited = System.monotonic_time(:millisecond) - started
        # Long enough for the late reply to be sent; the alias drops it.
        Process.sleep(400)

        mailbox =
          receive do
            message -> {:got, message}
          after
            0 -> :empty
          end

        {reason, waited >= 50 and waited < 200, mailbox}
      end

      assert {:ok,
              {{:exit, {:timeout, {GenServer, :call, [:pid, {:sleep, 200, :late}, 50]}}}, true,
               :empty}} = same_as_plain(program)
    end

    for reason <- [:normal, :shutdown] do
      test "exits with #{inspect(reason)} when the server stops during the call" do
        reason = unquote(reason)

        assert {:exit, {^reason, {GenServer, :call, [:pid, {:stop, ^reason}, 5000]}}} =
                 same_as_plain(fn ->
                   {:ok, pid} = Server.start({:ok, 1})
                   GenServer.call(pid, {:stop, reason})
                 end)
      end
    end

    test "a reply given before stopping reaches the caller" do
      assert {:ok, {:bye, false}} =
               same_as_plain(fn ->
                 {:ok, pid} = Server.start({:ok, 1})
                 reply = GenServer.call(pid, {:stop, :normal, :bye})
                 ref = Process.monitor(pid)
                 receive(do: ({:DOWN, ^ref, _, _, _} -> :ok))
                 {reply, Process.alive?(pid)}
               end)
    end
  end

  describe "start_link's init/1 handshake" do
    test "{:stop, reason}: {:error, reason}, and the linked caller gets the exit" do
      assert {:ok, {{:error, :no_way}, {:EXIT, :pid, :no_way}}} =
               same_as_plain(
                 fn ->
                   Process.flag(:trap_exit, true)
                   result = Server.start_link({:stop, :no_way})
                   signal = receive(do: ({:EXIT, _, _} = signal -> signal))
                   {result, signal}
                 end,
                 crash: :ignore
               )
    end

    test "{:stop, reason} with start/3: {:error, reason}" do
      assert {:ok, {:error, :no_way}} =
               same_as_plain(fn -> Server.start({:stop, :no_way}) end, crash: :ignore)
    end

    test ":ignore" do
      assert {:ok, {:ignore, nil}} =
               same_as_plain(fn ->
                 result = Server.start_link(:ignore, name: :lockstep_ignored)
                 {result, Process.whereis(:lockstep_ignored)}
               end)
    end

    test "{:ok, state, {:continue, c}}: handle_continue runs before the first call" do
      assert {:ok, :continued} =
               same_as_plain(fn ->
                 {:ok, pid} = Server.start_link({:continue, :initial, {:set, :continued}})
                 GenServer.call(pid, :get)
               end)
    end
  end

  describe "names" do
    test "an atom: whereis, call by name, {:already_started, pid}" do
      assert {:ok, {true, 1, {:error, {:already_started, :pid}}, true}} =
               same_as_plain(fn ->
                 {:ok, pid} = Server.start_link({:ok, 1}, name: :lockstep_named)
                 again = Server.start_link({:ok, 2}, name: :lockstep_named)
                 {:error, {:already_started, ^pid}} = again

                 {Process.whereis(:lockstep_named) == pid, GenServer.call(:lockstep_named, :get),
                  again, GenServer.whereis(:lockstep_named) == pid}
               end)
    end

    test "{:global, term}" do
      assert {:ok, {1, true, {:error, {:already_started, :pid}}}} =
               same_as_plain(fn ->
                 name = {:global, {:lockstep_account, make_ref()}}
                 {:ok, pid} = Server.start_link({:ok, 1}, name: name)
                 value = GenServer.call(name, :get)
                 {value, GenServer.whereis(name) == pid, Server.start({:ok, 2}, name: name)}
               end)
    end

    test "{:via, Registry, {registry, key}}" do
      assert {:ok, {1, true, 2}} =
               same_as_plain(fn ->
                 registry = :"lockstep_via_#{System.unique_integer([:positive])}"
                 {:ok, _} = Registry.start_link(keys: :unique, name: registry)
                 name = {:via, Registry, {registry, :account}}
                 {:ok, pid} = Server.start_link({:ok, 1}, name: name)
                 value = GenServer.call(name, :get)
                 GenServer.cast(name, {:put, 2})
                 {value, GenServer.whereis(name) == pid, GenServer.call(name, :get)}
               end)
    end
  end

  describe "GenServer.stop/3" do
    test "is synchronous: terminate/2 has run and the name is free when it returns" do
      assert {:ok, {:ok, nil, false, {:terminated, :shutdown}, {:ok, :pid}}} =
               same_as_plain(fn ->
                 {:ok, pid} = Server.start({:ok, {:notify, self()}}, name: :lockstep_stopped)
                 result = GenServer.stop(:lockstep_stopped, :shutdown)
                 whereis = Process.whereis(:lockstep_stopped)
                 alive = Process.alive?(pid)
                 terminated = receive(do: ({:terminated, _} = t -> t), after: (0 -> :none))

                 {result, whereis, alive, terminated,
                  Server.start_link({:ok, 1}, name: :lockstep_stopped)}
               end)
    end

    test "of a dead server exits with :noproc" do
      assert {:exit, {:noproc, {GenServer, :stop, [:pid, :normal, :infinity]}}} =
               same_as_plain(fn ->
                 {:ok, pid} = Server.start({:ok, 1})
                 :ok = GenServer.stop(pid)
                 GenServer.stop(pid)
               end)
    end
  end

  test "cast and handle_info change the state; calls see them in order" do
    assert {:ok, {2, 3}} =
             same_as_plain(fn ->
               {:ok, pid} = Server.start_link({:ok, 1})
               :ok = GenServer.cast(pid, {:put, 2})
               after_cast = GenServer.call(pid, :get)
               send(pid, {:put, 3})
               {after_cast, GenServer.call(pid, :get)}
             end)
  end

  describe "more of the call protocol" do
    test "{name, node} of the local node" do
      assert {:ok, 5} =
               same_as_plain(fn ->
                 {:ok, _} = Server.start_link({:ok, 5}, name: :lockstep_at_node)
                 GenServer.call({:lockstep_at_node, node()}, :get)
               end)
    end

    test ":gen_server.send_request/2 with receive_response/2 and wait_response/2" do
      assert {:ok, {{:reply, 5}, :timeout}} =
               same_as_plain(fn ->
                 {:ok, pid} = Server.start_link({:ok, 5})
                 reply = :gen_server.receive_response(:gen_server.send_request(pid, :get), 1000)
                 slow = :gen_server.send_request(pid, {:sleep, 100, :x})
                 {reply, :gen_server.wait_response(slow, 10)}
               end)
    end

    test "a server killed before the call: :noproc" do
      assert {:exit, {:noproc, {GenServer, :call, [:pid, :get, 5000]}}} =
               same_as_plain(fn ->
                 {:ok, pid} = Server.start({:ok, 5})
                 Process.exit(pid, :kill)
                 Process.sleep(1)
                 GenServer.call(pid, :get)
               end)
    end

    test "a server crashing in handle_call exits the caller with the crash" do
      assert {:ok, {{%RuntimeError{}, _}, {GenServer, :call, [:pid, :crash, 5000]}}} =
               same_as_plain(
                 fn ->
                   {:ok, pid} = Server.start({:ok, 5})
                   {:exit, reason} = Compare.outcome(fn -> GenServer.call(pid, :crash) end)
                   # The stack trace differs between the runs (Lockstep's frames).
                   {{e, _stack}, call} = reason
                   {{e, :stack}, call}
                 end,
                 crash: :ignore
               )
    end

    test "stop/2 with an abnormal reason reaches a trapping parent" do
      assert {:ok, {:ok, {:EXIT, :pid, :boom}}} =
               same_as_plain(
                 fn ->
                   Process.flag(:trap_exit, true)
                   {:ok, pid} = Server.start_link({:ok, 5})
                   result = GenServer.stop(pid, :boom)
                   {result, receive(do: (message -> message))}
                 end,
                 crash: :ignore
               )
    end

    test ":sys.suspend/1 holds calls until :sys.resume/1" do
      assert {:ok, {:timeout, 5}} =
               same_as_plain(fn ->
                 {:ok, pid} = Server.start({:ok, 5})
                 :ok = :sys.suspend(pid)
                 {:exit, {reason, _}} = Compare.outcome(fn -> GenServer.call(pid, :get, 50) end)
                 :ok = :sys.resume(pid)
                 {reason, GenServer.call(pid, :get)}
               end)
    end
  end

  describe "the account (issue 12)" do
    test "withdraw's balance-then-put_balance race is found, and replays" do
      {:error, bug} = Lockstep.check(&Account.body/0, instrument: [Account])
      assert bug.kind == :exception
      assert Exception.message(bug) =~ "overdrawn"

      assert_raise Lockstep.BugFound, ~r/overdrawn/, fn ->
        Lockstep.replay(&Account.body/0, bug.trace_path)
      end

      {:error, again} = Lockstep.check(&Account.body/0, instrument: [Account], seed: bug.seed)
      assert again.schedule == bug.schedule and again.iteration == bug.iteration
    end

    test "the one-call fix passes 1,000 iterations" do
      summary = Lockstep.run(&Account.fixed_body/0, instrument: [Account], iterations: 1000)
      assert summary.iterations == 1000
    end
  end

  describe "a call's timeout racing a slow reply (timers: :anytime)" do
    test "both outcomes are reachable and the late reply never reaches the caller's mailbox" do
      program = fn ->
        {:ok, pid} = Server.start_link({:ok, 1})

        result =
          try do
            {:reply, GenServer.call(pid, {:sleep, 10, :slow}, 10)}
          catch
            :exit, {:timeout, {GenServer, :call, _}} -> :timeout
          end

        # Whatever the outcome, the server has answered by now; nothing may be left.
        :ok = GenServer.call(pid, {:sleep, 0, :ok}, :infinity)
        leftover = receive(do: (message -> {:leftover, message}), after: (0 -> :none))
        {result, leftover}
      end

      {outcomes, _summary} =
        Compare.controlled(program, timers: :anytime, iterations: 200, instrument: [Server])

      assert Enum.sort(outcomes) ==
               Enum.sort([{:ok, {:timeout, :none}}, {:ok, {{:reply, :slow}, :none}}])
    end
  end
end
