defmodule Lockstep.VirtualTimeTest do
  # Virtual time (SPEC §1 `:timers`, §2): now/sleep/send_after/cancel_timer and
  # `Lockstep.receive … after` count virtual milliseconds and cost no wall time.
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.BugFound
  import Lockstep.TestSupport

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

  @hour 3_600_000

  describe "the clock" do
    test "starts at 0 and does not move without timers" do
      value =
        result(
          fn ->
            t0 = Lockstep.now()
            me = self()
            Lockstep.spawn(fn -> Lockstep.send(me, :hi) end)
            :hi = Lockstep.recv()
            Lockstep.yield()
            {t0, Lockstep.now()}
          end,
          iterations: 20,
          seed: 1
        )

      assert value == {0, 0}
    end

    test "sleep advances now() by exactly the sleep; a one-hour sleep costs no wall time" do
      started = System.monotonic_time(:millisecond)

      value =
        result(
          fn ->
            t0 = Lockstep.now()
            :ok = Lockstep.sleep(250)
            t1 = Lockstep.now()
            :ok = Lockstep.sleep(@hour)
            t2 = Lockstep.now()
            :ok = Lockstep.sleep(0)
            {t0, t1, t2, Lockstep.now()}
          end,
          iterations: 20,
          seed: 2
        )

      assert value == {0, 250, 250 + @hour, 250 + @hour}
      # 20 iterations of an hour each: far less than a second of wall time.
      assert System.monotonic_time(:millisecond) - started < 2_000
    end

    test "receive … after times out after exactly its timeout in virtual time" do
      value =
        result(
          fn ->
            first =
              Lockstep.receive do
                :never -> :got
              after
                250 -> {:timeout, Lockstep.now()}
              end

            second =
              Lockstep.receive do
                :never -> :got
              after
                @hour -> {:timeout, Lockstep.now()}
              end

            zero =
              Lockstep.receive do
                :never -> :got
              after
                0 -> {:timeout, Lockstep.now()}
              end

            {first, second, zero}
          end,
          iterations: 20,
          seed: 3
        )

      assert value == {{:timeout, 250}, {:timeout, 250 + @hour}, {:timeout, 250 + @hour}}
    end

    test "receive … after returns a message arriving before the timeout, at its time" do
      value =
        result(
          fn ->
            me = self()

            Lockstep.spawn(fn ->
              Lockstep.sleep(100)
              Lockstep.send(me, :early)
            end)

            got =
              Lockstep.receive do
                :early -> {:early, Lockstep.now()}
              after
                1_000 -> {:timeout, Lockstep.now()}
              end

            # Its timer was cancelled: the clock is not pushed to 1_000 later on.
            Lockstep.sleep(10)
            {got, Lockstep.now()}
          end,
          iterations: 30,
          seed: 4
        )

      assert value == {{:early, 100}, 110}
    end

    test "sleeping processes wake in deadline order, each at its own time" do
      value =
        result(
          fn ->
            me = self()

            for {name, ms} <- [c: 300, a: 100, b: 200] do
              Lockstep.spawn(fn ->
                Lockstep.sleep(ms)
                Lockstep.send(me, {name, Lockstep.now()})
              end)
            end

            for _ <- 1..3, do: Lockstep.recv()
          end,
          iterations: 50,
          seed: 5
        )

      assert value == [a: 100, b: 200, c: 300]
    end
  end

  describe "send_after/3" do
    test "delivers at the right virtual time, earliest first" do
      value =
        result(
          fn ->
            me = self()
            r1 = Lockstep.send_after(me, :late, 300)
            r2 = Lockstep.send_after(me, :early, 100)
            true = is_reference(r1) and is_reference(r2)
            a = Lockstep.receive(do: (msg -> {msg, Lockstep.now()}))
            b = Lockstep.receive(do: (msg -> {msg, Lockstep.now()}))
            [a, b]
          end,
          iterations: 20,
          seed: 11
        )

      assert value == [early: 100, late: 300]
    end

    test "counts from the time it was started and works with a registered name" do
      value =
        result(
          fn ->
            me = self()
            Lockstep.register(:root, me)
            Lockstep.sleep(40)

            Lockstep.spawn(fn ->
              Lockstep.send_after(:root, {:tick, Lockstep.now()}, 60)
            end)

            Lockstep.receive do
              {:tick, started} -> {started, Lockstep.now()}
            end
          end,
          iterations: 20,
          seed: 12
        )

      assert value == {40, 100}
    end

    test "the trace shows the timer starting and firing at its deadline" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(
                 fn ->
                   Lockstep.send_after(self(), :tick, 500)
                   :tick = Lockstep.recv()
                   raise "at #{Lockstep.now()}"
                 end,
                 iterations: 1,
                 seed: 13,
                 trace_dir: tmp_dir!()
               )

      assert {:error, %RuntimeError{message: "at 500"}, _} = bug.reason
      events = events(bug.trace)
      assert {:timer_started, "P", 500} in events
      assert {:timer_fired, "P", 500} in events
    end
  end

  describe "cancel_timer/1" do
    test "returns the ms left, then false once cancelled or fired" do
      value =
        result(
          fn ->
            ref = Lockstep.send_after(self(), :tick, 1_000)
            Lockstep.sleep(400)
            left = Lockstep.cancel_timer(ref)
            again = Lockstep.cancel_timer(ref)

            fired = Lockstep.send_after(self(), :fired, 10)
            :fired = Lockstep.recv()
            after_fire = Lockstep.cancel_timer(fired)

            # The cancelled :tick never arrives, even long after its deadline.
            Lockstep.sleep(5_000)

            stale =
              Lockstep.receive do
                :tick -> :tick_arrived
              after
                0 -> :none
              end

            {left, again, after_fire, stale}
          end,
          iterations: 20,
          seed: 21
        )

      assert value == {600, false, false, :none}
    end

    test "a cancelled timer's tick racing the work is not found with timers: :on_idle" do
      summary =
        Lockstep.run(cancelled_tick_body(),
          timers: :on_idle,
          iterations: 300,
          seed: 22
        )

      assert summary.iterations == 300
      assert summary.distinct_schedules > 1
    end

    test "a cancelled timer's tick racing the work is found with timers: :anytime" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(cancelled_tick_body(),
                 timers: :anytime,
                 iterations: 300,
                 seed: 22,
                 trace_dir: tmp_dir!()
               )

      assert bug.kind == :exception
      assert bug.process == "P"
      # The tick was already delivered, so the cancel came too late.
      assert {:error, %RuntimeError{message: "tick after cancel (cancel_timer returned false)"},
              _} = bug.reason

      # Firing the timer was a decision of the schedule.
      assert Enum.any?(bug.schedule, &match?({:fire, "P", _}, &1))
      events = events(bug.trace)
      assert {:timer_started, "P", 100} in events
      # The timer fired, at its deadline, while the work could still run.
      assert {:timer_fired, "P", 100} in events

      fired = Enum.find_index(events, &(&1 == {:timer_fired, "P", 100}))
      cancelled = Enum.find_index(events, &match?({:timer_cancelled, "P", _}, &1))
      assert cancelled == nil or fired < cancelled
    end
  end

  # The root arms a timeout, does some work with a helper (several sync points), then
  # cancels the timeout and assumes no :tick can ever arrive. With :on_idle the timer
  # cannot fire while the work can run; with :anytime it can fire in the middle.
  defp cancelled_tick_body do
    fn ->
      me = self()
      ref = Lockstep.send_after(me, :tick, 100)

      helper =
        Lockstep.spawn(fn ->
          for n <- 1..3 do
            Lockstep.receive do
              {:work, ^n} -> Lockstep.send(me, {:done, n})
            end
          end
        end)

      for n <- 1..3 do
        Lockstep.send(helper, {:work, n})
        Lockstep.receive(do: ({:done, ^n} -> :ok))
      end

      left = Lockstep.cancel_timer(ref)
      Lockstep.send(me, :next)

      case Lockstep.recv() do
        :next -> :ok
        :tick -> raise "tick after cancel (cancel_timer returned #{inspect(left)})"
      end
    end
  end
end
