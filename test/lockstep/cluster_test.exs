defmodule Lockstep.ClusterTest do
  # The simulated cluster (SPEC §4): nodes, partitions, node failures, per-node and global
  # names, and cross-node message delivery.
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{BugFound, Cluster, Global}
  alias Lockstep.ClusterBodies.Failover
  import Lockstep.TestSupport

  @home :nonode@nohost

  defp results(fun, opts) do
    test = self()
    summary = Lockstep.run(fn -> Lockstep.send(test, {:root_result, fun.()}) end, opts)
    values = collect()
    assert length(values) == summary.iterations
    values
  end

  defp collect do
    receive do
      {:root_result, value} -> [value | collect()]
    after
      0 -> []
    end
  end

  defp result(fun, opts) do
    assert [value] = fun |> results(opts) |> Enum.uniq()
    value
  end

  defp block_forever do
    Lockstep.receive do
      :never_sent -> :ok
    end
  end

  # Waits for a message matching `pred`, leaving others in the mailbox.
  defp await(pred), do: Lockstep.recv_first(pred)

  describe "nodes" do
    test "Lockstep.node/0, node_of/1, nodes/0 and nodes_up/0" do
      value =
        result(
          fn ->
            me = self()
            before = {Cluster.nodes(), Cluster.nodes_up()}
            [:a, :b] = Cluster.start_nodes([:a, :b])

            on_a =
              Lockstep.spawn(
                fn ->
                  # A plain spawn from a process on :a is on :a too (spawn/1 is local).
                  child =
                    Lockstep.spawn(fn -> Lockstep.send(me, {:child_node, Lockstep.node()}) end)

                  Lockstep.send(me, {:a_node, Lockstep.node(), child})
                end,
                node: :a
              )

            on_b = Cluster.spawn(:b, fn -> Lockstep.send(me, {:b_node, Lockstep.node()}) end)

            {:a_node, a_node, child} = await(&match?({:a_node, _, _}, &1))
            {:child_node, child_node} = await(&match?({:child_node, _}, &1))
            {:b_node, b_node} = await(&match?({:b_node, _}, &1))
            ref = Lockstep.monitor(on_a)
            Lockstep.receive(do: ({:DOWN, ^ref, :process, ^on_a, _} -> :ok))

            %{
              before: before,
              root: Lockstep.node(),
              reported: {a_node, child_node, b_node},
              # node_of works for exited processes too, like Kernel.node/1.
              node_of: Enum.map([self(), on_a, child, on_b], &Cluster.node_of/1),
              nodes: Enum.sort(Cluster.nodes()),
              nodes_up: Enum.sort(Cluster.nodes_up())
            }
          end,
          iterations: 30,
          seed: 1
        )

      assert value == %{
               before: {[@home], []},
               root: @home,
               reported: {:a, :a, :b},
               node_of: [@home, :a, :a, :b],
               nodes: Enum.sort([@home, :a, :b]),
               nodes_up: [:a, :b]
             }
    end

    test "spawning on a node that was never started raises ArgumentError" do
      value =
        result(
          fn ->
            Cluster.start_nodes([:a])

            for spawn <- [
                  fn -> Cluster.spawn(:nowhere, fn -> :ok end) end,
                  fn -> Lockstep.spawn(fn -> :ok end, node: :nowhere) end
                ] do
              try do
                spawn.()
                :no_raise
              rescue
                e in ArgumentError -> e.message =~ ":nowhere"
              end
            end
          end,
          iterations: 5,
          seed: 2
        )

      assert value == [true, true]
    end

    test "node_of/1 of a non-pid and a partition with a node on both sides raise ArgumentError" do
      value =
        result(
          fn ->
            Cluster.start_nodes([:a, :b])

            for bad <- [
                  fn -> Cluster.node_of(:a) end,
                  fn -> Cluster.partition([:a], [:a, :b]) end
                ] do
              try do
                bad.()
                :no_raise
              rescue
                e in ArgumentError -> e.message
              end
            end
          end,
          iterations: 5,
          seed: 3
        )

      assert [node_of, partition] = value
      assert node_of =~ "node_of/1 expects a pid, got: :a"
      assert partition =~ "[:a] in both groups"
    end

    test "the trace shows node starts and processes' nodes" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Cluster.start_nodes([:a])
                   Cluster.spawn(:a, fn -> Lockstep.yield() end)
                   Lockstep.sleep(10)
                   raise "stop here"
                 end,
                 iterations: 1,
                 seed: 3,
                 trace_dir: tmp_dir!()
               )

      events = events(bug.trace)
      assert {:node_started, "P", :a} in events
      assert {:spawn, "P", "P.1"} in events
      assert {:yield, "P.1"} in events
      # The report names processes with their node (P.1 did nothing the failure depends
      # on, so only the whole trace shows it).
      assert Lockstep.Report.format(bug, slice: false, colour: false) =~ "P.1@a"
    end
  end

  describe "partitions" do
    test ":drop loses cross-partition messages; same-side and post-heal messages arrive" do
      dir = tmp_dir!()
      test = self()

      body = fn ->
        Cluster.start_nodes([:a, :b])
        me = self()

        receiver =
          Cluster.spawn(:b, fn ->
            got =
              for _ <- 1..2 do
                Lockstep.receive do
                  msg -> msg
                after
                  1_000 -> :timeout
                end
              end

            Lockstep.send(me, {:receiver_got, got})
          end)

        Cluster.partition([:a], [:b])

        # From :a: cut. From :b itself (same side): delivered.
        Cluster.spawn(:a, fn -> Lockstep.send(receiver, :across_the_cut) end)
        Cluster.spawn(:b, fn -> Lockstep.send(receiver, :same_side) end)
        Lockstep.sleep(500)
        Cluster.heal()
        Cluster.spawn(:a, fn -> Lockstep.send(receiver, :after_heal) end)
        {:receiver_got, got} = Lockstep.recv()
        Lockstep.send(test, {:got, got})
        raise "show the trace"
      end

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(body, iterations: 1, seed: 11, trace_dir: dir)

      assert {:error, %RuntimeError{message: "show the trace"}, _} = bug.reason
      assert_received {:got, [:same_side, :after_heal]}

      events = events(bug.trace)
      assert {:partitioned, "P", [:a], [:b], :drop} in events
      assert {:cut, "P.2", "P.1", :across_the_cut} in events
      refute Enum.any?(events, &match?({:receive, "P.1", _, :across_the_cut}, &1))
      assert {:receive, "P.1", "P.3", :same_side} in events
      assert {:receive, "P.1", "P.4", :after_heal} in events
      assert Exception.message(bug) =~ ":across_the_cut"
    end

    test ":drop loses them in every schedule" do
      values =
        results(
          fn ->
            Cluster.start_nodes([:a, :b])
            me = self()

            receiver =
              Cluster.spawn(:b, fn ->
                Lockstep.receive do
                  msg -> Lockstep.send(me, {:got, msg})
                after
                  1_000 -> Lockstep.send(me, :nothing)
                end
              end)

            Cluster.partition([:a], [:b], :drop)
            Cluster.spawn(:a, fn -> Lockstep.send(receiver, :hello) end)
            Lockstep.recv()
          end,
          iterations: 100,
          seed: 12
        )

      assert Enum.uniq(values) == [:nothing]
    end

    test ":defer delivers them in send order when heal runs, before it returns" do
      values =
        results(
          fn ->
            Cluster.start_nodes([:a])
            me = self()
            Cluster.partition([@home], [:a], :defer)

            Cluster.spawn(:a, fn ->
              for n <- 1..5, do: Lockstep.send(me, n)
            end)

            # Past everything :a can do; the messages wait at the cut.
            Lockstep.sleep(100)

            before =
              Lockstep.receive do
                n -> {:early, n}
              after
                0 -> :none
              end

            :ok = Cluster.heal()

            got =
              for _ <- 1..5 do
                Lockstep.receive do
                  n -> n
                after
                  0 -> :not_yet_delivered
                end
              end

            {before, got}
          end,
          iterations: 100,
          seed: 13
        )

      assert Enum.uniq(values) == [{:none, [1, 2, 3, 4, 5]}]
    end

    test ":defer shows deferrals and the heal in the trace" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Cluster.start_nodes([:a, :b])
                   me = self()

                   receiver =
                     Cluster.spawn(:b, fn ->
                       got = for _ <- 1..3, do: Lockstep.recv()
                       Lockstep.send(me, {:got, got})
                     end)

                   Cluster.partition([:a], [:b], :defer)

                   Cluster.spawn(:a, fn ->
                     for n <- 1..3, do: Lockstep.send(receiver, n)
                   end)

                   Lockstep.sleep(100)
                   Cluster.heal()
                   {:got, got} = Lockstep.recv()
                   raise "got #{inspect(got)}"
                 end,
                 iterations: 1,
                 seed: 14,
                 trace_dir: tmp_dir!()
               )

      assert {:error, %RuntimeError{message: "got [1, 2, 3]"}, _} = bug.reason
      events = events(bug.trace)
      assert {:partitioned, "P", [:a], [:b], :deferred} in events

      deferred = for {:deferred, "P.2", "P.1", n} <- events, do: n
      assert deferred == [1, 2, 3]
      assert {:healed, "P", 3} in events
      healed = Enum.find_index(events, &(&1 == {:healed, "P", 3}))
      delivered = for {{:deliver, "P.2", "P.1", n}, i} <- Enum.with_index(events), do: {n, i}
      assert Enum.map(delivered, &elem(&1, 0)) == [1, 2, 3]
      assert Enum.all?(delivered, fn {_, i} -> i > healed end)
    end

    test "several partitions at once: :drop and :defer cuts apply to their own pairs" do
      value =
        result(
          fn ->
            Cluster.start_nodes([:a, :b, :c])
            me = self()

            relay = fn ->
              Lockstep.receive do
                msg -> Lockstep.send(me, {Lockstep.node(), msg})
              after
                1_000 -> Lockstep.send(me, {Lockstep.node(), :nothing})
              end
            end

            b = Cluster.spawn(:b, relay)
            c = Cluster.spawn(:c, relay)
            Cluster.partition([:a], [:b], :defer)
            Cluster.partition([:a], [:c], :drop)

            Cluster.spawn(:a, fn ->
              Lockstep.send(b, :to_b)
              Lockstep.send(c, :to_c)
            end)

            Lockstep.sleep(10)
            Cluster.heal()
            got = [Lockstep.recv(), Lockstep.recv()]
            Enum.sort(got)
          end,
          iterations: 50,
          seed: 15
        )

      assert value == [b: :to_b, c: :nothing]
    end

    for timers <- [:on_idle, :anytime] do
      test "monitors, links and node monitors across a cut fire only after the tick time (timers: #{timers})" do
        value =
          result(
            fn ->
              Cluster.start_nodes([:a])
              :ok = Cluster.set_ticktime(1_000)
              me = self()
              Lockstep.flag(:trap_exit, true)

              remote =
                Cluster.spawn(:a, fn ->
                  Lockstep.flag(:trap_exit, true)
                  ref = Lockstep.monitor(me)
                  true = Cluster.monitor_node(@home)
                  Lockstep.send(me, :ready)

                  seen =
                    for _ <- 1..3 do
                      Lockstep.receive do
                        {:DOWN, ^ref, :process, ^me, reason} -> {:down, reason, Lockstep.now()}
                        {:nodedown, node} -> {:nodedown, node, Lockstep.now()}
                        {:EXIT, ^me, reason} -> {:exit, reason, Lockstep.now()}
                      end
                    end

                  Lockstep.receive do
                    :report -> Lockstep.send(me, {:remote_saw, Enum.sort(seen)})
                  end
                end)

              :ready = Lockstep.recv()
              true = Lockstep.link(remote)
              ref = Lockstep.monitor(remote)
              true = Cluster.monitor_node(:a)
              Lockstep.sleep(200)
              Cluster.partition([@home], [:a])

              seen =
                for _ <- 1..3 do
                  Lockstep.receive do
                    {:DOWN, ^ref, :process, ^remote, reason} -> {:down, reason, Lockstep.now()}
                    {:nodedown, node} -> {:nodedown, node, Lockstep.now()}
                    {:EXIT, ^remote, reason} -> {:exit, reason, Lockstep.now()}
                  end
                end

              Cluster.heal()
              Lockstep.send(remote, :report)
              {:remote_saw, remote_saw} = Lockstep.recv()
              {Enum.sort(seen), remote_saw}
            end,
            timers: unquote(timers),
            iterations: 50,
            seed: 16
          )

        # Cut at 200 ms, ticktime 1000 ms: everything fires at 1200 ms, on both sides.
        assert value ==
                 {[
                    {:down, :noconnection, 1_200},
                    {:exit, :noconnection, 1_200},
                    {:nodedown, :a, 1_200}
                  ],
                  [
                    {:down, :noconnection, 1_200},
                    {:exit, :noconnection, 1_200},
                    {:nodedown, @home, 1_200}
                  ]}
      end
    end

    test "the trace shows :noconnection only after the tick" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Cluster.start_nodes([:a])
                   Cluster.set_ticktime(1_000)
                   remote = Cluster.spawn(:a, &block_forever/0)
                   ref = Lockstep.monitor(remote)
                   Cluster.partition([@home], [:a])
                   Lockstep.receive(do: ({:DOWN, ^ref, :process, ^remote, _} -> :ok))
                   raise "down at #{Lockstep.now()}"
                 end,
                 iterations: 1,
                 seed: 19,
                 trace_dir: tmp_dir!()
               )

      assert {:error, %RuntimeError{message: "down at 1000"}, _} = bug.reason
      events = events(bug.trace)
      assert {:set_ticktime, "P", 1_000} in events
      partitioned = Enum.find_index(events, &match?({:partitioned, "P", _, _, :drop}, &1))
      fired = Enum.find_index(events, &(&1 == {:timer_fired, "P", 1_000}))
      tick = Enum.find_index(events, &match?({:tick, "P", _}, &1))
      down = Enum.find_index(events, &(&1 == {:down, "P", "P.1", :noconnection}))
      assert partitioned < fired and fired < tick and tick < down
    end

    test "set_ticktime beyond 64 bits names the range; 2^64 - 1 is accepted" do
      test_pid = self()

      Lockstep.run(
        fn ->
          error = catch_error(Cluster.set_ticktime(2 ** 64))
          Lockstep.send(test_pid, {:result, error, Cluster.set_ticktime(2 ** 64 - 1)})
        end,
        iterations: 1,
        seed: 1
      )

      assert_received {:result, %ArgumentError{message: message}, :ok}
      assert message =~ "set_ticktime/1"
      assert message =~ "18446744073709551616"
      assert message =~ "1..18446744073709551615"
    end

    test "a partition healed before the tick time fires nothing" do
      value =
        result(
          fn ->
            Cluster.start_nodes([:a])
            Cluster.set_ticktime(1_000)
            remote = Cluster.spawn(:a, &block_forever/0)
            ref = Lockstep.monitor(remote)
            Cluster.monitor_node(:a)
            Cluster.partition([@home], [:a])
            Lockstep.sleep(900)
            Cluster.heal()

            Lockstep.receive do
              {:DOWN, ^ref, _, _, reason} -> {:down, reason}
              {:nodedown, node} -> {:nodedown, node}
            after
              5_000 -> {:quiet, Lockstep.alive?(remote)}
            end
          end,
          iterations: 30,
          seed: 17
        )

      assert value == {:quiet, true}
    end

    test "the default ticktime is 15 000 ms" do
      value =
        result(
          fn ->
            Cluster.start_nodes([:a])
            remote = Cluster.spawn(:a, &block_forever/0)
            ref = Lockstep.monitor(remote)
            Cluster.partition([@home], [:a])
            Lockstep.receive(do: ({:DOWN, ^ref, :process, ^remote, r} -> {r, Lockstep.now()}))
          end,
          iterations: 10,
          seed: 18
        )

      assert value == {:noconnection, 15_000}
    end
  end

  describe "node failures" do
    test "a restarted node is fresh: no names, tables or persistent terms of before" do
      value =
        result(
          fn ->
            Cluster.start_nodes([:a])
            me = self()

            Cluster.spawn(:a, fn ->
              Lockstep.register(:svc, self())
              Lockstep.ETS.new(:tab, [:named_table, :public])
              Lockstep.PersistentTerm.put(:k, :before)
              Lockstep.send(me, :stored)
              Lockstep.recv()
            end)

            :stored = Lockstep.recv()
            Lockstep.PersistentTerm.put(:k, :home)
            :ok = Cluster.stop_node(:a)
            :ok = Cluster.start_node(:a)

            Cluster.spawn(:a, fn ->
              Lockstep.send(
                me,
                {Lockstep.whereis(:svc), Lockstep.ETS.whereis(:tab),
                 Lockstep.PersistentTerm.get(:k, :none), Lockstep.PersistentTerm.get()}
              )
            end)

            {Lockstep.recv(), Lockstep.PersistentTerm.get(:k)}
          end,
          iterations: 10,
          seed: 5
        )

      assert value == {{nil, :undefined, :none, []}, :home}
    end

    test "stop_node kills the node's processes and fires :nodedown and :noconnection" do
      values =
        results(
          fn ->
            Cluster.start_nodes([:a, :b])
            me = self()
            w1 = Cluster.spawn(:a, &block_forever/0)

            w2 =
              Cluster.spawn(:a, fn ->
                true = Lockstep.register(:svc, self())
                :yes = Global.register_name(:global_svc, self())
                Lockstep.send(me, :registered)
                block_forever()
              end)

            :registered = Lockstep.recv()

            # A watcher on :b: node monitor, and a trapped link to a process on :a.
            Cluster.spawn(:b, fn ->
              Cluster.monitor_node(:a)
              Lockstep.flag(:trap_exit, true)
              Lockstep.link(w1)
              Lockstep.send(me, :watching)
              got = Enum.sort([Lockstep.recv(), Lockstep.recv()])
              Lockstep.send(me, {:watcher_got, got})
            end)

            :watching = Lockstep.recv()
            ref = Lockstep.monitor(w2)
            Cluster.monitor_node(:a)
            :ok = Cluster.stop_node(:a)

            down = Lockstep.receive(do: ({:DOWN, ^ref, :process, ^w2, r} -> r))
            nodedown = Lockstep.receive(do: ({:nodedown, n} -> n))
            {:watcher_got, watcher_got} = await(&match?({:watcher_got, _}, &1))

            # A node monitor set up after the node is down fires at once.
            Cluster.monitor_node(:a)
            again = Lockstep.receive(do: ({:nodedown, n} -> n))

            %{
              down: down,
              nodedown: nodedown,
              again: again,
              watcher: {watcher_got, w1},
              alive: {Lockstep.alive?(w1), Lockstep.alive?(w2)},
              nodes_up: Cluster.nodes_up(),
              global: Global.whereis_name(:global_svc)
            }
          end,
          iterations: 50,
          seed: 21
        )

      for value <- values do
        # The watcher on :b saw the node go down and its linked peer on :a die.
        assert {[{:nodedown, :a}, {:EXIT, w1, :noconnection}], w1} = value.watcher

        assert Map.delete(value, :watcher) == %{
                 down: :noconnection,
                 nodedown: :a,
                 again: :a,
                 alive: {false, false},
                 nodes_up: [:b],
                 global: :undefined
               }
      end
    end

    test "the trace shows the node stopping and its processes dying with it" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Cluster.start_nodes([:a])
                   w = Cluster.spawn(:a, &block_forever/0)
                   ref = Lockstep.monitor(w)
                   Cluster.stop_node(:a)
                   Lockstep.receive(do: ({:DOWN, ^ref, _, _, _} -> :ok))
                   raise "stop here"
                 end,
                 iterations: 1,
                 seed: 22,
                 trace_dir: tmp_dir!()
               )

      events = events(bug.trace)
      assert {:node_stopped, "P", :a} in events
      assert {:exit, "P.1", :node_stopped} in events
      assert {:down, "P", "P.1", :noconnection} in events
    end

    test "the home node cannot be stopped" do
      value =
        result(
          fn ->
            try do
              Cluster.stop_node(@home)
            rescue
              e in ArgumentError -> {:raised, e.message =~ "home node"}
            end
          end,
          iterations: 3,
          seed: 23
        )

      assert value == {:raised, true}
    end

    test "start_node brings a stopped node back with fresh state (no names)" do
      value =
        result(
          fn ->
            Cluster.start_nodes([:a])
            me = self()

            old =
              Cluster.spawn(:a, fn ->
                Lockstep.register(:svc, self())
                Lockstep.send(me, :registered)
                block_forever()
              end)

            :registered = Lockstep.recv()
            :ok = Cluster.stop_node(:a)
            down_up = Cluster.nodes_up()
            :ok = Cluster.start_node(:a)
            up_again = Cluster.nodes_up()

            Cluster.spawn(:a, fn ->
              fresh = {Lockstep.whereis(:svc), Lockstep.registered()}
              true = Lockstep.register(:svc, self())
              Lockstep.send(me, {:fresh, fresh, Lockstep.whereis(:svc) == self()})
            end)

            {:fresh, fresh, reregistered} = Lockstep.recv()
            {down_up, up_again, fresh, reregistered, Lockstep.alive?(old)}
          end,
          iterations: 30,
          seed: 24
        )

      assert value == {[], [:a], {nil, []}, true, false}
    end
  end

  describe "names" do
    test "names are per node and {name, node} routes to the right node" do
      value =
        result(
          fn ->
            Cluster.start_nodes([:a, :b])
            me = self()

            for node <- [:a, :b] do
              Cluster.spawn(node, fn ->
                true = Lockstep.register(:svc, self())
                Lockstep.send(me, {:up, node})

                Lockstep.receive do
                  {:who, from} ->
                    Lockstep.send(
                      from,
                      {:me, Lockstep.node(), Lockstep.whereis(:svc) == self(),
                       Lockstep.registered()}
                    )
                end
              end)
            end

            _ = await(&match?({:up, :a}, &1))
            _ = await(&match?({:up, :b}, &1))
            Lockstep.send({:svc, :b}, {:who, me})
            Lockstep.send({:svc, :a}, {:who, me})
            from_b = await(&match?({:me, :b, _, _}, &1))
            from_a = await(&match?({:me, :a, _, _}, &1))
            # The root's node has no :svc.
            {from_a, from_b, Lockstep.whereis(:svc), Lockstep.registered()}
          end,
          iterations: 50,
          seed: 31
        )

      assert value == {{:me, :a, true, [:svc]}, {:me, :b, true, [:svc]}, nil, []}
    end

    test "{name, node} sends honour partitions" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Cluster.start_nodes([:a])
                   me = self()

                   Cluster.spawn(:a, fn ->
                     Lockstep.register(:svc, self())
                     Lockstep.send(me, :registered)

                     Lockstep.receive do
                       msg -> Lockstep.send(me, {:svc_got, msg})
                     after
                       1_000 -> Lockstep.send(me, :svc_got_nothing)
                     end
                   end)

                   :registered = Lockstep.recv()
                   Cluster.partition([@home], [:a], :drop)
                   Lockstep.send({:svc, :a}, :lost)
                   Cluster.heal()
                   raise "got #{inspect(Lockstep.recv())}"
                 end,
                 iterations: 1,
                 seed: 32,
                 trace_dir: tmp_dir!()
               )

      assert {:error, %RuntimeError{message: "got :svc_got_nothing"}, _} = bug.reason
      assert {:cut, "P", "P.1", :lost} in events(bug.trace)
    end

    test "sending to {name, node} with no such name is silently dropped, like Kernel.send/2" do
      # OTP: `send({name, node}, msg)` never raises, for a remote or the local node;
      # only a bare unregistered atom raises (see :erlang.send/2).
      value =
        result(
          fn ->
            Cluster.start_nodes([:a])

            for dest <- [{:nobody, :a}, {:nobody, @home}] do
              try do
                Lockstep.send(dest, :hello)
              rescue
                e in ArgumentError -> {:raised, e.message}
              end
            end
          end,
          iterations: 3,
          seed: 33
        )

      assert value == [:hello, :hello]
    end
  end

  describe "Lockstep.Global" do
    test "of two racing nodes exactly one wins, in every iteration" do
      values =
        results(
          fn ->
            Cluster.start_nodes([:a, :b])
            me = self()

            for node <- [:a, :b] do
              Cluster.spawn(node, fn ->
                answer = Global.register_name(:leader, self())
                Lockstep.send(me, {node, answer, self()})
                block_forever()
              end)
            end

            answers = Enum.sort([Lockstep.recv(), Lockstep.recv()])
            [{:a, a, pid_a}, {:b, b, pid_b}] = answers
            holder = Global.whereis_name(:leader)
            winner = if a == :yes, do: :a, else: :b
            expected_holder = if a == :yes, do: pid_a, else: pid_b
            {Enum.sort([a, b]), winner, holder == expected_holder, Global.registered_names()}
          end,
          iterations: 200,
          seed: 41
        )

      assert Enum.all?(values, &match?({[:no, :yes], _, true, [:leader]}, &1))
      # Each node wins in some schedules.
      assert values |> Enum.map(&elem(&1, 1)) |> Enum.uniq() |> Enum.sort() == [:a, :b]
    end

    test "the race shows in the trace as one :yes and one :no" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Cluster.start_nodes([:a, :b])

                   for node <- [:a, :b] do
                     Cluster.spawn(node, fn ->
                       Global.register_name(:leader, self())
                       block_forever()
                     end)
                   end

                   Lockstep.sleep(10)
                   raise "stop here"
                 end,
                 iterations: 1,
                 seed: 42,
                 trace_dir: tmp_dir!()
               )

      registrations = for {:global_register, p, :leader, p, ok} <- events(bug.trace), do: ok
      assert Enum.sort(registrations) == [false, true]
    end

    test "register_name of an exited pid says :yes and the name is free at once, as OTP 25" do
      value =
        result(
          fn ->
            dead = Lockstep.spawn(fn -> :ok end)
            ref = Lockstep.monitor(dead)
            Lockstep.receive(do: ({:DOWN, ^ref, :process, ^dead, _} -> :ok))
            said = Global.register_name(:svc, dead)
            {said, Global.whereis_name(:svc), Global.register_name(:svc, self())}
          end,
          iterations: 5,
          seed: 4
        )

      assert value == {:yes, :undefined, :yes}
    end

    test "names are cleared when the owner dies; unregister_name, send/2" do
      value =
        result(
          fn ->
            Cluster.start_nodes([:a])
            me = self()

            owner =
              Cluster.spawn(:a, fn ->
                :yes = Global.register_name(:svc, self())
                :no = Global.register_name(:svc, self())
                # OTP 25 (global:check_dupname/2): a pid gets one global name.
                :no = Global.register_name(:other, self())
                :yes = Global.register_name(:other, me)
                Lockstep.send(me, :registered)

                Lockstep.receive do
                  {:ping, from} -> Lockstep.send(from, :pong)
                end

                Lockstep.receive do
                  :stop -> :ok
                end
              end)

            :registered = Lockstep.recv()
            names = Enum.sort(Global.registered_names())
            ^owner = Global.send(:svc, {:ping, me})
            :pong = Lockstep.recv()
            :ok = Global.unregister_name(:other)
            after_unregister = Global.registered_names()
            ref = Lockstep.monitor(owner)
            Lockstep.send(owner, :stop)
            Lockstep.receive(do: ({:DOWN, ^ref, :process, ^owner, :normal} -> :ok))

            missing =
              try do
                Global.send(:svc, :hi)
              catch
                :exit, reason -> {:exit, reason}
              end

            {names, after_unregister, Global.whereis_name(:svc), Global.registered_names(),
             missing}
          end,
          iterations: 30,
          seed: 43
        )

      assert value ==
               {[:other, :svc], [:svc], :undefined, [], {:exit, {:badarg, {:svc, :hi}}}}
    end
  end

  describe "cross-node delivery" do
    # P.1 sends :first to the root, then tells P.2, which sends :second. On one node with
    # :instant delivery :first is in the root's mailbox before P.2 even runs; across
    # nodes both messages are in flight and can be delivered in either order.
    defp causal_pair(nodes) do
      fn ->
        [node1, node2] = nodes
        Cluster.start_nodes(Enum.uniq(nodes -- [@home]))
        me = self()

        second =
          Lockstep.spawn(
            fn ->
              Lockstep.receive(do: (:go -> Lockstep.send(me, :second)))
            end,
            node: node2
          )

        Lockstep.spawn(
          fn ->
            Lockstep.send(me, :first)
            Lockstep.send(second, :go)
          end,
          node: node1
        )

        got = [Lockstep.recv(), Lockstep.recv()]
        if got != [:first, :second], do: raise("reordered: #{inspect(got)}")
        :ok
      end
    end

    test "on one node with delivery: :instant the order is fixed (300 iterations)" do
      summary = Lockstep.run(causal_pair([@home, @home]), iterations: 300, seed: 51)
      assert summary.iterations == 300
    end

    test "cross-node reorderings between two senders are found even with delivery: :instant" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(causal_pair([:a, :b]),
                 delivery: :instant,
                 iterations: 300,
                 seed: 51,
                 trace_dir: tmp_dir!()
               )

      assert bug.kind == :exception
      assert {:error, %RuntimeError{message: "reordered: [:second, :first]"}, _} = bug.reason

      events = events(bug.trace)
      assert {:send, "P.2", "P", :first, :in_flight} in events
      assert {:send, "P.1", "P", :second, :in_flight} in events
      first = Enum.find_index(events, &(&1 == {:deliver, "P.2", "P", :first}))
      second = Enum.find_index(events, &(&1 == {:deliver, "P.1", "P", :second}))
      assert second < first
      assert Enum.any?(bug.schedule, &match?({:deliver, "P.1", "P"}, &1))
    end

    test "messages from one sender to one receiver across nodes keep their order" do
      values =
        results(
          fn ->
            Cluster.start_nodes([:a])
            me = self()
            Cluster.spawn(:a, fn -> for n <- 1..5, do: Lockstep.send(me, n) end)
            for _ <- 1..5, do: Lockstep.recv()
          end,
          iterations: 100,
          seed: 52
        )

      assert Enum.uniq(values) == [[1, 2, 3, 4, 5]]
    end
  end

  # The virtual clock after a prefix of events: the last time a timer fired.
  defp last_clock(events) do
    Enum.reduce(events, 0, fn
      {:timer_fired, _, now}, _ -> now
      _, now -> now
    end)
  end

  describe "a naive failover (the guide's example)" do
    test "is caught electing two leaders under a partition" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(Failover.test_body(:naive),
                 iterations: 300,
                 seed: 61,
                 trace_dir: tmp_dir!()
               )

      assert bug.kind == :exception
      assert bug.process == "P"
      assert {:error, %ExUnit.AssertionError{message: "two leaders: " <> _}, _} = bug.reason

      events = events(bug.trace)
      assert {:partitioned, "P", [:a], [:b], :drop} in events
      # Heartbeats from the primary (P.2 on :a) to the standby (P.1 on :b) were lost...
      assert Enum.any?(events, &match?({:cut, "P.2", "P.1", {:heartbeat, _, _}}, &1))
      # ...so the standby's receive timed out and it took over.
      assert {:receive_timeout, "P.1"} in events
      assert Enum.any?(events, &match?({:send, "P.1", "P", {:acting, :b, _}, _}, &1))
    end

    test "without the partition it passes (heartbeats always arrive before the timeout)" do
      summary =
        Lockstep.run(Failover.test_body(:naive, partition: false), iterations: 200, seed: 62)

      assert summary.iterations == 200
    end

    test "with heartbeat delays (timers: :anytime) it fails even without a partition" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(Failover.test_body(:naive, partition: false),
                 timers: :anytime,
                 iterations: 300,
                 seed: 63,
                 trace_dir: tmp_dir!()
               )

      assert {:error, %ExUnit.AssertionError{message: "two leaders: " <> _}, _} = bug.reason
      refute Enum.any?(events(bug.trace), &match?({:partitioned, _, _, _, _}, &1))
    end

    test "a standby failing over on {:nodedown, node} splits the brain once net_ticktime passes" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(Failover.test_body(:nodedown),
                 iterations: 300,
                 seed: 65,
                 trace_dir: tmp_dir!()
               )

      assert {:error, %ExUnit.AssertionError{message: "two leaders: " <> _}, _} = bug.reason
      events = events(bug.trace)
      assert {:set_ticktime, "P", 200} in events
      assert {:monitor_node, "P.1", :a} in events
      assert {:nodedown, "P.1", :a} in events

      # The standby heard of the cut only net_ticktime (200 ms) after it.
      [cut_at] = for {{:partitioned, "P", _, _, _}, i} <- Enum.with_index(events), do: i
      [nodedown_at] = for {{:nodedown, "P.1", :a}, i} <- Enum.with_index(events), do: i
      clock_at = fn i -> events |> Enum.take(i + 1) |> last_clock() end
      assert clock_at.(nodedown_at) - clock_at.(cut_at) == 200
    end

    for timers <- [:on_idle, :anytime] do
      test "the lease-based fix keeps one leader and still fails over (timers: #{timers})" do
        values =
          results(Failover.test_body(:lease),
            timers: unquote(timers),
            iterations: 300,
            seed: 64
          )

        for {a, b} <- values do
          # Safety: the primary never acts once the standby has taken over.
          assert a == [] or b == [] or Enum.max(a) < Enum.min(b)

          # Liveness: with prompt delivery the standby takes over during the partition.
          # (With :anytime a heartbeat may be delayed past the end of the run.)
          if unquote(timers) == :on_idle do
            assert a != [] and b != [], "both nodes should lead at some point: #{inspect({a, b})}"
          end
        end
      end
    end
  end
end
