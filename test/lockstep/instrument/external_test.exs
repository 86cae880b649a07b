defmodule Lockstep.Instrument.ExternalTest do
  # Messages from outside the run (SPEC §9): an instrumented receive takes a matching
  # message sent by a process the run does not manage; a process that sent outside and
  # waits is awaiting the outside — not idle, so timers do not fire over it — and when
  # nothing comes the run reports :stuck naming whom it waits on. A deadlock among managed
  # processes only is still reported at once.
  use Lockstep.Test, async: true

  # A plain process outside the run (a dynamic call is not rewritten).
  defp outside(fun), do: apply(Kernel, :spawn, [fun])

  defp echo_after(ms) do
    outside(fn ->
      receive do
        {:ping, from} ->
          Process.sleep(ms)
          send(from, :pong)
      end
    end)
  end

  test "a reply from outside the run is taken, and marked external in the trace" do
    {:ok, ctl} = Lockstep.Controller.start_link(strategy: :random, seed: 7)

    Lockstep.Controller.spawn_root(ctl, fn ->
      send(echo_after(0), {:ping, self()})
      receive(do: (:pong -> :ok))
    end)

    result = Lockstep.Controller.await_done(ctl)
    GenServer.stop(ctl)
    assert result.kind == :pass
    assert Enum.any?(result.trace, &match?({_, {:receive_external, "P"}}, &1))
    assert Enum.any?(result.trace, &match?({_, {:send, "P", :external, _, _}}, &1))
  end

  test "awaiting the outside is not idle: a virtual timeout does not fire over it" do
    summary =
      Lockstep.run(
        fn ->
          send(echo_after(50), {:ping, self()})

          receive do
            :pong -> :ok
          after
            10_000 -> flunk("the virtual timer fired while the reply was on its way")
          end
        end,
        iterations: 3
      )

    assert summary.iterations == 3
  end

  test "no reply from outside within :timeout is :stuck, naming the outside process" do
    silent = outside(fn -> receive(do: (:never -> :ok)) end)

    {:error, bug} =
      Lockstep.check(
        fn ->
          send(silent, {:ping, self()})
          receive(do: (:pong -> :ok))
        end,
        iterations: 1,
        timeout: 200
      )

    assert bug.kind == :stuck
    assert bug.details.awaiting == {:outside, silent}
    message = Exception.message(bug)
    assert message =~ "awaiting the outside"
    assert message =~ "NOTE: this run involved processes outside it (1 send(s) to them"
    assert message =~ inspect(silent)
    Process.exit(silent, :kill)
  end

  test "a deadlock among managed processes only is reported at once" do
    {elapsed, {:error, bug}} =
      :timer.tc(fn ->
        Lockstep.check(
          fn ->
            me = self()
            other = spawn(fn -> receive(do: (:never -> send(me, :x))) end)
            send(other, :hello)
            receive(do: (:never -> :ok))
          end,
          iterations: 1,
          timeout: 5_000
        )
      end)

    assert bug.kind == :deadlock
    assert elapsed < 2_000_000
  end
end
