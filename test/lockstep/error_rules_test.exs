defmodule Lockstep.ErrorRulesTest do
  # Concuerror's error rules as options (SPEC §1): `crash: :strict` and `blocked_at_end:`.
  # Each program here is one whose verdict differs between the rules.
  use ExUnit.Case, async: true

  require Lockstep
  alias Lockstep.BugFound

  defp opts(extra) do
    dir = Lockstep.TestSupport.tmp_dir!("lockstep_error_rules")
    Keyword.merge([iterations: 20, seed: 7, trace_dir: dir], extra)
  end

  # The root kills a child that waits for a message, and waits for its `:DOWN`.
  defp killer(reason) do
    fn ->
      child = Lockstep.spawn(fn -> Lockstep.receive(do: (_ -> :ok)) end)
      ref = Lockstep.monitor(child)
      Lockstep.exit(child, reason)
      Lockstep.receive(do: ({:DOWN, ^ref, :process, _, why} -> why))
    end
  end

  # The same program on plain OTP: the reason the monitor sees.
  defp otp_down_reason(reason) do
    child = spawn(fn -> receive(do: (_ -> :ok)) end)
    ref = Process.monitor(child)
    Process.exit(child, reason)
    receive(do: ({:DOWN, ^ref, :process, _, why} -> why))
  end

  describe "crash: :strict" do
    test "a process killed by exit(pid, :boom) passes under :fail and fails under :strict" do
      assert %Lockstep.Summary{} = Lockstep.run(killer(:boom), opts(crash: :fail))

      assert {:error, %BugFound{} = bug} = Lockstep.check(killer(:boom), opts(crash: :strict))
      assert bug.kind == :crash
      assert bug.process == "P.1"
      assert bug.details == %{killed_by: "P", signal: :boom}
      assert {:exit, :boom, _} = bug.reason

      message = Exception.message(bug)
      assert message =~ "process P.1 was killed by an exit signal from P (crash: :strict)"
      assert message =~ "exit signal from P with reason :boom"

      # The failing step is the one at which the signal killed it.
      assert {:exit_signal, "P", "P.1", :boom} in for(
               {step, event} <- bug.trace,
               step == bug.fail_step,
               do: event
             )
    end

    test "the verdict follows Concuerror's abnormal reasons; monitors see what OTP shows" do
      for {reason, fails?} <- [
            boom: true,
            kill: true,
            shutdown: false,
            shutdown_tuple: false,
            normal_then_kill: true
          ] do
        {reason, expected_down} =
          case reason do
            :boom -> {:boom, otp_down_reason(:boom)}
            :kill -> {:kill, otp_down_reason(:kill)}
            :shutdown -> {:shutdown, otp_down_reason(:shutdown)}
            :shutdown_tuple -> {{:shutdown, :x}, otp_down_reason({:shutdown, :x})}
            :normal_then_kill -> {:kill, :killed}
          end

        # Under :fail every one passes, with the reason OTP gives the monitor.
        summary_or_bug = Lockstep.check(killer(reason), opts(crash: :fail, iterations: 1))
        assert {:ok, _} = summary_or_bug

        root_result =
          Lockstep.check(
            fn ->
              down = killer(reason).()
              if down != expected_down, do: raise("got #{inspect(down)}")
            end,
            opts(crash: :ignore, iterations: 5)
          )

        assert {:ok, _} = root_result, "#{inspect(reason)}"

        case Lockstep.check(killer(reason), opts(crash: :strict)) do
          {:error, %BugFound{kind: :crash, details: %{signal: ^reason}}} ->
            assert fails?, "#{inspect(reason)} should not fail under :strict"

          {:ok, _} ->
            refute fails?, "#{inspect(reason)} should fail under :strict"
        end
      end
    end

    test "a linked process's exit(:shutdown) kills its partner, which is no crash" do
      body = fn ->
        waiter =
          Lockstep.spawn(fn ->
            Lockstep.spawn_link(fn -> exit(:shutdown) end)
            Lockstep.receive(do: (_ -> :ok))
          end)

        ref = Lockstep.monitor(waiter)

        Lockstep.receive(
          do: ({:DOWN, ^ref, :process, _, why} when why in [:shutdown, :noproc] -> :ok)
        )
      end

      assert %Lockstep.Summary{} = Lockstep.run(body, opts(crash: :strict))
    end

    test "a crash is still reported as the crash, not as the kills it causes" do
      body = fn ->
        Lockstep.spawn(fn ->
          Lockstep.spawn_link(fn -> raise "boom" end)
          Lockstep.receive(do: (_ -> :ok))
        end)

        :ok
      end

      assert {:error, bug} = Lockstep.check(body, opts(crash: :strict))
      assert bug.kind == :crash
      assert bug.process == "P.1.1"
      assert {:error, %RuntimeError{message: "boom"}, _} = bug.reason
    end

    test "the trace file records the rule: replay reproduces without being told" do
      assert {:error, bug} = Lockstep.check(killer(:boom), opts(crash: :strict))
      file = Lockstep.TraceFile.load!(bug.trace_path)
      assert file.options[:crash] == :strict
      replayed = assert_raise BugFound, fn -> Lockstep.replay(killer(:boom), bug.trace_path) end
      assert replayed.kind == :crash
      assert replayed.details == %{killed_by: "P", signal: :boom}
    end
  end

  describe "blocked_at_end" do
    # A server left waiting for a second request when the root returns.
    defp left_behind do
      fn ->
        server = Lockstep.spawn(fn -> for _ <- 1..2, do: Lockstep.receive(do: (m -> m)) end)
        Lockstep.send(server, :one)
        :ok
      end
    end

    test "a server left blocked passes under :kill and is a deadlock under :fail" do
      assert %Lockstep.Summary{} = Lockstep.run(left_behind(), opts([]))
      assert %Lockstep.Summary{} = Lockstep.run(left_behind(), opts(blocked_at_end: :kill))

      assert {:error, bug} = Lockstep.check(left_behind(), opts(blocked_at_end: :fail))
      assert bug.kind == :deadlock
      assert [%{name: "P.1", mailbox: []}] = bug.details
      message = Exception.message(bug)
      assert message =~ "the root returned, and processes are still blocked"
      assert message =~ "blocked_at_end: :fail"
      assert message =~ "P.1"

      assert Lockstep.TraceFile.load!(bug.trace_path).options[:blocked_at_end] == :fail

      replayed = assert_raise BugFound, fn -> Lockstep.replay(left_behind(), bug.trace_path) end

      assert replayed.kind == :deadlock
    end

    test "a process in receive … after 100 is not blocked: its timer fires during the drain" do
      body = fn ->
        Lockstep.spawn(fn ->
          Lockstep.receive do
            _ -> :ok
          after
            100 -> :timed_out
          end
        end)

        :ok
      end

      assert %Lockstep.Summary{} = Lockstep.run(body, opts(blocked_at_end: :fail))

      # Waiting forever after the same timer: blocked once the timer has fired.
      forever = fn ->
        Lockstep.spawn(fn ->
          Lockstep.sleep(100)
          Lockstep.receive(do: (_ -> :ok))
        end)

        :ok
      end

      assert %Lockstep.Summary{} = Lockstep.run(forever, opts([]))

      assert {:error, %BugFound{kind: :deadlock}} =
               Lockstep.check(forever, opts(blocked_at_end: :fail))
    end

    test "a deadlock before the root returns is reported the usual way under both rules" do
      body = fn -> Lockstep.receive(do: (_ -> :ok)) end

      for rule <- [:kill, :fail] do
        assert {:error, bug} = Lockstep.check(body, opts(blocked_at_end: rule))
        assert bug.kind == :deadlock
        assert [%{name: "P"}] = bug.details
        assert Exception.message(bug) =~ "the root has not returned"
      end
    end
  end

  describe "validation" do
    test "bad values name the key, the value and what is accepted" do
      for {opts, fragments} <- [
            {[crash: :loud], [":crash", ":loud", ":fail, :ignore or :strict"]},
            {[blocked_at_end: :ignore], [":blocked_at_end", ":ignore", ":kill or :fail"]},
            {[blocked_at_end: nil], [":blocked_at_end", "nil"]},
            {[strict_control: 1], [":strict_control", "1", "true or false"]}
          ] do
        err = assert_raise ArgumentError, fn -> Lockstep.run(fn -> :ok end, opts) end

        for fragment <- fragments do
          assert Exception.message(err) =~ fragment
        end
      end
    end
  end
end
