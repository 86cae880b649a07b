defmodule Lockstep.GenServerTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{BugFound, GenServer}
  alias Lockstep.GenTest.{Counter, Lifecycle, Minimal}

  import Lockstep.TestSupport, only: [normalize_pids: 1]

  # Runs `fun` as the root of every iteration and returns the list of the values it
  # returned (one per iteration), so tests can assert on them outside the run.
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

  # The value of the first iteration (when values carry pids in strings).
  defp first_result(fun, opts) do
    values = results(fun, opts)
    assert length(values) == Keyword.get(opts, :iterations, 100)
    hd(values)
  end

  # The value every iteration returned (the same in all, up to pids); the first one.
  defp result(fun, opts \\ [iterations: 20]) do
    values = results(fun, opts)
    assert length(values) == Keyword.get(opts, :iterations, 100)
    assert [_] = values |> Enum.map(&normalize_pids/1) |> Enum.uniq()
    hd(values)
  end

  defp exit_of(fun) do
    fun.()
  catch
    :exit, reason -> {:exited, reason}
  end

  defp empty_mailbox do
    Lockstep.receive do
      msg -> {:unexpected, msg}
    after
      0 -> :empty
    end
  end

  defp counter_clients(kind) do
    fn ->
      {:ok, counter} = Counter.start_link(0)
      me = self()

      for _ <- 1..2 do
        Lockstep.spawn(fn ->
          case kind do
            :racy ->
              n = GenServer.call(counter, :get)
              :ok = GenServer.call(counter, {:put, n + 1})

            :atomic ->
              GenServer.call(counter, :incr)
          end

          Lockstep.send(me, :done)
        end)
      end

      Lockstep.receive(do: (:done -> :ok))
      Lockstep.receive(do: (:done -> :ok))
      final = GenServer.call(counter, :get)
      if final != 2, do: raise("lost update: counter is #{final}")
      final
    end
  end

  describe "finding races" do
    test "get-then-put through calls loses an update" do
      bug =
        assert_raise BugFound, fn ->
          Lockstep.run(counter_clients(:racy), iterations: 300, seed: 7)
        end

      assert bug.kind == :exception
      assert {:error, %RuntimeError{message: "lost update: counter is 1"}, _stack} = bug.reason
    end

    test "the atomic version passes 300 iterations" do
      summary = Lockstep.run(counter_clients(:atomic), iterations: 300, seed: 7)
      assert summary.iterations == 300
      assert summary.distinct_schedules > 1
    end
  end

  describe "call/3" do
    test "by pid, registered name and {name, node}" do
      assert result(fn ->
               {:ok, pid} = Counter.start_link(41, name: :gen_counter)
               :ok = GenServer.call(:gen_counter, {:put, 42})

               {GenServer.call(pid, :get), GenServer.call({:gen_counter, :nonode@nohost}, :incr),
                GenServer.whereis(:gen_counter) == pid, GenServer.whereis(pid) == pid}
             end) == {42, 43, true, true}
    end

    test "a timeout exits the caller and the late reply never reaches its mailbox" do
      test = self()

      values =
        results(
          fn ->
            {:ok, counter} = Counter.start_link(5)
            t0 = Lockstep.now()
            exited = exit_of(fn -> GenServer.call(counter, {:slow, 500, test}, 100) end)
            waited = Lockstep.now() - t0
            Lockstep.sleep(1000)
            {exited, waited, empty_mailbox(), counter}
          end,
          iterations: 10
        )

      assert length(values) == 10

      for {exited, waited, mailbox, counter} <- values do
        assert {:exited, {:timeout, {GenServer, :call, [^counter, {:slow, 500, ^test}, 100]}}} =
                 exited

        assert waited == 100
        assert mailbox == :empty
      end

      # The late replies were sent (and dropped), once per iteration.
      for _ <- 1..10, do: assert_received(:late_reply_sent)
    end

    test "a reply within the timeout is returned" do
      test = self()

      assert result(fn ->
               GenServer.call(Counter.start_link(5) |> elem(1), {:slow, 50, test}, 100)
             end) ==
               {:late, 5}
    end

    test "a dead or unregistered server exits the caller with :noproc" do
      {dead, unregistered, remote} =
        result(fn ->
          {:ok, pid} = Counter.start(0)
          :ok = GenServer.stop(pid)

          {exit_of(fn -> GenServer.call(pid, :get) end),
           exit_of(fn -> GenServer.call(:gen_nobody, :get, 1000) end),
           exit_of(fn -> GenServer.call({:gen_nobody, :other@host}, :get) end)}
        end)

      assert {:exited, {:noproc, {GenServer, :call, [pid, :get, 5000]}}} = dead
      assert is_pid(pid)
      assert unregistered == {:exited, {:noproc, {GenServer, :call, [:gen_nobody, :get, 1000]}}}

      assert remote ==
               {:exited, {:noproc, {GenServer, :call, [{:gen_nobody, :other@host}, :get, 5000]}}}
    end

    test "a server dying during the call exits the caller with its reason" do
      {exited, server} =
        result(
          fn ->
            {:ok, server} = Counter.start(0)
            {exit_of(fn -> GenServer.call(server, :crash) end), server}
          end,
          iterations: 20,
          crash: :ignore
        )

      assert {:exited,
              {{%RuntimeError{message: "counter crashed in handle_call"}, [_ | _]},
               {GenServer, :call, [^server, :crash, 5000]}}} = exited
    end

    test "the server crash is reported as a :crash by default" do
      bug =
        assert_raise BugFound, fn ->
          Lockstep.run(
            fn ->
              {:ok, server} = Counter.start(0)
              exit_of(fn -> GenServer.call(server, :crash) end)
            end,
            iterations: 5
          )
        end

      assert bug.kind == :crash
      assert {:error, %RuntimeError{message: "counter crashed in handle_call"}, _} = bug.reason
    end

    test "{:stop, reason, reply, state} replies, then the server exits" do
      assert result(fn ->
               {:ok, server} = Counter.start(0)
               ref = Lockstep.monitor(server)
               reply = GenServer.call(server, {:stop, {:shutdown, :asked}})

               down =
                 Lockstep.receive do
                   {:DOWN, ^ref, :process, ^server, reason} -> reason
                 end

               {reply, down, Lockstep.alive?(server)}
             end) == {:stopping, {:shutdown, :asked}, false}
    end

    test "calling itself exits with :calling_self; a bad server raises ArgumentError" do
      {self_call, message} =
        result(fn ->
          self_call = exit_of(fn -> GenServer.call(self(), :get) end)

          message =
            try do
              GenServer.call("counter", :get)
            rescue
              e in ArgumentError -> Exception.message(e)
            end

          {self_call, message}
        end)

      assert {:exited, {:calling_self, {GenServer, :call, [_pid, :get, 5000]}}} = self_call
      assert message =~ "expects a server"
    end

    test "global names: start, call, cast, whereis, already_started, stop, noproc" do
      assert {{:error, {:already_started, true}}, 1, 11, true, :ok, nil,
              {:exited, {:noproc, {GenServer, :call, [{:global, :gen_g}, :get, 5000]}}}} =
               result(fn ->
                 {:ok, pid} = Counter.start(0, name: {:global, :gen_g})
                 {:error, {:already_started, other}} = Counter.start(5, name: {:global, :gen_g})
                 one = GenServer.call({:global, :gen_g}, :incr)
                 :ok = GenServer.cast({:global, :gen_g}, {:add, 10})
                 eleven = GenServer.call(pid, :get)
                 found = GenServer.whereis({:global, :gen_g}) == pid
                 stopped = GenServer.stop({:global, :gen_g})

                 {{:error, {:already_started, other == pid}}, one, eleven, found, stopped,
                  GenServer.whereis({:global, :gen_g}),
                  exit_of(fn -> GenServer.call({:global, :gen_g}, :get) end)}
               end)
    end

    test "{name, node} reaches a server on another simulated node" do
      assert result(fn ->
               me = self()
               [:gen_a] = Lockstep.Cluster.start_nodes([:gen_a])

               Lockstep.Cluster.spawn(:gen_a, fn ->
                 {:ok, _} = Counter.start(0, name: :gen_remote)
                 Lockstep.send(me, :ready)
               end)

               Lockstep.receive(do: (:ready -> :ok))
               server = {:gen_remote, :gen_a}
               one = GenServer.call(server, :incr)
               :ok = GenServer.cast(server, {:add, 4})
               five = GenServer.call(server, :get, 1_000)
               local = exit_of(fn -> GenServer.call(:gen_remote, :get) end)
               stopped = GenServer.stop(server)
               after_stop = exit_of(fn -> GenServer.call(server, :get) end)
               {one, five, GenServer.whereis(server), local, stopped, after_stop}
             end) ==
               {1, 5, {:gen_remote, :gen_a},
                {:exited, {:noproc, {GenServer, :call, [:gen_remote, :get, 5000]}}}, :ok,
                {:exited, {:noproc, {GenServer, :call, [{:gen_remote, :gen_a}, :get, 5000]}}}}
    end

    test "outside a run a call raises NotManagedError" do
      assert_raise Lockstep.NotManagedError, fn -> GenServer.call(:gen_counter, :get) end
    end
  end

  describe "cast/2 and reply/2" do
    test "casts are applied in order and never fail" do
      assert result(fn ->
               {:ok, server} = Counter.start_link(0, name: :gen_cast_counter)
               :ok = GenServer.cast(server, {:add, 2})
               :ok = GenServer.cast(:gen_cast_counter, {:add, 3})
               :ok = GenServer.cast(:gen_not_registered, {:add, 100})
               :ok = GenServer.cast({:gen_cast_counter, :nonode@nohost}, {:add, 4})
               GenServer.call(server, :get)
             end) == 9
    end
  end

  describe "stop/3" do
    test "calls terminate/2 with the reason and waits for the exit" do
      assert result(fn ->
               {:ok, server} = Lifecycle.start_link(:ok, self())
               :ok = GenServer.stop(server)
               first = Lockstep.receive(do: (msg -> msg))
               alive = Lockstep.alive?(server)

               {:ok, other} = Lifecycle.start(:ok, self())
               :ok = GenServer.stop(other, {:shutdown, :bye}, 1000)
               second = Lockstep.receive(do: (msg -> msg))
               {first, alive, second}
             end) ==
               {{:terminated, :normal, [:init]}, false, {:terminated, {:shutdown, :bye}, [:init]}}
    end

    test "a dead server exits the caller with :noproc" do
      assert {:exited, {:noproc, {GenServer, :stop, [pid, :normal, :infinity]}}} =
               result(fn ->
                 {:ok, server} = Counter.start(0)
                 :ok = GenServer.stop(server)
                 exit_of(fn -> GenServer.stop(server) end)
               end)

      assert is_pid(pid)

      assert result(fn -> exit_of(fn -> GenServer.stop(:gen_nobody, :normal, 10) end) end) ==
               {:exited, {:noproc, {GenServer, :stop, [:gen_nobody, :normal, 10]}}}
    end

    test "restarting a named server races with its stop: {:error, {:already_started, pid}}" do
      body = fn ->
        {:ok, old} = Counter.start(0, name: :gen_restarted)
        me = self()
        Lockstep.spawn(fn -> Lockstep.send(me, {:stopped, GenServer.stop(:gen_restarted)}) end)

        Lockstep.spawn(fn ->
          Lockstep.send(me, {:started, Counter.start(1, name: :gen_restarted)})
        end)

        started = Lockstep.receive(do: ({:started, result} -> result))
        :ok = Lockstep.receive(do: ({:stopped, result} -> result))

        case started do
          {:error, {:already_started, ^old}} ->
            raise "already_started: the old server still had the name"

          {:ok, new} ->
            1 = GenServer.call(new, :get)
        end
      end

      assert {:error, bug} = Lockstep.check(body, iterations: 300, seed: 3)
      assert bug.kind == :exception
      assert {:error, %RuntimeError{message: "already_started" <> _}, _} = bug.reason

      # Both outcomes are possible: some schedules restart the server successfully.
      assert Enum.any?(1..50, fn seed ->
               match?({:ok, _}, Lockstep.check(body, iterations: 1, seed: seed))
             end)
    end
  end

  describe "init/1 and the callback return values" do
    test "{:continue, arg} runs handle_continue before any message" do
      assert result(fn ->
               {:ok, server} = Lifecycle.start_link(:continue, self())
               GenServer.call(server, :log)
             end) == [:init, :continued]
    end

    test "an init timeout sends :timeout after that many virtual ms, unless a message comes first" do
      assert result(fn ->
               t0 = Lockstep.now()
               {:ok, _} = Lifecycle.start_link({:timeout, 1000}, self())
               fired = Lockstep.receive(do: ({:timeout_at, t} -> t - t0))

               {:ok, busy} = Lifecycle.start_link({:timeout, 1000}, self())
               log = GenServer.call(busy, :log)
               Lockstep.sleep(5000)
               {fired, log, empty_mailbox()}
             end) == {1000, [:init], :empty}
    end

    test "reply and continue / timeout; :hibernate is accepted" do
      assert result(fn ->
               {:ok, server} = Lifecycle.start_link(:hibernate, self())
               t0 = Lockstep.now()
               :replied = GenServer.call(server, {:reply_then_continue, :load})
               :replied = GenServer.call(server, {:reply_then_timeout, 300})
               fired = Lockstep.receive(do: ({:timeout_at, t} -> t - t0))
               {fired, GenServer.call(server, :log)}
             end) == {300, [:init, :continued, :timeout]}
    end

    test ":ignore, {:stop, reason}, a raise, a throw and a bad return" do
      assert result(
               fn ->
                 me = self()

                 {Lifecycle.start(:ignore, me, name: :gen_ignored),
                  GenServer.whereis(:gen_ignored),
                  Lifecycle.start({:stop, :no_config}, me, name: :gen_stopped),
                  GenServer.whereis(:gen_stopped), Lifecycle.start({:stop, :normal}, me),
                  Lifecycle.start(:raise, me),
                  GenServer.call(elem(Lifecycle.start(:throw, me), 1), :log),
                  Lifecycle.start(:bad, me)}
               end,
               iterations: 20,
               crash: :ignore
             )
             |> normalize() ==
               {:ignore, nil, {:error, :no_config}, nil, {:error, :normal},
                {:error, {%ArgumentError{message: "bad init"}, :stack}}, [:thrown],
                {:error, {:bad_return_value, :what}}}
    end

    test "init failures are crashes unless crash: :ignore" do
      bug =
        assert_raise BugFound, fn ->
          Lockstep.run(
            fn -> {:error, :no_config} = Lifecycle.start({:stop, :no_config}, self()) end,
            iterations: 3
          )
        end

      assert bug.kind == :crash
      assert {:exit, :no_config, _} = bug.reason
    end

    test "a name already taken gives {:error, {:already_started, pid}}" do
      assert result(fn ->
               {:ok, first} = Counter.start_link(0, name: :gen_taken)
               {:error, {:already_started, pid}} = Counter.start_link(1, name: :gen_taken)

               {pid == first, GenServer.call(:gen_taken, :get),
                Lockstep.whereis(:gen_taken) == first}
             end) == {true, 0, true}
    end

    test "the :timeout option kills a server whose init is too slow" do
      assert result(fn ->
               t0 = Lockstep.now()

               {Lifecycle.start_link({:sleep, 1000}, self(), name: :gen_slow, timeout: 100),
                Lockstep.now() - t0, GenServer.whereis(:gen_slow)}
             end) == {{:error, :timeout}, 100, nil}
    end

    test "an invalid :name raises ArgumentError" do
      assert result(fn ->
               for name <- [{:local, :x}, "string"] do
                 try do
                   Counter.start(0, name: name)
                 rescue
                   ArgumentError -> :raised
                 end
               end
             end) == [:raised, :raised]
    end
  end

  describe "links" do
    test "start_link links: a crashing server kills its non-trapping starter" do
      assert {{%RuntimeError{message: "counter crashed in handle_cast"}, [_ | _]}, true} =
               result(
                 fn ->
                   me = self()

                   starter =
                     Lockstep.spawn(fn ->
                       Lockstep.receive(do: (:go -> :ok))
                       {:ok, server} = Counter.start_link(0)
                       Lockstep.send(me, {:server, server})
                       GenServer.cast(server, :crash)
                       Lockstep.receive(do: (:never -> :ok))
                     end)

                   ref = Lockstep.monitor(starter)
                   Lockstep.send(starter, :go)
                   server = Lockstep.receive(do: ({:server, pid} -> pid))

                   reason =
                     Lockstep.receive do
                       {:DOWN, ^ref, :process, _, reason} -> reason
                     end

                   {reason, not Lockstep.alive?(server)}
                 end,
                 iterations: 20,
                 crash: :ignore
               )
    end

    test "a trapping starter gets the {:EXIT, server, reason} message" do
      assert {:EXIT, true, {%RuntimeError{}, _}} =
               result(
                 fn ->
                   Lockstep.flag(:trap_exit, true)
                   {:ok, server} = Counter.start_link(0)
                   GenServer.cast(server, :crash)

                   Lockstep.receive do
                     {:EXIT, pid, reason} -> {:EXIT, pid == server, reason}
                   end
                 end,
                 iterations: 20,
                 crash: :ignore
               )
    end

    test "a trapping server terminates when its parent exits" do
      assert result(fn ->
               me = self()

               Lockstep.spawn(fn ->
                 {:ok, _server} = Lifecycle.start_link(:trap, me)
                 exit(:shutdown)
               end)

               Lockstep.receive(do: (msg -> msg))
             end) == {:terminated, :shutdown, [:init]}
    end

    test "a trapping server gets other processes' exits in handle_info" do
      assert [:init, {:info, {:EXIT, _, :normal}}] =
               result(fn ->
                 {:ok, server} = Lifecycle.start_link(:trap, self())
                 Lockstep.spawn(fn -> Lockstep.link(server) end)
                 Lockstep.sleep(10)
                 GenServer.call(server, :log)
               end)
    end
  end

  describe "use Lockstep.GenServer defaults" do
    test "child_spec/1 and overrides" do
      assert Minimal.child_spec(:arg) ==
               %{id: Minimal, start: {Minimal, :start_link, [:arg]}, restart: :temporary}

      assert Counter.child_spec(3) == %{id: Counter, start: {Counter, :start_link, [3]}}
    end

    test "handle_info ignores messages; handle_call without a clause crashes the server" do
      {stop, exited} =
        first_result(
          fn ->
            {:ok, server} = GenServer.start(Minimal, :state)
            Lockstep.send(server, :stray)
            stop = GenServer.stop(server)
            {:ok, server} = GenServer.start(Minimal, :state)
            {stop, exit_of(fn -> GenServer.call(server, :anything) end)}
          end,
          iterations: 10,
          crash: :ignore
        )

      assert stop == :ok
      assert {:exited, {{%RuntimeError{message: message}, _}, {GenServer, :call, _}}} = exited
      assert message =~ "no handle_call/3 clause"
    end
  end

  # Replaces stacktraces in init results so they compare.
  defp normalize({:error, {%ArgumentError{} = e, [_ | _]}}), do: {:error, {e, :stack}}

  defp normalize(tuple) when is_tuple(tuple) do
    tuple |> Tuple.to_list() |> Enum.map(&normalize/1) |> List.to_tuple()
  end

  defp normalize(other), do: other
end
