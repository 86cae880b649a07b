defmodule Lockstep.OTP.GenStatemTest do
  # Real :gen_statem code under control: state, event and generic timeouts in virtual time,
  # postponed events, and :sys.get_state/1 — each program run on the plain BEAM and under
  # Lockstep, with the same outcome.
  use Lockstep.Test, async: true

  alias Lockstep.TestSupport.OTP.{Compare, Door, Server}

  defp same_as_plain(program, opts \\ []) do
    expected = Compare.plain(program)
    opts = Keyword.put_new(opts, :instrument, [Door, Server])
    {outcomes, _summary} = Compare.controlled(program, opts)
    assert outcomes == [expected]
    expected
  end

  test "a state timeout relocks the door after open_ms, in virtual time" do
    assert {:ok, {:opened, {:open, [:opened]}, {:locked, [:opened, :relocked]}, true}} =
             same_as_plain(fn ->
               {:ok, door} = Door.start_link(:secret, 50)
               opened = Door.press(door, :secret)
               right_after = Door.events(door)
               started = System.monotonic_time(:millisecond)
               Process.sleep(100)
               later = Door.events(door)
               {opened, right_after, later, System.monotonic_time(:millisecond) - started >= 100}
             end)
  end

  test "an hour-long state timeout costs no wall time under Lockstep" do
    {wall_us, {outcomes, _}} =
      :timer.tc(fn ->
        Compare.controlled(
          fn ->
            {:ok, door} = Door.start_link(:secret, 3_600_000)
            :opened = Door.press(door, :secret)
            started = System.monotonic_time(:millisecond)
            Process.sleep(3_600_001)
            {Door.events(door), System.monotonic_time(:millisecond) - started}
          end,
          instrument: [Door],
          iterations: 5
        )
      end)

    assert outcomes == [{:ok, {{:locked, [:opened, :relocked]}, 3_600_001}}]
    assert wall_us < 5_000_000
  end

  test "leaving the state cancels its state timeout" do
    assert {:ok, {:locked, [:opened, :locked_by_cast]}} =
             same_as_plain(fn ->
               {:ok, door} = Door.start_link(:secret, 50)
               :opened = Door.press(door, :secret)
               :ok = Door.lock(door)
               Process.sleep(100)
               Door.events(door)
             end)
  end

  test "a postponed event is retried after the state changes" do
    assert {:ok, {:wrong_code, :opened, {:locked, [:lock_postponed, :opened, :locked_by_cast]}}} =
             same_as_plain(fn ->
               {:ok, door} = Door.start_link(:secret, 5_000)
               :ok = Door.lock(door)
               wrong = Door.press(door, :guess)
               opened = Door.press(door, :secret)
               {wrong, opened, Door.events(door)}
             end)
  end

  test "an event timeout fires when no event comes, and any event cancels it" do
    assert {:ok, {{:locked, [:idle]}, {:locked, [:idle]}}} =
             same_as_plain(fn ->
               {:ok, door} = Door.start_link(:secret, 5_000)
               :ok = Door.idle_in(door, 50)
               Process.sleep(100)
               fired = Door.events(door)
               :ok = Door.idle_in(door, 50)
               # This call is an event: it cancels the timeout just set.
               _ = Door.events(door)
               Process.sleep(100)
               {fired, Door.events(door)}
             end)
  end

  test "a generic timeout survives other events" do
    assert {:ok, {{:locked, []}, {:locked, [:ping]}}} =
             same_as_plain(fn ->
               {:ok, door} = Door.start_link(:secret, 5_000)
               :ok = Door.ping_in(door, 50)
               before = Door.events(door)
               Process.sleep(100)
               {before, Door.events(door)}
             end)
  end

  describe ":sys.get_state/1" do
    test "of a :gen_statem is {state, data}; of a GenServer its state; of an Agent its value" do
      assert {:ok,
              {{:open, %{code: :secret, open_ms: 5_000, events: [:opened]}}, 7, 8, :replaced}} =
               same_as_plain(fn ->
                 {:ok, door} = Door.start_link(:secret, 5_000)
                 :opened = Door.press(door, :secret)
                 {:ok, server} = Server.start_link({:ok, 7})
                 {:ok, agent} = Agent.start_link(fn -> 8 end)
                 server_state = :sys.get_state(server)
                 :replaced = :sys.replace_state(server, fn 7 -> :replaced end)

                 {:sys.get_state(door), server_state, :sys.get_state(agent),
                  GenServer.call(server, :get)}
               end)
    end

    test "of a dead process exits like OTP" do
      assert {:exit, {:noproc, {:sys, :get_state, [:pid]}}} =
               same_as_plain(fn ->
                 {:ok, server} = Server.start({:ok, 1})
                 :ok = GenServer.stop(server)
                 :sys.get_state(server)
               end)
    end
  end
end
