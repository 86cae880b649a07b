defmodule Lockstep.Instrument.CalendarTimeTest do
  # Instrumented code that stamps with Elixir's calendar functions (DateTime.utc_now/0 and
  # friends, which read os:system_time/0 inside Elixir) sees the run's one virtual clock:
  # the same clock as System.system_time/1, Process.sleep/1 and `after`.
  use Lockstep.Test, async: true

  alias Lockstep.Instrument.Ops.Time, as: Ops
  alias Lockstep.OpsSupport.Real.Time, as: Real

  import Lockstep.OpsSupport

  @epoch ~U[2026-01-01 00:00:00.000000Z]

  ctest "a timestamp starts at the virtual epoch and moves with a sleep", iterations: 3 do
    t0 = DateTime.utc_now()
    Process.sleep(1_500)
    t1 = DateTime.utc_now()

    assert t0 == @epoch
    assert DateTime.diff(t1, t0, :millisecond) == 1_500
    assert NaiveDateTime.utc_now() == ~N[2026-01-01 00:00:01.500000]
    assert Date.utc_today() == ~D[2026-01-01]
    assert Time.utc_now() == ~T[00:00:01.500000]
    assert {:ok, ^t1} = DateTime.now("Etc/UTC")
    assert :erlang.universaltime() == {{2026, 1, 1}, {0, 0, 1}}
    assert :calendar.universal_time() == {{2026, 1, 1}, {0, 0, 1}}
    assert :calendar.local_time() == :erlang.universaltime_to_localtime({{2026, 1, 1}, {0, 0, 1}})
    # The same instant as System.system_time/1.
    assert DateTime.to_unix(t1, :millisecond) == System.system_time(:millisecond)
  end

  # A cache entry stamped with DateTime and an expiry checked after a virtual wait: with
  # wall-clock stamps the entry would still look fresh after a "sleep" of two seconds.
  ctest "an expiry computed with DateTime.add/3 passes after a virtual sleep", iterations: 3 do
    expires = DateTime.add(DateTime.utc_now(), 1, :second)
    me = self()

    spawn(fn ->
      Process.sleep(2_000)
      send(me, {:expired?, DateTime.compare(DateTime.utc_now(), expires) == :gt})
    end)

    assert_receive {:expired?, true}, 5_000
  end

  test "results have OTP's and Elixir's shapes and errors, on the virtual clock" do
    program = fn m ->
      {:ok, now} = m.datetime_now("Etc/UTC")

      {m.datetime_utc_now().__struct__, m.datetime_utc_now(Calendar.ISO).calendar, now.time_zone,
       m.datetime_now("Europe/Paris"), m.naive_datetime_utc_now().__struct__,
       m.naive_datetime_local_now().microsecond, m.date_utc_today().__struct__,
       m.time_utc_now(Calendar.ISO).__struct__, tuple_size(m.universaltime()),
       tuple_size(m.localtime()), tuple_size(m.calendar_universal_time()),
       tuple_size(m.calendar_local_time())}
    end

    real = plain(fn -> program.(Real) end)

    assert {:ok,
            {DateTime, Calendar.ISO, "Etc/UTC", {:error, :utc_only_time_zone_database}, _, {0, 0},
             Date, Time, 2, 2, 2, 2}} = real

    assert managed(fn -> program.(Ops) end) == real

    # A calendar that is not one fails in both, the same way.
    bad = fn m -> m.datetime_utc_now(:not_a_calendar) end
    assert {:error, :undef, _} = plain(fn -> bad.(Real) end)
    assert managed(fn -> bad.(Ops) end) == plain(fn -> bad.(Real) end)
  end
end
