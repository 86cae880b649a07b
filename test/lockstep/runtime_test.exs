defmodule Lockstep.RuntimeTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{BugFound, Controller, NotManagedError}
  require Logger
  import Lockstep.TestSupport

  # Runs `fun` as the root of one hand-driven iteration and returns await_done's result
  # (with the captured trace).
  defp drive(fun, opts \\ []) do
    {:ok, ctl} = Controller.start_link(Keyword.merge([strategy: :random, seed: 1], opts))
    Controller.spawn_root(ctl, fun)
    result = Controller.await_done(ctl, 10_000)
    GenServer.stop(ctl)
    result
  end

  describe "outside a run" do
    test "every sync function raises NotManagedError" do
      calls = [
        spawn: fn -> Lockstep.spawn(fn -> :ok end) end,
        spawn_link: fn -> Lockstep.spawn_link(fn -> :ok end) end,
        send: fn -> Lockstep.send(self(), :hi) end,
        recv: fn -> Lockstep.recv() end,
        recv_first: fn -> Lockstep.recv_first(fn _ -> true end) end,
        receive: fn -> Lockstep.receive(do: (_ -> :ok)) end,
        random: fn -> Lockstep.random(3) end,
        yield: fn -> Lockstep.yield() end,
        controller: fn -> Lockstep.controller() end
      ]

      for {name, call} <- calls do
        err = assert_raise NotManagedError, fn -> call.() end
        message = Exception.message(err)
        assert message =~ "outside a Lockstep run", "#{name}: #{message}"
      end

      # Nothing was sent by the failed send.
      refute_received :hi
    end

    test "the NotManagedError message names the function" do
      err = assert_raise NotManagedError, fn -> Lockstep.yield() end
      assert Exception.message(err) =~ "yield"
    end
  end

  describe "a Lockstep call from an unmanaged process linked to a managed one" do
    # spawn_link in code that is not instrumented starts a real process outside the run; their NotManagedError
    # kills the managed caller through the real link. That used to be reported as
    # "killed from outside the run" with reason :killed.
    @tag :capture_log
    test "kills the root: reported as :exception with the NotManagedError" do
      test_pid = self()

      assert {:error, %BugFound{kind: :exception, process: "P"} = bug} =
               Lockstep.check(
                 fn ->
                   send(test_pid, {:root, self()})
                   # a real linked process (this module is not instrumented)
                   spawn_link(fn -> Lockstep.yield() end)
                   receive(do: (:never -> :ok))
                 end,
                 iterations: 1,
                 seed: 1,
                 trace_dir: tmp_dir!()
               )

      # The report comes from the re-run that captures the trace: its root.
      roots = Lockstep.TestSupport.collect_pids(:root)
      assert {:error, %NotManagedError{reason: :unmanaged} = error, [_ | _]} = bug.reason
      assert error.function == "Lockstep.yield"
      assert error.context_owner in roots
      message = Exception.message(bug)
      assert message =~ "Lockstep.yield was called by"
      assert message =~ "Lockstep does not manage"
      assert message =~ "Lockstep.Task.async"
      refute message =~ "(exit) killed"
      Logger.flush()
    end

    @tag :capture_log
    @tag :capture_log
    test "kills a spawned process: reported as its :crash with the NotManagedError" do
      assert {:error, %BugFound{kind: :crash, process: "P.1"} = bug} =
               Lockstep.check(
                 fn ->
                   Lockstep.spawn(fn ->
                     me = self()
                     spawn_link(fn -> Lockstep.send(me, :hello) end)
                     # Waits outside Lockstep's control until the link kills it.
                     receive do
                       :never -> :ok
                     end
                   end)

                   Lockstep.recv()
                 end,
                 iterations: 1,
                 seed: 1,
                 trace_dir: tmp_dir!()
               )

      assert {:error, %NotManagedError{reason: :unmanaged, function: "Lockstep.send"}, _} =
               bug.reason

      assert Exception.message(bug) =~ "Lockstep.spawn_link"
      # The crash reports of the unmanaged processes land while the log is captured.
      Logger.flush()
    end

    test "an unlinked unmanaged process's error names the managed process it came from" do
      test_pid = self()

      Lockstep.run(
        fn ->
          root = self()

          spawn(fn ->
            error = catch_error(Lockstep.send(root, :hello))
            send(test_pid, {:error, error, root})
          end)

          receive do
            :never -> :ok
          after
            200 -> :ok
          end
        end,
        iterations: 1
      )

      assert_received {:error, %NotManagedError{reason: :unmanaged} = error, root}
      assert error.context_owner == root
      assert Exception.message(error) =~ inspect(root)
    end
  end

  describe "a run context copied into another process" do
    # Runs `call` in a plain process that put `ctx` in its dictionary; returns what it
    # raised (or :no_error / :no_answer), so a call left parked shows as :no_answer.
    defp with_copied_context(ctx, call) do
      test_pid = self()

      pid =
        spawn(fn ->
          Process.put(:"$lockstep", ctx)

          result =
            try do
              call.()
              :no_error
            rescue
              e -> e
            end

          send(test_pid, {:copied, self(), result})
        end)

      receive do
        {:copied, ^pid, result} -> result
      after
        2_000 ->
          Process.exit(pid, :kill)
          :no_answer
      end
    end

    test "used after its iteration ended, every call raises NotManagedError (:ended)" do
      test_pid = self()
      Lockstep.run(fn -> send(test_pid, {:ctx, Process.get(:"$lockstep")}) end, iterations: 1)
      assert_received {:ctx, ctx}

      for call <- [
            fn -> Lockstep.send(self(), :x) end,
            fn -> Lockstep.recv() end,
            fn -> Lockstep.receive(do: (_ -> :ok)) end,
            fn -> Lockstep.yield() end,
            fn -> Lockstep.sleep(5) end,
            fn -> Lockstep.node() end
          ] do
        assert %NotManagedError{reason: :ended} = error = with_copied_context(ctx, call)
        message = Exception.message(error)
        assert message =~ "has ended"
        assert message =~ "Lockstep.spawn"
      end
    end

    test "used while the iteration runs, from a process it does not belong to (:copied)" do
      test_pid = self()

      Lockstep.run(
        fn ->
          ctx = Process.get(:"$lockstep")
          root = self()

          spawn(fn ->
            result = with_copied_context(ctx, fn -> Lockstep.send(root, :x) end)
            send(test_pid, {:while_running, result, root})
            send(root, :checked)
          end)

          # A bare receive: the root waits outside Lockstep's control for the check.
          receive do
            :checked -> :ok
          end
        end,
        iterations: 1,
        timeout: 3_000
      )

      assert_received {:while_running, %NotManagedError{reason: :copied} = error, root}
      assert error.context_owner == root
      message = Exception.message(error)
      assert message =~ inspect(root)
      assert message =~ "copied"
      assert message =~ "Lockstep.spawn"
    end
  end

  describe "receive" do
    test "patterns, guards and pins select the right message" do
      test_pid = self()

      Lockstep.run(
        fn ->
          me = self()

          server =
            Lockstep.spawn(fn ->
              Lockstep.receive do
                {:req, ref, from} -> Lockstep.send(from, {:reply, ref, :right})
              end
            end)

          # A reply with another ref is already in the mailbox before ours arrives.
          other = make_ref()
          Lockstep.send(me, {:reply, other, :wrong})
          ref = make_ref()
          Lockstep.send(server, {:req, ref, me})

          value =
            Lockstep.receive do
              {:reply, ^ref, v} -> v
            end

          Lockstep.send(me, {:num, 1})
          Lockstep.send(me, {:num, 10})
          Lockstep.send(me, :atom_msg)

          big =
            Lockstep.receive do
              {:num, n} when n > 5 -> {:big, n}
            end

          either =
            Lockstep.receive do
              :atom_msg -> :atom
              {:other, _} -> :other
            end

          rest = [Lockstep.recv(), Lockstep.recv()]
          Lockstep.send(test_pid, {:results, value, big, either, rest, other})
        end,
        iterations: 30,
        seed: 5
      )

      for _ <- 1..30 do
        assert_receive {:results, :right, {:big, 10}, :atom, rest, other}
        assert rest == [{:reply, other, :wrong}, {:num, 1}]
      end
    end

    test "recv_first picks the first matching message out of order" do
      test_pid = self()

      Lockstep.run(
        fn ->
          me = self()
          for m <- [:a, {:b, 1}, :c, {:b, 2}], do: Lockstep.send(me, m)
          first_b = Lockstep.recv_first(&match?({:b, _}, &1))
          second_b = Lockstep.recv_first(&match?({:b, _}, &1))
          rest = [Lockstep.recv(), Lockstep.recv()]
          Lockstep.send(test_pid, {:got, first_b, second_b, rest})
        end,
        iterations: 5,
        seed: 1
      )

      for _ <- 1..5, do: assert_receive({:got, {:b, 1}, {:b, 2}, [:a, :c]})
    end

    # The predicate runs while the mailbox is scanned, inside the receive's own sync point;
    # a sync point in it used to leave the process waiting for itself (a false deadlock).
    test "a recv_first predicate that reaches a sync point raises a clear error" do
      for {what, pred} <- [
            {"Lockstep.send", fn m -> Lockstep.send(self(), {:seen, m}) && true end},
            {"Lockstep.yield", fn _ -> Lockstep.yield() == :ok end},
            {"Lockstep.now", fn _ -> Lockstep.now() >= 0 end},
            {"Lockstep.ETS", fn _ -> Lockstep.ETS.new(:t, [:public]) && true end}
          ] do
        assert {:error, %BugFound{kind: :exception} = bug} =
                 Lockstep.check(
                   fn ->
                     Lockstep.send(self(), :a)
                     Lockstep.recv_first(pred)
                   end,
                   iterations: 1,
                   seed: 1,
                   trace_dir: tmp_dir!()
                 )

        assert {:error, %ArgumentError{message: message}, _} = bug.reason
        assert message =~ what
        assert message =~ "Lockstep.recv_first/1"
        assert message =~ "pure"
      end
    end

    test "a recv_first predicate may use ordinary code and still runs as before" do
      test_pid = self()

      Lockstep.run(
        fn ->
          Lockstep.send(self(), {:n, 1})
          Lockstep.send(self(), {:n, 2})
          got = Lockstep.recv_first(fn {:n, n} -> Enum.sum([n, 0]) == 2 end)
          # A predicate that raises leaves the process able to receive again.
          raised = catch_error(Lockstep.recv_first(fn _ -> raise "boom" end))
          Lockstep.send(test_pid, {:got, got, raised, Lockstep.recv()})
        end,
        iterations: 3,
        seed: 1
      )

      for _ <- 1..3, do: assert_receive({:got, {:n, 2}, %RuntimeError{message: "boom"}, {:n, 1}})
    end

    test "recv_first waits for a matching message from another process" do
      result =
        drive(fn ->
          me = self()
          Lockstep.send(me, :noise)
          Lockstep.spawn(fn -> Lockstep.send(me, {:wanted, 42}) end)
          {:wanted, 42} = Lockstep.recv_first(&match?({:wanted, _}, &1))
          :noise = Lockstep.recv()
        end)

      assert result.kind == :pass
      assert {:receive, "P", "P.1", {:wanted, 42}} in events(result.trace)
      assert {:receive, "P", "P", :noise} in events(result.trace)
    end
  end

  describe "send" do
    test "to a pid outside the run arrives as a plain message" do
      test_pid = self()

      summary =
        Lockstep.run(fn -> Lockstep.send(test_pid, {:hello, 1}) end, iterations: 3, seed: 1)

      assert summary.iterations == 3

      for _ <- 1..3, do: assert_received({:hello, 1})
      refute_received _

      result = drive(fn -> Lockstep.send(test_pid, {:hello, 2}) end)
      assert result.kind == :pass
      assert {:send, "P", :external, {:hello, 2}, :delivered} in events(result.trace)
      assert_received {:hello, 2}
    end

    test "to a dead managed process is silently dropped and returns the message" do
      test_pid = self()

      result =
        drive(fn ->
          me = self()

          child =
            Lockstep.spawn(fn ->
              Lockstep.send(me, :bye)
            end)

          :bye = Lockstep.recv()
          # The child exited right after its send (no sync point in between).
          returned = Lockstep.send(child, {:late, 1})
          Lockstep.send(test_pid, {:returned, returned})
        end)

      assert result.kind == :pass
      events = events(result.trace)
      assert {:exit, "P.1", :normal} in events
      assert {:send, "P", "P.1", {:late, 1}, :dropped} in events
      refute Enum.any?(events, &match?({:receive, "P.1", _, _}, &1))
      assert_received {:returned, {:late, 1}}
    end

    test "in flight to a process that exits before delivery is dropped" do
      result =
        drive(
          fn ->
            me = self()
            child = Lockstep.spawn(fn -> Lockstep.send(me, :ready) end)
            Lockstep.send(child, :too_late)
            :ready = Lockstep.recv()
          end,
          delivery: :delayed,
          seed: 1
        )

      assert result.kind == :pass
      events = events(result.trace)
      assert {:send, "P", "P.1", :too_late, :in_flight} in events

      # Either delivered before the child exited, or dropped after.
      assert {:deliver, "P", "P.1", :too_late} in events or
               {:drop, "P", "P.1", :too_late} in events
    end

    test "returns the message" do
      test_pid = self()

      Lockstep.run(
        fn ->
          me = self()
          msg = {:payload, [1, 2, 3], %{a: 1}}
          r1 = Lockstep.send(me, msg)
          r2 = Lockstep.send(test_pid, :ext)
          ^msg = Lockstep.recv()
          Lockstep.send(test_pid, {:returns, r1 == msg, r2})
        end,
        iterations: 2,
        seed: 1
      )

      assert_received {:returns, true, :ext}
    end
  end

  describe "argument errors" do
    test "spawn with a non-function raises ArgumentError" do
      assert_raise ArgumentError, fn -> Lockstep.spawn(:not_a_fun) end
      assert_raise ArgumentError, fn -> Lockstep.spawn(fn _x -> :ok end) end
      test_pid = self()

      Lockstep.run(
        fn ->
          e1 = catch_error(Lockstep.spawn(:nope))
          e2 = catch_error(Lockstep.spawn_link(fn _ -> :ok end))
          Lockstep.send(test_pid, {:errors, e1, e2})
        end,
        iterations: 1,
        seed: 1
      )

      assert_received {:errors, %ArgumentError{message: m1}, %ArgumentError{}}
      assert m1 =~ ":nope"
    end

    test "random(0) raises ArgumentError" do
      test_pid = self()

      Lockstep.run(
        fn ->
          errors = for n <- [0, -1, 1.5, :x], do: catch_error(Lockstep.random(n))
          Lockstep.send(test_pid, {:errors, errors})
        end,
        iterations: 1,
        seed: 1
      )

      assert_received {:errors, errors}
      assert Enum.all?(errors, &match?(%ArgumentError{}, &1))
      assert hd(errors).message =~ "0"
    end

    test "whereis with a non-atom and demonitor with an unknown option raise ArgumentError, as OTP" do
      # Plain OTP first: the same calls, the same exception.
      assert_raise ArgumentError, fn -> Process.whereis("name") end
      assert_raise ArgumentError, fn -> Process.demonitor(make_ref(), [:bogus]) end
      assert_raise ArgumentError, fn -> Process.demonitor(make_ref(), [:flush | :info]) end
      test_pid = self()

      Lockstep.run(
        fn ->
          # The monitored process waits until the end: its monitor stays active.
          target = Lockstep.spawn(fn -> Lockstep.recv() end)
          ref = Lockstep.monitor(target)

          errors = [
            catch_error(Lockstep.whereis("name")),
            catch_error(Lockstep.demonitor(ref, [:flush, :bogus])),
            catch_error(Lockstep.demonitor(ref, [:flush | :info]))
          ]

          # The monitor is still there: the bad calls did nothing.
          Lockstep.send(test_pid, {:errors, errors, Lockstep.demonitor(ref, [:info])})
          Lockstep.send(target, :stop)
        end,
        iterations: 1,
        seed: 1
      )

      assert_received {:errors, [%ArgumentError{message: m1}, %ArgumentError{message: m2}, e3],
                       true}

      assert m1 == ~s(Lockstep.whereis/1 expects an atom name, got: "name")
      assert m2 == "Lockstep.demonitor/2 accepts the options :flush and :info, got: [:bogus]"
      assert %ArgumentError{message: m3} = e3
      assert m3 =~ "a proper list of options"
      assert m3 =~ "[:flush | :info]"
    end

    test "random(n) with n beyond 64 bits names the range; the largest n works" do
      test_pid = self()

      Lockstep.run(
        fn ->
          error = catch_error(Lockstep.random(2 ** 64))
          Lockstep.send(test_pid, {:error, error, Lockstep.random(2 ** 64 - 1)})
        end,
        iterations: 1,
        seed: 1
      )

      assert_received {:error, %ArgumentError{message: message}, value}
      assert message =~ "Lockstep.random/1"
      assert message =~ "18446744073709551616"
      assert message =~ "1..18446744073709551615"
      assert value in 0..(2 ** 64 - 2)
    end
  end

  describe ":stuck" do
    test "a bare Kernel receive in a managed process" do
      dir = tmp_dir!()
      test_pid = self()

      {elapsed_us, result} =
        :timer.tc(fn ->
          Lockstep.check(
            fn ->
              me = self()

              Lockstep.spawn(fn ->
                Lockstep.send(test_pid, {:stuck_pid, self()})

                receive do
                  :never -> :ok
                end

                Lockstep.send(me, :unreachable)
              end)

              Lockstep.recv()
            end,
            timeout: 300,
            iterations: 5,
            seed: 1,
            trace_dir: dir
          )
        end)

      assert {:error, %BugFound{} = bug} = result
      assert bug.kind == :stuck
      assert bug.process == "P.1"
      assert bug.iteration == 1
      assert %{pid: pid, stacktrace: stacktrace} = bug.details
      assert is_pid(pid)
      assert [_ | _] = stacktrace
      assert_received {:stuck_pid, ^pid}
      refute Process.alive?(pid)
      # Once for the search, once for the capture re-run; both waited about 300 ms.
      assert elapsed_us >= 300_000
      assert elapsed_us < 5_000_000
    end

    test "a busy loop without sync points" do
      dir = tmp_dir!()

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Lockstep.yield()
                   spin(0)
                 end,
                 timeout: 300,
                 iterations: 3,
                 seed: 1,
                 trace_dir: dir
               )

      assert bug.kind == :stuck
      assert bug.process == "P"
      assert %{pid: pid, stacktrace: [_ | _] = stacktrace} = bug.details
      refute Process.alive?(pid)
      assert Enum.any?(stacktrace, &match?({__MODULE__, _, _, _}, &1))
    end
  end

  defp spin(n), do: spin(n + 1)

  describe "exits" do
    test "a linked child crashing under crash: :ignore kills the root (kind :exception)" do
      dir = tmp_dir!()

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Lockstep.spawn_link(fn ->
                     Lockstep.yield()
                     raise "child boom"
                   end)

                   Lockstep.recv()
                 end,
                 crash: :ignore,
                 iterations: 10,
                 seed: 1,
                 trace_dir: dir
               )

      assert bug.kind == :exception
      assert bug.process == "P"
      # The signal's reason: the child's crash.
      # The root was killed by the exit signal: its reason is the signal's, the child's
      # {exception, stacktrace} as OTP would give it.
      assert {:exit, {%RuntimeError{message: "child boom"}, _}, _} = bug.reason

      events = events(bug.trace)
      assert {:spawn_link, "P", "P.1"} in events
      assert Enum.any?(events, &match?({:exit, "P.1", {:error, %RuntimeError{}, _}}, &1))

      # The signal carries the child's crash, in report form ({:error, exception, stack})
      # or in OTP's exit-reason form ({exception, stack}).
      assert [signal] = for({:exit_signal, "P.1", "P", reason} <- events, do: reason)

      assert match?({:error, %RuntimeError{message: "child boom"}, _}, signal) or
               match?({%RuntimeError{message: "child boom"}, [_ | _]}, signal)

      refute Enum.any?(events, &match?({:exit, "P", _}, &1))
    end

    test "an unlinked child crashing under crash: :ignore does not kill the root" do
      test_pid = self()

      summary =
        Lockstep.run(
          fn ->
            me = self()

            Lockstep.spawn(fn ->
              Lockstep.yield()
              raise "child boom"
            end)

            Lockstep.spawn(fn -> Lockstep.send(me, :ok) end)
            :ok = Lockstep.recv()
            Lockstep.send(test_pid, :root_survived)
          end,
          crash: :ignore,
          iterations: 20,
          seed: 1
        )

      assert summary.iterations == 20
      for _ <- 1..20, do: assert_received(:root_survived)
    end

    test "a linked child crashing under crash: :fail is reported as the child's :crash" do
      dir = tmp_dir!()

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Lockstep.spawn_link(fn -> raise "linked boom" end)
                   Lockstep.recv()
                 end,
                 iterations: 10,
                 seed: 1,
                 trace_dir: dir
               )

      # The original crash is what is reported, not the root's death by exit signal.
      assert bug.kind == :crash
      assert bug.process == "P.1"
      assert {:error, %RuntimeError{message: "linked boom"}, _} = bug.reason
    end

    test "a failure ends the iteration when it happens" do
      dir = tmp_dir!()
      test_pid = self()

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Lockstep.spawn(fn -> raise "early crash" end)
                   for i <- 1..5, do: Lockstep.send(test_pid, {:root_step, i})
                   Lockstep.recv()
                 end,
                 iterations: 50,
                 seed: 4,
                 trace_dir: dir
               )

      assert bug.kind == :crash
      events = events(bug.trace)
      # Nothing happens after the crash.
      assert {:exit, "P.1", {:error, %RuntimeError{}, _}} = List.last(events)
      assert Enum.all?(bug.trace, fn {step, _} -> step <= bug.fail_step end)
      sent = for {:send, "P", :external, {:root_step, i}, _} <- events, do: i
      assert sent == Enum.to_list(1..length(sent))
    end

    test "messages in flight when the root returns are still delivered" do
      dir = tmp_dir!()

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   child =
                     Lockstep.spawn(fn ->
                       :go = Lockstep.recv()
                       raise "crash after the root returned"
                     end)

                   Lockstep.send(child, :go)
                   :ok
                 end,
                 delivery: :delayed,
                 iterations: 20,
                 seed: 2,
                 trace_dir: dir
               )

      assert bug.kind == :crash
      assert bug.process == "P.1"
      events = events(bug.trace)
      assert {:send, "P", "P.1", :go, :in_flight} in events
      assert {:deliver, "P", "P.1", :go} in events
      assert {:exit, "P", :normal} in events
    end

    test "a deadlock right after a normal exit carries no reason" do
      dir = tmp_dir!()

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Lockstep.spawn(fn -> :forgot_to_reply end)
                   Lockstep.recv()
                 end,
                 iterations: 5,
                 seed: 1,
                 trace_dir: dir
               )

      assert bug.kind == :deadlock
      assert [%{name: "P"}] = bug.details
      # BugFound.reason is documented as set for :exception and :crash only.
      assert bug.reason == nil
    end

    test "fail_on_max_steps: true with a yield loop is :max_steps" do
      dir = tmp_dir!()
      body = fn -> yield_forever() end

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(body,
                 max_steps: 200,
                 fail_on_max_steps: true,
                 iterations: 5,
                 seed: 1,
                 trace_dir: dir
               )

      assert bug.kind == :max_steps
      assert bug.iteration == 1
      assert bug.steps == 200
      assert length(bug.schedule) == 200
      assert Enum.all?(bug.schedule, &(&1 == {:run, "P"}))
    end

    test "without fail_on_max_steps a yield loop is inconclusive, not a bug" do
      assert {:error, %Lockstep.InconclusiveError{} = error} =
               Lockstep.check(fn -> yield_forever() end, max_steps: 100, iterations: 5, seed: 1)

      assert error.iterations == 5
      assert error.max_steps_hit == 5
      assert error.max_steps == 100
    end

    test "a root that raises is :exception" do
      dir = tmp_dir!()

      assert {:error, bug} =
               Lockstep.check(fn -> raise ArgumentError, "bad root" end,
                 iterations: 3,
                 seed: 1,
                 trace_dir: dir
               )

      assert bug.kind == :exception
      assert bug.process == "P"
      assert {:error, %ArgumentError{message: "bad root"}, [_ | _]} = bug.reason
      assert_raise BugFound, fn -> Lockstep.run(fn -> raise "x" end, trace_dir: dir, seed: 1) end
    end

    test "a root that throws or exits abnormally is :exception" do
      dir = tmp_dir!()

      assert {:error, thrown} =
               Lockstep.check(fn -> throw(:ball) end, iterations: 1, seed: 1, trace_dir: dir)

      assert thrown.kind == :exception
      assert thrown.process == "P"
      assert {:throw, :ball, _} = thrown.reason

      assert {:error, exited} =
               Lockstep.check(fn -> exit(:boom) end, iterations: 1, seed: 1, trace_dir: dir)

      assert exited.kind == :exception
      assert exited.process == "P"
      assert {:exit, :boom, _} = exited.reason
    end

    test "a normal exit of a child is not a crash" do
      test_pid = self()

      summary =
        Lockstep.run(
          fn ->
            me = self()

            for reason <- [:normal, :shutdown, {:shutdown, :done}] do
              Lockstep.spawn(fn ->
                Lockstep.send(me, {:exiting, reason})
                exit(reason)
              end)
            end

            for _ <- 1..3, do: Lockstep.recv()
            Lockstep.send(test_pid, :root_done)
          end,
          iterations: 30,
          seed: 1
        )

      assert summary.iterations == 30
      for _ <- 1..30, do: assert_received(:root_done)

      result =
        drive(fn ->
          Lockstep.spawn(fn -> exit(:normal) end)
          :ok
        end)

      assert result.kind == :pass

      assert {:exit, "P.1", {:exit, :normal, _}} =
               Enum.find(events(result.trace), &match?({:exit, "P.1", _}, &1))
    end

    test "a child exiting abnormally is a :crash" do
      dir = tmp_dir!()

      assert {:error, bug} =
               Lockstep.check(
                 fn ->
                   Lockstep.spawn(fn -> exit(:bad) end)
                   Lockstep.recv()
                 end,
                 iterations: 3,
                 seed: 1,
                 trace_dir: dir
               )

      assert bug.kind == :crash
      assert bug.process == "P.1"
      assert {:exit, :bad, _} = bug.reason
    end
  end

  defp yield_forever do
    Lockstep.yield()
    yield_forever()
  end
end
