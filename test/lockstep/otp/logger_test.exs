defmodule Lockstep.OTP.LoggerTest do
  # Logger runs outside the run: a managed server's crash report goes through Logger as
  # OTP sends it, log calls from managed code are external traffic (never scheduled), and
  # a call into the Logger process waits for the outside instead of hanging the run.
  use Lockstep.Test, async: false

  import ExUnit.CaptureLog
  require Logger

  alias Lockstep.TestSupport.OTP.{Compare, Server}

  defp crash_program do
    fn ->
      {:ok, pid} = Server.start({:ok, :precious})

      try do
        GenServer.call(pid, :crash)
      catch
        :exit, {{%RuntimeError{message: message}, _stack}, {GenServer, :call, _}} -> message
      end
    end
  end

  test "a crashing managed server logs OTP's report through Logger" do
    plain_log = capture_log(fn -> assert {:ok, _} = Compare.plain(crash_program()) end)

    log =
      capture_log(fn ->
        assert {[{:ok, "the server crashed holding :precious"}], _} =
                 Compare.controlled(crash_program(),
                   instrument: [Server],
                   crash: :ignore,
                   iterations: 3
                 )

        Logger.flush()
      end)

    for expected <- [
          ~r/GenServer #PID<[\d.]+> terminating/,
          "** (RuntimeError) the server crashed holding :precious",
          "Last message (from #PID<",
          "): :crash",
          "State: :precious"
        ] do
      assert plain_log =~ expected
      assert log =~ expected
    end

    # One report per iteration.
    assert length(Regex.scan(~r/terminating/, log)) == 3
  end

  test "log calls from managed code are external sends, not steps, and never fail a run" do
    log =
      capture_log(fn ->
        {:ok, controller} = Lockstep.Controller.start_link(strategy: :random, seed: 3)

        Lockstep.Controller.spawn_root(controller, fn ->
          child = spawn(fn -> Logger.warning("from the child") end)
          Logger.error("from the root #{inspect(self() != child)}")
          :ok
        end)

        result = Lockstep.Controller.await_done(controller)
        GenServer.stop(controller)
        assert result.kind == :pass
        # A send to Logger's registered name is a send outside the run, as to its pid.
        assert Enum.any?(result.trace, &match?({_, {:send, "P", :external, {:notify, _}, _}}, &1))

        assert Enum.any?(
                 result.trace,
                 &match?({_, {:send, "P.1", :external, {:notify, _}, _}}, &1)
               )

        refute Enum.any?(result.trace, &match?({_, {:send_unregistered, _, _}}, &1))
        Logger.flush()
      end)

    assert log =~ "from the child"
    assert log =~ "from the root true"
  end

  test "a server of the VM is outside the run: called by name, and its name is taken" do
    {:ok, outside} = Agent.start(fn -> :vm end, name: :lockstep_vm_agent)

    program = fn ->
      value = Agent.get(:lockstep_vm_agent, & &1)
      {value, Server.start_link({:ok, :run}, name: :lockstep_vm_agent)}
    end

    expected = Compare.plain(program)
    assert expected == {:ok, {:vm, {:error, {:already_started, :pid}}}}
    {outcomes, _} = Compare.controlled(program, instrument: [Server], iterations: 5)
    assert outcomes == [expected]
    Agent.stop(outside)
  end

  test "a synchronous call into Logger (Logger.flush/0) waits for the outside and returns" do
    log =
      capture_log(fn ->
        summary =
          Lockstep.run(
            fn ->
              Logger.info("before the flush")
              :ok = Logger.flush()
              Logger.info("after the flush")
            end,
            iterations: 5
          )

        assert summary.iterations == 5
        Logger.flush()
      end)

    assert length(Regex.scan(~r/after the flush/, log)) == 5
  end
end
