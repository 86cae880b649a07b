defmodule Lockstep.Instrument.Ops.Time do
  @moduledoc """
  Timers, time and randomness for instrumented code (SPEC §9): what a call to
  `erlang:send_after/3`, `Process.sleep/1`, `System.monotonic_time/1`, `:rand.uniform/1`…
  becomes in a managed process.

  `Lockstep.Instrument` rewrites each call listed in `__ops__/0` so that, in a managed
  process, the function of the same arguments here runs instead. Each one does what the
  original does in OTP 25 — same results, same exceptions (class, reason, and the error
  details Elixir prints) — on Lockstep's virtual clock, as a sync point of the run:

    * **Timers** — `erlang:send_after/3,4`, `erlang:start_timer/3,4` (message
      `{:timeout, ref, msg}`), `erlang:cancel_timer/1,2` (`{:async, bool}`, `{:info, bool}`;
      async with info sends `{:cancel_timer, ref, result}` to the caller),
      `erlang:read_timer/1,2` (async: `{:read_timer, ref, result}`), and Elixir's
      `Process.send_after/3,4`, `Process.cancel_timer/1,2`, `Process.read_timer/1`, which
      call those. A timer's time is virtual ms; `[abs: true]` counts from the virtual
      monotonic clock (one before 0, when the iteration
      started, is a `badarg`, as one before the VM started is in OTP). A destination that is a name is looked up when the timer fires (a
      name nobody holds then: the message is lost, as in OTP); to a pid outside the run
      the message is a real send when the timer fires.
    * **Sleeping** — `Process.sleep/1` and `:timer.sleep/1`, with their own guards.
    * **Time** — `erlang:monotonic_time/0,1` starts at 0 when the iteration starts, like
      `Lockstep.now/0`; `erlang:system_time/0,1` and `os:system_time/0,1` start at
      2026-01-01T00:00:00Z and move with the virtual clock; `erlang:timestamp/0` and
      `os:timestamp/0` are the same system time as `{mega, secs, micro}`; `System.monotonic_time/0,1`,
      `System.system_time/0,1` and `System.os_time/0,1` on top, with Elixir's unit names
      (its deprecated plurals included); `erlang:time_offset/0,1` and
      `System.time_offset/0,1` are the constant difference; `erlang:universaltime/0`,
      `erlang:localtime/0`, `calendar:universal_time/0` and `calendar:local_time/0` are
      that system time as a calendar date and time, and so are Elixir's
      `DateTime.utc_now/0,1`, `DateTime.now/1,2`, `NaiveDateTime.utc_now/0,1`,
      `NaiveDateTime.local_now/0,1`, `Date.utc_today/0,1` and `Time.utc_now/0,1` (which read
      `os:system_time/0` inside Elixir, where the instrumenter does not reach). Every unit OTP accepts works (`:second`,
      `:millisecond`, `:microsecond`, `:nanosecond`, `:native`, `:perf_counter`, parts per
      second as an integer, the deprecated `:seconds`…), converted with
      `erlang:convert_time_unit/3`, so `convert_time_unit(monotonic_time(:native), :native,
      :millisecond)` is the virtual ms. The clock moves only when a timer fires: code that
      measures how long something took measures virtual time.
    * **Randomness** — `:rand.uniform/1` is a choice of the strategy, like
      `Lockstep.random/1`: recorded in the schedule, replayed, explored (for `n` up to
      2^64; a larger `n` draws from the process's seeded state). The other draws
      (`uniform/0`, `uniform_real/0`, `normal/0,2`, `bytes/1`, `jump/0`) use the process's
      own `:rand` state, seeded on its first draw from the iteration seed and its
      spawn-tree name, so they replay exactly and do not depend on the interleaving; a
      seed the program set with `:rand.seed/1,2` stands, as in OTP. (Seeding costs about
      2 µs, so it is done on the first draw rather than at every spawn.)

  Elixir's compiler turns `Process.send_after/3,4`, `Process.cancel_timer/1`,
  `Process.read_timer/1` and `System.monotonic_time/0`, `System.system_time/0`,
  `System.os_time/0`, `System.time_offset/0` into the `:erlang`/`:os` calls they wrap;
  their entries here serve the calls that stay remote (`apply/3`, `&Process.send_after/3`).

  Every function here expects to be called from a managed process (the instrumenter only
  calls it from one); anywhere else it raises `Lockstep.NotManagedError`.
  """

  alias Lockstep.{Runtime, Timeout}

  @epoch_ms 1_767_225_600_000
  @max_after Timeout.max_receive()
  @max_u64 18_446_744_073_709_551_615

  @erlang_units [:second, :millisecond, :microsecond, :nanosecond, :native, :perf_counter] ++
                  [:seconds, :milli_seconds, :micro_seconds, :nano_seconds]
  @elixir_units [:native, :second, :millisecond, :microsecond, :nanosecond]
  @elixir_plurals %{
    seconds: :second,
    milliseconds: :millisecond,
    microseconds: :microsecond,
    nanoseconds: :nanosecond,
    milli_seconds: :millisecond,
    micro_seconds: :microsecond,
    nano_seconds: :nanosecond
  }

  defguardp erlang_unit?(u) when u in @erlang_units or (is_integer(u) and u > 0)

  @doc false
  def __ops__ do
    [
      {{:erlang, :send_after, 3}, :send_after},
      {{:erlang, :send_after, 4}, :send_after},
      {{:erlang, :start_timer, 3}, :start_timer},
      {{:erlang, :start_timer, 4}, :start_timer},
      {{:erlang, :cancel_timer, 1}, :cancel_timer},
      {{:erlang, :cancel_timer, 2}, :cancel_timer},
      {{:erlang, :read_timer, 1}, :read_timer},
      {{:erlang, :read_timer, 2}, :read_timer},
      {{Process, :send_after, 3}, :process_send_after},
      {{Process, :send_after, 4}, :process_send_after},
      {{Process, :cancel_timer, 1}, :process_cancel_timer},
      {{Process, :cancel_timer, 2}, :process_cancel_timer},
      {{Process, :read_timer, 1}, :process_read_timer},
      {{Process, :sleep, 1}, :process_sleep},
      {{:timer, :sleep, 1}, :timer_sleep},
      {{:erlang, :monotonic_time, 0}, :monotonic_time},
      {{:erlang, :monotonic_time, 1}, :monotonic_time},
      {{:erlang, :system_time, 0}, :system_time},
      {{:erlang, :system_time, 1}, :system_time},
      {{:erlang, :timestamp, 0}, :timestamp},
      {{:os, :system_time, 0}, :os_system_time},
      {{:os, :system_time, 1}, :os_system_time},
      {{:os, :timestamp, 0}, :os_timestamp},
      {{System, :monotonic_time, 0}, :system_monotonic_time},
      {{System, :monotonic_time, 1}, :system_monotonic_time},
      {{System, :system_time, 0}, :system_system_time},
      {{System, :system_time, 1}, :system_system_time},
      {{System, :os_time, 0}, :system_os_time},
      {{System, :os_time, 1}, :system_os_time},
      {{:rand, :uniform, 0}, :rand_uniform},
      {{:rand, :uniform, 1}, :rand_uniform},
      {{:rand, :uniform_real, 0}, :rand_uniform_real},
      {{:rand, :normal, 0}, :rand_normal},
      {{:rand, :normal, 2}, :rand_normal},
      {{:rand, :bytes, 1}, :rand_bytes},
      {{:rand, :jump, 0}, :rand_jump},
      {{:erlang, :time_offset, 0}, :time_offset},
      {{:erlang, :time_offset, 1}, :time_offset},
      {{System, :time_offset, 0}, :system_time_offset},
      {{System, :time_offset, 1}, :system_time_offset},
      {{:erlang, :universaltime, 0}, :universaltime},
      {{:erlang, :localtime, 0}, :localtime},
      {{:calendar, :universal_time, 0}, :calendar_universal_time},
      {{:calendar, :local_time, 0}, :calendar_local_time},
      {{DateTime, :utc_now, 0}, :datetime_utc_now},
      {{DateTime, :utc_now, 1}, :datetime_utc_now},
      {{DateTime, :now, 1}, :datetime_now},
      {{DateTime, :now, 2}, :datetime_now},
      {{NaiveDateTime, :utc_now, 0}, :naive_datetime_utc_now},
      {{NaiveDateTime, :utc_now, 1}, :naive_datetime_utc_now},
      {{NaiveDateTime, :local_now, 0}, :naive_datetime_local_now},
      {{NaiveDateTime, :local_now, 1}, :naive_datetime_local_now},
      {{Date, :utc_today, 0}, :date_utc_today},
      {{Date, :utc_today, 1}, :date_utc_today},
      {{Time, :utc_now, 0}, :time_utc_now},
      {{Time, :utc_now, 1}, :time_utc_now}
    ]
  end

  # Timers --------------------------------------------------------------------------------

  @doc "`erlang:send_after/3`: `msg` is sent to `dest` after `time` virtual ms."
  @spec send_after(integer(), pid() | atom(), term()) :: reference()
  @spec send_after(integer(), pid() | atom(), term(), list()) :: reference()
  def send_after(time, dest, msg),
    do: timer(:send_after, time, dest, msg, [], [time, dest, msg])

  def send_after(time, dest, msg, options),
    do: timer(:send_after, time, dest, msg, options, [time, dest, msg, options])

  @doc "`erlang:start_timer/3,4`: like `send_after/4`, the message is `{:timeout, ref, msg}`."
  @spec start_timer(integer(), pid() | atom(), term()) :: reference()
  @spec start_timer(integer(), pid() | atom(), term(), list()) :: reference()
  def start_timer(time, dest, msg),
    do: timer(:start_timer, time, dest, msg, [], [time, dest, msg])

  def start_timer(time, dest, msg, options),
    do: timer(:start_timer, time, dest, msg, options, [time, dest, msg, options])

  # OTP checks the options, then the time, then the destination, before it starts
  # anything; the error's cause says which was wrong. `args` are the caller's, for the
  # error's stack frame.
  defp timer(kind, time, dest, msg, options, args) do
    with {:options, {:ok, abs?}} <- {:options, abs_option(options, false)},
         {:time, {:ok, ms}} <- {:time, delay(time, abs?)},
         {:dest, true} <- {:dest, is_pid(dest) or is_atom(dest)},
         ref when is_reference(ref) <- Runtime.timer(kind, dest, msg, ms) do
      ref
    else
      {:options, _} -> badarg!(:erlang, kind, args, cause: :badopt)
      {:time, _} -> badarg!(:erlang, kind, args, cause: :time)
      _ -> badarg!(:erlang, kind, args)
    end
  end

  defp abs_option([], abs?), do: {:ok, abs?}
  defp abs_option([{:abs, abs?} | rest], _) when is_boolean(abs?), do: abs_option(rest, abs?)
  defp abs_option(_, _), do: :error

  # The delay from now in virtual ms; the deadline must fit OTP's monotonic clock
  # (Lockstep.Timeout). An absolute time in the past fires at once, as in OTP.
  defp delay(time, false) when is_integer(time) and time >= 0 and time <= @max_after,
    do: {:ok, time}

  defp delay(time, false) when is_integer(time) and time >= 0 do
    if Runtime.clock() + time <= Timeout.max_deadline(), do: {:ok, time}, else: :error
  end

  # OTP refuses an absolute time before the VM started (virtual: before 0).
  defp delay(time, true) when is_integer(time) and time >= 0 do
    if time <= Timeout.max_deadline(), do: {:ok, max(time - Runtime.clock(), 0)}, else: :error
  end

  defp delay(_time, _abs?), do: :error

  @doc """
  `erlang:cancel_timer/1,2`: the ms the timer had left, or `false` when it had fired or was
  cancelled; `:ok` with `info: false` or `async: true` (then, with `info`, the result comes
  as `{:cancel_timer, ref, result}`).
  """
  @spec cancel_timer(reference()) :: non_neg_integer() | false
  @spec cancel_timer(reference(), list()) :: non_neg_integer() | false | :ok
  def cancel_timer(ref) when is_reference(ref), do: Runtime.cancel_timer(ref, false, true)
  def cancel_timer(ref), do: badarg!(:erlang, :cancel_timer, [ref])

  def cancel_timer(ref, options) when is_reference(ref) do
    case cancel_options(options, false, true) do
      {:ok, async?, info?} -> Runtime.cancel_timer(ref, async?, info?)
      :error -> badarg!(:erlang, :cancel_timer, [ref, options])
    end
  end

  def cancel_timer(ref, options), do: badarg!(:erlang, :cancel_timer, [ref, options])

  defp cancel_options([], async?, info?), do: {:ok, async?, info?}

  defp cancel_options([{:async, a} | rest], _, info?) when is_boolean(a),
    do: cancel_options(rest, a, info?)

  defp cancel_options([{:info, i} | rest], async?, _) when is_boolean(i),
    do: cancel_options(rest, async?, i)

  defp cancel_options(_, _, _), do: :error

  @doc """
  `erlang:read_timer/1,2`: the ms the timer has left, or `false`; with `async: true`, `:ok`
  and the message `{:read_timer, ref, result}`.
  """
  @spec read_timer(reference()) :: non_neg_integer() | false
  @spec read_timer(reference(), list()) :: non_neg_integer() | false | :ok
  def read_timer(ref) when is_reference(ref), do: Runtime.read_timer(ref, false)
  def read_timer(ref), do: badarg!(:erlang, :read_timer, [ref])

  def read_timer(ref, options) when is_reference(ref) do
    case read_options(options, false) do
      {:ok, async?} -> Runtime.read_timer(ref, async?)
      :error -> badarg!(:erlang, :read_timer, [ref, options])
    end
  end

  def read_timer(ref, options), do: badarg!(:erlang, :read_timer, [ref, options])

  defp read_options([], async?), do: {:ok, async?}
  defp read_options([{:async, a} | rest], _) when is_boolean(a), do: read_options(rest, a)
  defp read_options(_, _), do: :error

  @doc "`Process.send_after/3,4`: `erlang:send_after(time, dest, msg, opts)`."
  @spec process_send_after(pid() | atom(), term(), integer(), list()) :: reference()
  def process_send_after(dest, msg, time, opts \\ []), do: send_after(time, dest, msg, opts)

  @doc "`Process.cancel_timer/1,2`: `erlang:cancel_timer(ref, opts)`."
  @spec process_cancel_timer(reference(), list()) :: non_neg_integer() | false | :ok
  def process_cancel_timer(ref, opts \\ []), do: cancel_timer(ref, opts)

  @doc "`Process.read_timer/1`: `erlang:read_timer(ref)`."
  @spec process_read_timer(reference()) :: non_neg_integer() | false
  def process_read_timer(ref), do: read_timer(ref)

  # Sleeping ------------------------------------------------------------------------------

  @doc """
  `Process.sleep/1`: waits `ms` virtual ms (`:infinity`: forever), leaving the mailbox
  alone; its guard's `FunctionClauseError` for anything else.
  """
  @spec process_sleep(timeout()) :: :ok
  if Version.compare(System.version(), "1.18.0-dev") == :lt do
    # Before 1.18 `Process.sleep/1` waits in one receive, which refuses a time above the
    # largest `after` at once: the real call raises its own `timeout_value`.
    def process_sleep(ms) when is_integer(ms) and ms > @max_after, do: Process.sleep(ms)
  end

  def process_sleep(ms) when (is_integer(ms) and ms >= 0) or ms == :infinity,
    do: Runtime.sleep(ms)

  # The guard fails: the real call raises at once, before it waits.
  def process_sleep(ms), do: Process.sleep(ms)

  @doc """
  `:timer.sleep/1`: waits `ms` virtual ms, in steps of the largest `after` for a longer
  time, as `timer:sleep/1` does; `:timeout_value` for a time a receive refuses.
  """
  @spec timer_sleep(timeout()) :: :ok
  def timer_sleep(ms) when is_integer(ms) and ms > @max_after do
    Runtime.sleep(@max_after)
    timer_sleep(ms - @max_after)
  end

  def timer_sleep(ms) when (is_integer(ms) and ms >= 0) or ms == :infinity,
    do: Runtime.sleep(ms)

  # `receive after ms` raises `timeout_value` at once for this value, as :timer.sleep's
  # does (not through :timer itself: instrumented with OTP, its receive is a sync point
  # whose error for a bad `after` says more than OTP's).
  def timer_sleep(_ms), do: :erlang.error(:timeout_value)

  # Time ----------------------------------------------------------------------------------

  @doc "`erlang:monotonic_time/0,1`: virtual time since the iteration started, in `unit`."
  @spec monotonic_time() :: integer()
  @spec monotonic_time(:erlang.time_unit()) :: integer()
  def monotonic_time, do: monotonic_time(:native)

  def monotonic_time(unit) when erlang_unit?(unit),
    do: :erlang.convert_time_unit(Runtime.now(), :millisecond, unit)

  def monotonic_time(unit), do: badarg!(:erlang, :monotonic_time, [unit])

  @doc "`erlang:system_time/0,1`: 2026-01-01T00:00:00Z plus the virtual clock, in `unit`."
  @spec system_time() :: integer()
  @spec system_time(:erlang.time_unit()) :: integer()
  def system_time, do: system_time(:native)

  def system_time(unit) when erlang_unit?(unit),
    do: :erlang.convert_time_unit(@epoch_ms + Runtime.now(), :millisecond, unit)

  def system_time(unit), do: badarg!(:erlang, :system_time, [unit])

  @doc "`os:system_time/0,1`: the same virtual system time as `system_time/1`."
  @spec os_system_time() :: integer()
  @spec os_system_time(:erlang.time_unit()) :: integer()
  def os_system_time, do: system_time(:native)

  def os_system_time(unit) when erlang_unit?(unit), do: system_time(unit)
  def os_system_time(unit), do: badarg!(:os, :system_time, [unit], module: :erl_kernel_errors)

  @doc """
  `erlang:time_offset/0,1`: system time minus monotonic time, a constant under Lockstep
  (2026-01-01T00:00:00Z since the iteration started), in `unit`.
  """
  @spec time_offset() :: integer()
  @spec time_offset(:erlang.time_unit()) :: integer()
  def time_offset, do: time_offset(:native)

  def time_offset(unit) when erlang_unit?(unit),
    do: :erlang.convert_time_unit(@epoch_ms, :millisecond, unit)

  def time_offset(unit), do: badarg!(:erlang, :time_offset, [unit])

  @doc "`erlang:timestamp/0`: the virtual system time as `{mega_secs, secs, micro_secs}`."
  @spec timestamp() :: :erlang.timestamp()
  def timestamp do
    us = system_time(:microsecond)
    {div(us, 1_000_000_000_000), rem(div(us, 1_000_000), 1_000_000), rem(us, 1_000_000)}
  end

  @doc "`os:timestamp/0`: as `timestamp/0`."
  @spec os_timestamp() :: :erlang.timestamp()
  def os_timestamp, do: timestamp()

  @doc "`System.monotonic_time/0,1`, with Elixir's unit names."
  @spec system_monotonic_time() :: integer()
  @spec system_monotonic_time(System.time_unit()) :: integer()
  def system_monotonic_time, do: monotonic_time(:native)
  def system_monotonic_time(unit), do: monotonic_time(elixir_unit(unit))

  @doc "`System.system_time/0,1`, with Elixir's unit names."
  @spec system_system_time() :: integer()
  @spec system_system_time(System.time_unit()) :: integer()
  def system_system_time, do: system_time(:native)
  def system_system_time(unit), do: system_time(elixir_unit(unit))

  @doc "`System.time_offset/0,1`, with Elixir's unit names."
  @spec system_time_offset() :: integer()
  @spec system_time_offset(System.time_unit()) :: integer()
  def system_time_offset, do: time_offset(:native)
  def system_time_offset(unit), do: time_offset(elixir_unit(unit))

  @doc "`System.os_time/0,1`, with Elixir's unit names."
  @spec system_os_time() :: integer()
  @spec system_os_time(System.time_unit()) :: integer()
  def system_os_time, do: os_system_time(:native)
  def system_os_time(unit), do: os_system_time(elixir_unit(unit))

  @doc """
  `erlang:universaltime/0` (and `calendar:universal_time/0`, which calls it): the virtual
  system time as `{{year, month, day}, {hour, minute, second}}` in UTC.
  """
  @spec universaltime() :: :calendar.datetime()
  def universaltime, do: :calendar.system_time_to_universal_time(system_time(:second), :second)

  @doc """
  `erlang:localtime/0` (and `calendar:local_time/0`): the virtual system time in the
  machine's time zone, converted as OTP converts it (`erlang:universaltime_to_localtime/1`).
  """
  @spec localtime() :: :calendar.datetime()
  def localtime, do: :erlang.universaltime_to_localtime(universaltime())

  @doc "`calendar:universal_time/0`: `universaltime/0`."
  @spec calendar_universal_time() :: :calendar.datetime()
  def calendar_universal_time, do: universaltime()

  @doc "`calendar:local_time/0`: `localtime/0`."
  @spec calendar_local_time() :: :calendar.datetime()
  def calendar_local_time, do: localtime()

  # Elixir's date and time constructors read `os:system_time/0` from inside their own
  # modules, where the instrumenter does not reach: each is rebuilt here on the virtual
  # system time, the way the running Elixir (1.14) builds it from that reading, so code that
  # stamps with `DateTime.utc_now/0` and measures with `System.monotonic_time/1` or sleeps
  # sees one clock.

  @doc "`DateTime.utc_now/0,1`: the virtual system time, in `calendar`."
  @spec datetime_utc_now(Calendar.calendar()) :: DateTime.t()
  def datetime_utc_now(calendar \\ Calendar.ISO),
    do: DateTime.from_unix!(os_system_time(), :native, calendar)

  @doc """
  `DateTime.now/1,2`: the virtual system time in `time_zone` (`"Etc/UTC"` needs no time
  zone database), as `{:ok, datetime}` or `DateTime.now/2`'s errors.
  """
  @spec datetime_now(Calendar.time_zone(), Calendar.time_zone_database()) ::
          {:ok, DateTime.t()} | {:error, :time_zone_not_found | :utc_only_time_zone_database}
  def datetime_now(time_zone, time_zone_database \\ Calendar.get_time_zone_database())

  def datetime_now("Etc/UTC", _time_zone_database), do: {:ok, datetime_utc_now()}

  def datetime_now(time_zone, time_zone_database),
    do: DateTime.shift_zone(datetime_utc_now(), time_zone, time_zone_database)

  @doc "`NaiveDateTime.utc_now/0,1`: the virtual system time, in `calendar`."
  @spec naive_datetime_utc_now(Calendar.calendar()) :: NaiveDateTime.t()
  def naive_datetime_utc_now(calendar \\ Calendar.ISO),
    do: DateTime.to_naive(datetime_utc_now(calendar))

  @doc """
  `NaiveDateTime.local_now/0,1`: the virtual system time in the machine's time zone, to the
  second, in `calendar`.
  """
  @spec naive_datetime_local_now(Calendar.calendar()) :: NaiveDateTime.t()
  def naive_datetime_local_now(calendar \\ Calendar.ISO) do
    {{year, month, day}, {hour, minute, second}} = localtime()
    {:ok, naive} = NaiveDateTime.new(year, month, day, hour, minute, second)

    case NaiveDateTime.convert(naive, calendar) do
      {:ok, converted} ->
        converted

      {:error, :incompatible_calendars} ->
        raise ArgumentError,
              "cannot get \"local now\" in target calendar #{inspect(calendar)}, " <>
                "reason: cannot convert from Calendar.ISO to #{inspect(calendar)}."
    end
  end

  @doc "`Date.utc_today/0,1`: the virtual system time's date, in `calendar`."
  @spec date_utc_today(Calendar.calendar()) :: Date.t()
  def date_utc_today(calendar \\ Calendar.ISO), do: DateTime.to_date(datetime_utc_now(calendar))

  @doc "`Time.utc_now/0,1`: the virtual system time's time of day, in `calendar`."
  @spec time_utc_now(Calendar.calendar()) :: Time.t()
  def time_utc_now(calendar \\ Calendar.ISO),
    do: Time.convert!(DateTime.to_time(datetime_utc_now()), calendar)

  # Elixir's `System.normalize_time_unit/1` (private): a unit it does not know, and
  # `:perf_counter`, raise its `ArgumentError`; a deprecated plural gets its warning. Both
  # come from Elixir itself, by way of the public `System.convert_time_unit/3`.
  defp elixir_unit(unit) when unit in @elixir_units, do: unit
  defp elixir_unit(unit) when is_integer(unit) and unit > 0, do: unit

  defp elixir_unit(unit) do
    System.convert_time_unit(0, unit, :native)
    Map.fetch!(@elixir_plurals, unit)
  end

  # Randomness ----------------------------------------------------------------------------

  @doc """
  `:rand.uniform/0,1`. `uniform(n)` is a choice of the strategy, in `1..n`, recorded and
  replayed (see `Lockstep.random/1`); `uniform()` a float in `[0.0, 1.0)` from the
  process's seeded state. A bad `n` raises what `:rand.uniform/1` raises.
  """
  @spec rand_uniform() :: float()
  def rand_uniform do
    seed!()
    :rand.uniform()
  end

  @spec rand_uniform(pos_integer()) :: pos_integer()
  def rand_uniform(n) when is_integer(n) and n >= 1 and n <= @max_u64, do: Runtime.random(n) + 1

  def rand_uniform(n) do
    seed!()
    :rand.uniform(n)
  end

  @doc "`:rand.uniform_real/0` from the process's seeded state."
  @spec rand_uniform_real() :: float()
  def rand_uniform_real do
    seed!()
    :rand.uniform_real()
  end

  @doc "`:rand.normal/0,2` from the process's seeded state."
  @spec rand_normal() :: float()
  def rand_normal do
    seed!()
    :rand.normal()
  end

  @spec rand_normal(number(), number()) :: float()
  def rand_normal(mean, variance) do
    seed!()
    :rand.normal(mean, variance)
  end

  @doc "`:rand.bytes/1` from the process's seeded state."
  @spec rand_bytes(non_neg_integer()) :: binary()
  def rand_bytes(n) do
    seed!()
    :rand.bytes(n)
  end

  @doc "`:rand.jump/0` on the process's seeded state."
  @spec rand_jump() :: :rand.state()
  def rand_jump do
    seed!()
    :rand.jump()
  end

  # The process's own `:rand` state (under `rand`'s process-dictionary key) is seeded on
  # its first draw through these functions, unless something seeded it already: the
  # program's own `:rand.seed/1,2` (which then stands, as in OTP), or a draw in code that
  # is not instrumented (OTP's own random seed then stands: that code is not controlled).
  defp seed!() do
    unless Process.get(:rand_seed), do: Runtime.seed_rand()
    :ok
  end

  # Errors --------------------------------------------------------------------------------

  # The `badarg` the BIF `mod:fun(args)` raises, with its stack frame and error_info
  # (`cause:` as the BIF gives it, `module:` the one that formats it), so the class, the
  # reason and the message Elixir prints are OTP's.
  defp badarg!(mod, fun, args, info \\ []) do
    {:current_stacktrace, [_info, _self | stacktrace]} = Process.info(self(), :current_stacktrace)

    error_info = Map.new([{:module, :erl_erts_errors} | info])
    :erlang.raise(:error, :badarg, [{mod, fun, args, [error_info: error_info]} | stacktrace])
  end
end
