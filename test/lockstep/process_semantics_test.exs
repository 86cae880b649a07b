defmodule Lockstep.ProcessSemanticsTest do
  # Links, exit signals, monitors and registered names inside a controlled run: they must
  # behave as on the real BEAM (SPEC §2), with Lockstep choosing every interleaving.
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.BugFound
  import Lockstep.TestSupport

  # Runs `fun` as the root of every iteration; the root's return value is sent to the test
  # process (a plain send: the test process is outside the run). Returns the values, one
  # per iteration, in order.
  defp results(fun, opts) do
    test = self()
    summary = Lockstep.run(fn -> Lockstep.send(test, {:root_result, fun.()}) end, opts)
    values = collect(:root_result)
    assert length(values) == summary.iterations
    values
  end

  defp collect(tag) do
    receive do
      {^tag, value} -> [value | collect(tag)]
    after
      0 -> []
    end
  end

  # The one value every iteration returned.
  defp result(fun, opts) do
    assert [value] = fun |> results(opts) |> Enum.uniq()
    value
  end

  defp block_forever do
    Lockstep.receive do
      :never_sent -> :ok
    end
  end

  describe "links" do
    test "a linked crash kills a non-trapping root (kind :exception with the signal's reason)" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Lockstep.spawn_link(fn -> exit(:child_boom) end)
                   block_forever()
                 end,
                 crash: :ignore,
                 iterations: 10,
                 seed: 11,
                 trace_dir: tmp_dir!()
               )

      assert bug.kind == :exception
      assert bug.process == "P"
      assert bug.iteration == 1
      assert {:exit, :child_boom, _stack} = bug.reason

      events = events(bug.trace)
      assert {:spawn_link, "P", "P.1"} in events
      assert {:exit_signal, "P.1", "P", :child_boom} in events
      assert Enum.any?(events, &match?({:exit, "P.1", {:exit, :child_boom, _}}, &1))
      # The root never returned: it was killed by the signal.
      refute Enum.any?(events, &match?({:exit, "P", _}, &1))
      # The failing step is the signal's.
      at_fail = for {step, e} <- bug.trace, step == bug.fail_step, do: e
      assert {:exit_signal, "P.1", "P", :child_boom} in at_fail
    end

    test "a linked crash kills a non-trapping parent, observed by a third process's monitor" do
      reason =
        result(
          fn ->
            me = self()

            parent =
              Lockstep.spawn(fn ->
                child =
                  Lockstep.spawn_link(fn ->
                    Lockstep.receive do
                      :go -> exit(:child_boom)
                    end
                  end)

                Lockstep.send(me, {:child, child})
                block_forever()
              end)

            ref = Lockstep.monitor(parent)
            child = Lockstep.receive(do: ({:child, c} -> c))
            Lockstep.send(child, :go)

            Lockstep.receive do
              {:DOWN, ^ref, :process, ^parent, reason} ->
                {reason, Lockstep.alive?(parent), Lockstep.alive?(child)}
            end
          end,
          crash: :ignore,
          iterations: 50,
          seed: 12
        )

      assert reason == {:child_boom, false, false}
    end

    test "a linked crash reaches a trapping parent as {:EXIT, pid, reason}" do
      values =
        results(
          fn ->
            false = Lockstep.flag(:trap_exit, true)
            true = Lockstep.flag(:trap_exit, true)
            child = Lockstep.spawn_link(fn -> exit(:child_boom) end)

            Lockstep.receive do
              {:EXIT, ^child, reason} -> {:trapped, reason, Lockstep.alive?(child)}
            end
          end,
          crash: :ignore,
          iterations: 50,
          seed: 13
        )

      assert Enum.uniq(values) == [{:trapped, :child_boom, false}]
    end

    test "a linked child raising reaches a trapping parent with OTP's {exception, stacktrace}" do
      reason =
        result(
          fn ->
            Lockstep.flag(:trap_exit, true)
            child = Lockstep.spawn_link(fn -> raise "child raise" end)

            Lockstep.receive do
              {:EXIT, ^child, reason} -> reason
            end
          end,
          crash: :ignore,
          iterations: 10,
          seed: 14
        )

      assert {%RuntimeError{message: "child raise"}, [_ | _]} = reason
    end

    test "a normal exit of a linked process does not kill a non-trapping parent" do
      value =
        result(
          fn ->
            child = Lockstep.spawn_link(fn -> Lockstep.receive(do: (:go -> :ok)) end)
            ref = Lockstep.monitor(child)
            Lockstep.send(child, :go)

            Lockstep.receive do
              {:DOWN, ^ref, :process, ^child, :normal} -> :ok
            end

            Lockstep.sleep(10)
            :survived
          end,
          iterations: 30,
          seed: 15
        )

      assert value == :survived
    end

    test "exit signals propagate through a chain of links" do
      value =
        result(
          fn ->
            me = self()
            Lockstep.flag(:trap_exit, true)

            a =
              Lockstep.spawn_link(fn ->
                Lockstep.spawn_link(fn ->
                  Lockstep.send(me, {:b, self()})

                  Lockstep.spawn_link(fn ->
                    Lockstep.send(me, {:c, self()})

                    Lockstep.receive do
                      :go -> exit(:chain_boom)
                    end
                  end)

                  block_forever()
                end)

                block_forever()
              end)

            b = Lockstep.receive(do: ({:b, b} -> b))
            c = Lockstep.receive(do: ({:c, c} -> c))
            ref_b = Lockstep.monitor(b)
            ref_c = Lockstep.monitor(c)
            Lockstep.send(c, :go)

            down_c = Lockstep.receive(do: ({:DOWN, ^ref_c, :process, ^c, r} -> r))
            down_b = Lockstep.receive(do: ({:DOWN, ^ref_b, :process, ^b, r} -> r))
            exit_a = Lockstep.receive(do: ({:EXIT, ^a, r} -> r))
            {down_c, down_b, exit_a, Enum.map([a, b, c], &Lockstep.alive?/1)}
          end,
          crash: :ignore,
          iterations: 50,
          seed: 16
        )

      assert value == {:chain_boom, :chain_boom, :chain_boom, [false, false, false]}
    end

    test "unlink stops propagation" do
      value =
        result(
          fn ->
            child =
              Lockstep.spawn_link(fn ->
                Lockstep.receive do
                  :go -> exit(:boom)
                end
              end)

            true = Lockstep.unlink(child)
            ref = Lockstep.monitor(child)
            Lockstep.send(child, :go)
            Lockstep.receive(do: ({:DOWN, ^ref, :process, ^child, r} -> r))
          end,
          crash: :ignore,
          iterations: 30,
          seed: 17
        )

      assert value == :boom
    end

    test "link/1 links an existing process; its crash reaches the trapping linker" do
      value =
        result(
          fn ->
            me = self()

            b =
              Lockstep.spawn(fn ->
                Lockstep.receive do
                  :go -> exit(:b_boom)
                end
              end)

            a =
              Lockstep.spawn(fn ->
                Lockstep.flag(:trap_exit, true)
                true = Lockstep.link(b)
                Lockstep.send(me, :linked)

                Lockstep.receive do
                  {:EXIT, from, reason} -> Lockstep.send(me, {:a_saw, from, reason})
                end
              end)

            :linked = Lockstep.recv()
            Lockstep.send(b, :go)
            {:a_saw, from, reason} = Lockstep.recv()
            {from == b, reason, is_pid(a)}
          end,
          crash: :ignore,
          iterations: 30,
          seed: 18
        )

      assert value == {true, :b_boom, true}
    end
  end

  describe "exit/2" do
    test ":kill cannot be trapped: the target dies with :killed" do
      values =
        results(
          fn ->
            me = self()

            target =
              Lockstep.spawn(fn ->
                Lockstep.flag(:trap_exit, true)
                Lockstep.send(me, :trapping)

                Lockstep.receive do
                  msg -> Lockstep.send(me, {:target_got, msg})
                end
              end)

            ref = Lockstep.monitor(target)
            :trapping = Lockstep.recv()
            true = Lockstep.exit(target, :kill)

            reason =
              Lockstep.receive do
                {:DOWN, ^ref, :process, ^target, reason} -> reason
              end

            Lockstep.sleep(5)

            leftover =
              Lockstep.receive do
                {:target_got, msg} -> msg
              after
                0 -> :nothing
              end

            {reason, Lockstep.alive?(target), leftover}
          end,
          iterations: 50,
          seed: 21
        )

      assert Enum.uniq(values) == [{:killed, false, :nothing}]
    end

    test "a process linked to a killed one gets :killed, not :kill" do
      value =
        result(
          fn ->
            Lockstep.flag(:trap_exit, true)
            target = Lockstep.spawn_link(&block_forever/0)
            Lockstep.exit(target, :kill)
            Lockstep.receive(do: ({:EXIT, ^target, r} -> r))
          end,
          iterations: 20,
          seed: 22
        )

      assert value == :killed
    end

    test ":normal is ignored by a non-trapping target" do
      value =
        result(
          fn ->
            me = self()

            target =
              Lockstep.spawn(fn ->
                Lockstep.receive do
                  :stop -> Lockstep.send(me, :target_stopping)
                end
              end)

            ref = Lockstep.monitor(target)
            true = Lockstep.exit(target, :normal)
            Lockstep.sleep(10)
            alive_after_signal = Lockstep.alive?(target)
            Lockstep.send(target, :stop)
            :target_stopping = Lockstep.recv_first(&(&1 == :target_stopping))
            down = Lockstep.receive(do: ({:DOWN, ^ref, :process, ^target, r} -> r))
            {alive_after_signal, down}
          end,
          iterations: 50,
          seed: 23
        )

      assert value == {true, :normal}
    end

    test ":normal is delivered as {:EXIT, from, :normal} to a trapping target" do
      value =
        result(
          fn ->
            me = self()

            target =
              Lockstep.spawn(fn ->
                Lockstep.flag(:trap_exit, true)
                Lockstep.send(me, :trapping)

                Lockstep.receive do
                  {:EXIT, from, reason} -> Lockstep.send(me, {:trapped, from == me, reason})
                end
              end)

            :trapping = Lockstep.recv()
            Lockstep.exit(target, :normal)
            Lockstep.recv()
          end,
          iterations: 50,
          seed: 24
        )

      assert value == {:trapped, true, :normal}
    end

    test "a message and an exit signal from the same sender arrive in order (delivery: :delayed)" do
      values =
        results(
          fn ->
            me = self()

            target =
              Lockstep.spawn(fn ->
                Lockstep.flag(:trap_exit, true)
                Lockstep.send(me, :trapping)
                got = [Lockstep.recv(), Lockstep.recv()]
                Lockstep.send(me, {:got, got})
              end)

            :trapping = Lockstep.recv()
            Lockstep.send(target, :msg)
            Lockstep.exit(target, :bye)
            {:got, got} = Lockstep.recv()
            got
          end,
          delivery: :delayed,
          iterations: 100,
          seed: 27
        )

      assert values |> Enum.map(&normalize_pids/1) |> Enum.uniq() ==
               [[:msg, {:EXIT, {:pid, 1}, :bye}]]
    end

    test "any other reason kills a non-trapping target with that reason" do
      value =
        result(
          fn ->
            target = Lockstep.spawn(&block_forever/0)
            ref = Lockstep.monitor(target)
            Lockstep.exit(target, :shutdown_now)
            Lockstep.receive(do: ({:DOWN, ^ref, :process, ^target, r} -> r))
          end,
          iterations: 20,
          seed: 25
        )

      assert value == :shutdown_now
    end

    test "exit(self(), :normal) kills the caller even without trapping" do
      value =
        result(
          fn ->
            target =
              Lockstep.spawn(fn ->
                Lockstep.receive do
                  :go -> Lockstep.exit(self(), :normal)
                end

                # Never reached (it would be reported as a crash).
                raise "survived exit(self(), :normal)"
              end)

            ref = Lockstep.monitor(target)
            Lockstep.send(target, :go)
            Lockstep.receive(do: ({:DOWN, ^ref, :process, ^target, r} -> r))
          end,
          iterations: 30,
          seed: 26
        )

      assert value == :normal
    end
  end

  describe "monitors" do
    test "a stale :DOWN after demonitor without :flush is found" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(stale_down_body([]),
                 iterations: 300,
                 seed: 31,
                 trace_dir: tmp_dir!()
               )

      assert bug.kind == :exception
      assert bug.process == "P"
      assert {:error, %RuntimeError{message: "stale :DOWN" <> _}, _} = bug.reason

      events = events(bug.trace)
      assert {:monitor, "P", "P.1"} in events
      assert {:demonitor, "P", "P.1"} in events
      # The worker exited (and its :DOWN was queued) before the root demonitored.
      assert index_of(events, {:exit, "P.1", :normal}) <
               index_of(events, {:demonitor, "P", "P.1"})

      assert {:down, "P", "P.1", :normal} in events
    end

    test "the same protocol with demonitor(ref, [:flush]) passes 300 iterations" do
      summary = Lockstep.run(stale_down_body([:flush]), iterations: 300, seed: 31)
      assert summary.iterations == 300
      assert summary.distinct_schedules > 1
    end

    test "with delivery: :delayed the stale :DOWN is found and [:flush] still passes" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(stale_down_body([]),
                 delivery: :delayed,
                 iterations: 300,
                 seed: 35,
                 trace_dir: tmp_dir!()
               )

      assert {:error, %RuntimeError{message: "stale :DOWN" <> _}, _} = bug.reason

      # A :DOWN still in flight when the monitor is removed must never arrive either.
      summary =
        Lockstep.run(stale_down_body([:flush]), delivery: :delayed, iterations: 300, seed: 35)

      assert summary.iterations == 300
    end

    test "no :DOWN reaches the mailbox after demonitor when the target exits later" do
      value =
        result(
          fn ->
            target =
              Lockstep.spawn(fn ->
                Lockstep.receive do
                  :go -> :ok
                end
              end)

            ref = Lockstep.monitor(target)
            true = Lockstep.demonitor(ref)
            ref2 = Lockstep.monitor(target)
            Lockstep.send(target, :go)
            Lockstep.receive(do: ({:DOWN, ^ref2, :process, ^target, :normal} -> :ok))
            Lockstep.sleep(10)

            Lockstep.receive do
              {:DOWN, ^ref, _, _, _} -> :stale
            after
              0 -> :clean
            end
          end,
          iterations: 50,
          seed: 32
        )

      assert value == :clean
    end

    test "monitoring a dead pid gives :noproc" do
      value =
        result(
          fn ->
            target = Lockstep.spawn(fn -> Lockstep.receive(do: (:go -> :ok)) end)
            ref1 = Lockstep.monitor(target)
            Lockstep.send(target, :go)
            Lockstep.receive(do: ({:DOWN, ^ref1, :process, ^target, :normal} -> :ok))
            ref2 = Lockstep.monitor(target)
            Lockstep.receive(do: ({:DOWN, ^ref2, :process, ^target, r} -> {r, ref1 != ref2}))
          end,
          iterations: 20,
          seed: 33
        )

      assert value == {:noproc, true}
    end

    test "two monitors on the same process each get their own :DOWN" do
      value =
        result(
          fn ->
            target = Lockstep.spawn(fn -> Lockstep.receive(do: (:go -> exit(:bye))) end)
            r1 = Lockstep.monitor(target)
            r2 = Lockstep.monitor(target)
            true = r1 != r2
            Lockstep.send(target, :go)
            d1 = Lockstep.receive(do: ({:DOWN, ^r1, :process, ^target, r} -> r))
            d2 = Lockstep.receive(do: ({:DOWN, ^r2, :process, ^target, r} -> r))
            {d1, d2}
          end,
          crash: :ignore,
          iterations: 20,
          seed: 34
        )

      assert value == {:bye, :bye}
    end
  end

  test "alive?/1 is true for a live process (and self) and false once it exited" do
    value =
      result(
        fn ->
          target = Lockstep.spawn(&block_forever/0)
          ref = Lockstep.monitor(target)
          before = {Lockstep.alive?(self()), Lockstep.alive?(target)}
          Lockstep.exit(target, :kill)
          Lockstep.receive(do: ({:DOWN, ^ref, :process, ^target, :killed} -> :ok))
          {before, Lockstep.alive?(target)}
        end,
        iterations: 20,
        seed: 41
      )

    assert value == {{true, true}, false}
  end

  test "the trace records links, monitors, signals, traps and name operations" do
    assert {:error, %BugFound{} = bug} =
             Lockstep.check(
               fn ->
                 me = self()

                 trapper =
                   Lockstep.spawn(fn ->
                     Lockstep.flag(:trap_exit, true)
                     Lockstep.send(me, :trapping)
                     block_forever()
                   end)

                 plain = Lockstep.spawn(&block_forever/0)
                 :trapping = Lockstep.recv()
                 Lockstep.link(trapper)
                 Lockstep.unlink(trapper)
                 ref = Lockstep.monitor(plain)
                 Lockstep.register(:plain, plain)
                 Lockstep.whereis(:plain)
                 Lockstep.exit(trapper, :hey)
                 Lockstep.exit(plain, :normal)
                 Lockstep.exit(plain, :kill)
                 Lockstep.receive(do: ({:DOWN, ^ref, _, _, _} -> :ok))
                 Lockstep.whereis(:plain)
                 raise "stop here"
               end,
               iterations: 1,
               seed: 42,
               trace_dir: tmp_dir!()
             )

    events = events(bug.trace)
    assert {:trap_exit, "P.1", true} in events
    assert {:link, "P", "P.1"} in events
    assert {:unlink, "P", "P.1"} in events
    assert {:monitor, "P", "P.2"} in events
    assert {:register, "P", :plain, "P.2", true} in events
    assert {:whereis, "P", :plain, "P.2"} in events
    assert Enum.any?(events, &match?({:exit_sent, "P", "P.1", :hey, _}, &1))
    assert {:exit_trapped, "P.1", "P", :hey} in events
    assert {:exit_ignored, "P.2", "P"} in events
    assert {:exit_signal, "P", "P.2", :kill} in events
    assert {:down, "P", "P.2", :killed} in events
    assert {:whereis, "P", :plain, nil} in events
    # The report renders every one of them (no raw tuples left for these events).
    message = Exception.message(bug)
    refute message =~ "{:exit_trapped"
    refute message =~ "{:down,"
  end

  describe "registered names" do
    test "a whereis-then-register race is found as a :crash with ArgumentError" do
      body = fn ->
        for _ <- 1..2 do
          Lockstep.spawn(fn ->
            unless Lockstep.whereis(:svc), do: Lockstep.register(:svc, self())
            block_forever()
          end)
        end

        :ok
      end

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(body, iterations: 300, seed: 51, trace_dir: tmp_dir!())

      assert bug.kind == :crash
      assert bug.process in ["P.1", "P.2"]
      assert {:error, %ArgumentError{message: message}, _} = bug.reason
      assert message =~ ":svc"

      events = events(bug.trace)
      # Both looked the name up and found nobody, then both tried to register.
      assert {:whereis, "P.1", :svc, nil} in events
      assert {:whereis, "P.2", :svc, nil} in events
      loser = bug.process
      winner = if loser == "P.1", do: "P.2", else: "P.1"
      assert {:register, winner, :svc, winner, true} in events
      assert {:register, loser, :svc, loser, false} in events
    end

    test "whereis and registered see a name registered by another process" do
      value =
        result(
          fn ->
            me = self()

            Lockstep.spawn(fn ->
              unless Lockstep.whereis(:svc), do: Lockstep.register(:svc, self())
              Lockstep.send(me, :registered)
              block_forever()
            end)

            :registered = Lockstep.recv()
            pid = Lockstep.whereis(:svc)
            {is_pid(pid), Lockstep.registered()}
          end,
          iterations: 30,
          seed: 52
        )

      assert value == {true, [:svc]}
    end

    test "sending to a name the child has not registered yet is found" do
      body = fn ->
        Lockstep.spawn(fn ->
          Lockstep.register(:svc, self())

          Lockstep.receive do
            :hello -> :ok
          end
        end)

        Lockstep.send(:svc, :hello)
        :ok
      end

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(body, iterations: 300, seed: 53, trace_dir: tmp_dir!())

      assert bug.kind == :exception
      assert bug.process == "P"
      assert {:error, %ArgumentError{message: message}, _} = bug.reason
      assert message =~ ":svc"
      events = events(bug.trace)
      assert {:send_unregistered, "P", :svc} in events
      refute Enum.any?(events, &match?({:register, "P.1", :svc, _, true}, &1))
    end

    test "sending to a registered name delivers to its owner" do
      value =
        result(
          fn ->
            me = self()

            Lockstep.spawn(fn ->
              Lockstep.register(:echo, self())
              Lockstep.send(me, :ready)

              Lockstep.receive do
                {:ping, from} -> Lockstep.send(from, {:pong, self()})
              end
            end)

            :ready = Lockstep.recv()
            owner = Lockstep.whereis(:echo)
            Lockstep.send(:echo, {:ping, self()})
            {:pong, from} = Lockstep.recv()
            from == owner
          end,
          iterations: 30,
          seed: 54
        )

      assert value == true
    end

    test "names are freed when the owner exits" do
      value =
        result(
          fn ->
            me = self()

            owner =
              Lockstep.spawn(fn ->
                Lockstep.register(:svc, self())
                Lockstep.send(me, :registered)

                Lockstep.receive do
                  :stop -> :ok
                end
              end)

            ref = Lockstep.monitor(owner)
            :registered = Lockstep.recv()
            before = {Lockstep.whereis(:svc) == owner, Lockstep.registered()}
            Lockstep.send(:svc, :stop)
            Lockstep.receive(do: ({:DOWN, ^ref, :process, ^owner, :normal} -> :ok))
            after_exit = {Lockstep.whereis(:svc), Lockstep.registered()}
            # The name can be taken again.
            true = Lockstep.register(:svc, self())
            {before, after_exit, Lockstep.whereis(:svc) == self()}
          end,
          iterations: 30,
          seed: 55
        )

      assert value == {{true, [:svc]}, {nil, []}, true}
    end

    test "names of killed processes are freed too" do
      value =
        result(
          fn ->
            owner = Lockstep.spawn(&block_forever/0)
            true = Lockstep.register(:victim, owner)
            ref = Lockstep.monitor(owner)
            Lockstep.exit(owner, :kill)
            Lockstep.receive(do: ({:DOWN, ^ref, :process, ^owner, :killed} -> :ok))
            Lockstep.whereis(:victim)
          end,
          iterations: 20,
          seed: 56
        )

      assert value == nil
    end

    test "register/unregister raise ArgumentError like OTP" do
      value =
        result(
          fn ->
            other = Lockstep.spawn(&block_forever/0)
            true = Lockstep.register(:one, self())

            taken = raises?(fn -> Lockstep.register(:one, other) end)
            second_name = raises?(fn -> Lockstep.register(:two, self()) end)
            true = Lockstep.unregister(:one)
            unknown = raises?(fn -> Lockstep.unregister(:one) end)
            true = Lockstep.register(:two, self())
            unregistered_send = raises?(fn -> Lockstep.send(:nobody, :hi) end)
            {taken, second_name, unknown, unregistered_send, Lockstep.registered()}
          end,
          iterations: 10,
          seed: 57
        )

      assert value == {true, true, true, true, [:two]}
    end

    test "unregister/1 of a name that is not an atom raises ArgumentError naming it" do
      value =
        result(
          fn ->
            try do
              Lockstep.unregister("svc")
            rescue
              e in ArgumentError -> Exception.message(e)
            end
          end,
          iterations: 1,
          seed: 58
        )

      assert value =~ ~s(expects an atom name, got: "svc")
    end

    test "monitor/1 of a registered name or {name, node}, as Process.monitor/1" do
      value =
        result(
          fn ->
            node = Lockstep.node()
            missing = Lockstep.monitor(:nobody)

            missing_down =
              Lockstep.receive do
                {:DOWN, ^missing, :process, who, reason} -> {who, reason}
              end

            worker =
              Lockstep.spawn(fn ->
                Lockstep.receive do
                  :stop -> :ok
                end
              end)

            true = Lockstep.register(:svc, worker)
            by_name = Lockstep.monitor(:svc)
            by_pair = Lockstep.monitor({:svc, node})
            Lockstep.send(worker, :stop)

            downs =
              for ref <- [by_name, by_pair] do
                Lockstep.receive do
                  {:DOWN, ^ref, :process, who, reason} -> {who, reason}
                end
              end

            bad =
              try do
                Lockstep.monitor("svc")
              rescue
                e in ArgumentError -> Exception.message(e)
              end

            {missing_down, downs, bad}
          end,
          iterations: 20,
          seed: 59
        )

      node = :nonode@nohost
      assert {{{:nobody, ^node}, :noproc}, downs, bad} = value
      assert downs == [{{:svc, node}, :normal}, {{:svc, node}, :normal}]
      assert bad =~ ~s(expects a pid, a registered name or {name, node}, got: "svc")
    end
  end

  defp raises?(fun) do
    fun.()
    false
  rescue
    ArgumentError -> true
  end

  defp index_of(events, event), do: Enum.find_index(events, &(&1 == event))

  # A request with a monitor, as GenServer.call does it. The worker replies and then exits.
  # Without [:flush] the :DOWN can already be in the mailbox when the monitor is removed,
  # and the root's next plain receive takes it.
  defp stale_down_body(demonitor_opts) do
    fn ->
      me = self()

      worker =
        Lockstep.spawn(fn ->
          Lockstep.receive do
            {:req, from} -> Lockstep.send(from, :reply)
          end
        end)

      ref = Lockstep.monitor(worker)
      Lockstep.send(worker, {:req, me})

      Lockstep.receive do
        :reply -> :ok
        {:DOWN, ^ref, :process, ^worker, reason} -> raise "worker died first: #{inspect(reason)}"
      end

      true = Lockstep.demonitor(ref, demonitor_opts)
      Lockstep.send(me, :next)

      case Lockstep.recv() do
        :next -> :ok
        {:DOWN, _, _, _, _} = down -> raise "stale :DOWN #{inspect(down)}"
      end
    end
  end
end
