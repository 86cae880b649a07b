defmodule Lockstep.OTP.TimerTest do
  # OTP's :timer (instrumented with OTP's process machinery): send_after and cancel are
  # erlang:send_after and cancel_timer underneath, so under control they are virtual-time
  # timers of the run; :timer.sleep and :timer.tc count virtual ms.
  use Lockstep.Test, async: true

  alias Lockstep.TestSupport.OTP.Compare

  test "send_after, cancel and tc as on the plain BEAM" do
    program = fn ->
      {:ok, cancelled} = :timer.send_after(30, self(), :cancelled)
      {:ok, _} = :timer.send_after(20, self(), :tick)
      {:ok, :cancel} = :timer.cancel(cancelled)
      {micros, got} = :timer.tc(fn -> receive(do: (:tick -> :tick)) end)
      :timer.sleep(40)
      leftover = receive(do: (message -> {:leftover, message}), after: (0 -> :none))
      {got, micros >= 15_000, leftover}
    end

    expected = Compare.plain(program)
    assert expected == {:ok, {:tick, true, :none}}
    assert {[^expected], _} = Compare.controlled(program)
  end

  test "an hour-long :timer.send_after costs no wall time under control" do
    {wall_us, {outcomes, _}} =
      :timer.tc(fn ->
        Compare.controlled(
          fn ->
            {:ok, _} = :timer.send_after(3_600_000, self(), :late)
            started = System.monotonic_time(:millisecond)
            receive(do: (:late -> System.monotonic_time(:millisecond) - started))
          end,
          iterations: 3
        )
      end)

    assert outcomes == [{:ok, 3_600_000}]
    assert wall_us < 5_000_000
  end
end
