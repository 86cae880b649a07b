defmodule Lockstep.Instrument.TimeOpsTest do
  # Lockstep.Instrument.Ops.Time against OTP 25: each program runs plainly on the real
  # functions and in a managed process on the ops functions; results (shapes, and exact
  # virtual values under Lockstep) and exceptions (class, reason, message) are compared.
  use ExUnit.Case, async: true

  require Lockstep

  import ExUnit.CaptureIO
  import Lockstep.OpsSupport

  alias Lockstep.BugFound
  alias Lockstep.Instrument.Ops.Time, as: Ops
  alias Lockstep.OpsSupport.Real.Time, as: Real

  @epoch ~U[2026-01-01 00:00:00Z]

  describe "__ops__/0" do
    test "every entry names an exported function of its arity, and the original exists" do
      ops = Ops.__ops__()
      assert length(ops) == length(Enum.uniq(ops))

      for {{mod, fun, arity}, target} <- ops do
        assert function_exported?(Ops, target, arity), "#{target}/#{arity} for #{inspect(mod)}"
        Code.ensure_loaded!(mod)
        assert function_exported?(mod, fun, arity), "#{inspect(mod)}.#{fun}/#{arity}"
      end
    end

    test "covers the timer, time and rand functions of SPEC §9" do
      mfas = Enum.map(Ops.__ops__(), &elem(&1, 0))

      for mfa <- [
            {:erlang, :send_after, 3},
            {:erlang, :send_after, 4},
            {:erlang, :start_timer, 3},
            {:erlang, :start_timer, 4},
            {:erlang, :cancel_timer, 1},
            {:erlang, :cancel_timer, 2},
            {:erlang, :read_timer, 1},
            {:erlang, :read_timer, 2},
            {Process, :send_after, 3},
            {Process, :send_after, 4},
            {Process, :cancel_timer, 1},
            {Process, :cancel_timer, 2},
            {Process, :read_timer, 1},
            {Process, :sleep, 1},
            {:timer, :sleep, 1},
            {:erlang, :monotonic_time, 0},
            {:erlang, :monotonic_time, 1},
            {:erlang, :system_time, 0},
            {:erlang, :system_time, 1},
            {:os, :system_time, 0},
            {:os, :system_time, 1},
            {System, :monotonic_time, 0},
            {System, :monotonic_time, 1},
            {System, :system_time, 0},
            {System, :system_time, 1},
            {System, :os_time, 0},
            {System, :os_time, 1},
            {:rand, :uniform, 0},
            {:rand, :uniform, 1},
            {:rand, :uniform_real, 0},
            {:rand, :normal, 0},
            {:rand, :bytes, 1}
          ] do
        assert mfa in mfas, inspect(mfa)
      end
    end
  end

  # Timers --------------------------------------------------------------------------------

  # Every timer operation once, with what each returns and what messages come. Times are
  # small: the plain run waits for real.
  defp timers_program(m, next) do
    me = self()
    a = m.send_after(20, me, :a)
    got_a = next.()
    b = m.start_timer(20, me, :b)
    got_b = next.()
    c = m.send_after(200, me, :c)
    read_c = m.read_timer(c)
    cancel_c = m.cancel_timer(c)
    cancel_c_again = m.cancel_timer(c)
    read_c_after = m.read_timer(c)
    d = m.send_after(200, me, :d)
    async_d = m.cancel_timer(d, async: true, info: true)
    notice_d = next.()
    async_d_again = m.cancel_timer(d, [{:async, true}])
    notice_d_again = next.()
    e = m.start_timer(200, me, :e)
    quiet_e = m.cancel_timer(e, info: false)
    async_read_e = m.read_timer(e, async: true)
    notice_read_e = next.()
    abs_at = m.monotonic_time(:millisecond) + 20
    f = m.send_after(abs_at, me, :f, abs: true)
    got_f = next.()
    past = m.start_timer(m.monotonic_time(:millisecond) - 5, me, :past, [{:abs, true}])
    got_past = next.()
    g = m.process_send_after(me, :g, 20)
    got_g = next.()
    h = m.process_send_after(me, :h, 200, [])
    read_h = m.process_read_timer(h)
    cancel_h = m.process_cancel_timer(h)
    i = m.process_send_after(me, :i, 200)
    cancel_i = m.process_cancel_timer(i, async: true)
    notice_i = next.()
    unknown = make_ref()
    nothing_left = next.()

    %{
      refs: Enum.map([a, b, c, d, e, f, past, g, h, i], &is_reference/1),
      got_a: got_a,
      got_b: got_b == {:timeout, b, :b},
      read_c: read_c,
      cancel_c: cancel_c,
      cancel_c_again: cancel_c_again,
      read_c_after: read_c_after,
      async_d: async_d,
      notice_d: notice_d,
      notice_d_ref: elem(notice_d, 1) == d,
      async_d_again: async_d_again,
      notice_d_again: notice_d_again == {:cancel_timer, d, false},
      quiet_e: quiet_e,
      async_read_e: async_read_e,
      notice_read_e: notice_read_e == {:read_timer, e, false},
      got_f: got_f,
      got_past: got_past == {:timeout, past, :past},
      got_g: got_g,
      read_h: read_h,
      cancel_h: cancel_h,
      cancel_i: cancel_i,
      notice_i: match?({:cancel_timer, ^i, ms} when is_integer(ms), notice_i),
      unknown: {m.cancel_timer(unknown), m.read_timer(unknown), m.process_cancel_timer(unknown)},
      nothing_left: nothing_left
    }
  end

  # What may differ between a real and a virtual run: the ms a real timer has left.
  defp shape(results) do
    Map.new(results, fn
      {k, ms} when is_integer(ms) -> {k, :ms}
      {k, {:cancel_timer, :ok, ms}} when is_integer(ms) -> {k, {:cancel_timer, :ms}}
      {k, {:cancel_timer, _ref, ms}} when is_integer(ms) -> {k, {:cancel_timer, :ms}}
      kv -> kv
    end)
  end

  test "timers: results and messages as in OTP, and exact virtual ms left" do
    {:ok, real} = plain(fn -> timers_program(Real, &plain_next/0) end)
    {:ok, virtual} = managed(fn -> timers_program(Ops, &managed_next/0) end)

    assert shape(virtual) == shape(real)
    assert Enum.all?(virtual.refs)
    assert {virtual.got_a, virtual.got_f} == {:a, :f}
    assert virtual.got_b and virtual.got_past
    assert virtual.got_g == :g
    # Under Lockstep no time passes between starting a timer and reading it.
    assert {virtual.read_c, virtual.cancel_c} == {200, 200}
    assert {virtual.cancel_c_again, virtual.read_c_after} == {false, false}
    assert virtual.async_d == :ok and virtual.notice_d_ref
    assert match?({:cancel_timer, _, 200}, virtual.notice_d)
    assert virtual.notice_d_again and virtual.notice_read_e and virtual.notice_i
    assert {virtual.quiet_e, virtual.async_read_e, virtual.cancel_i} == {:ok, :ok, :ok}
    assert {virtual.read_h, virtual.cancel_h} == {200, 200}
    assert virtual.unknown == {false, false, false}
    assert virtual.nothing_left == :none
  end

  test "read_timer and cancel_timer count virtual time: the ms left after a sleep" do
    assert {:ok, {60, 60, false, 100}} =
             managed(fn ->
               t = Ops.send_after(100, self(), :late)
               Ops.process_sleep(40)
               left = Ops.read_timer(t)
               cancelled = Ops.cancel_timer(t)
               {left, cancelled, Ops.read_timer(t), Ops.monotonic_time(:millisecond) + 60}
             end)
  end

  test "a timer to a registered name is resolved when it fires; nobody there: lost" do
    assert {:ok, {:none, [:to_name]}} =
             managed(fn ->
               me = self()
               Ops.send_after(10, :nobody_yet, :lost)
               lost = managed_next(50)
               Lockstep.register(:somebody, me)
               Ops.send_after(10, :somebody, :to_name)
               {lost, [managed_next()]}
             end)
  end

  test "a timer to a process outside the run is a real send when it fires" do
    test = self()

    assert {:ok, {:ok, 30}} =
             managed(fn ->
               Ops.send_after(30, test, :from_a_timer)
               ref = Ops.start_timer(30, test, :started)
               Ops.process_sleep(100)
               {Ops.cancel_timer(ref, info: false), Ops.monotonic_time(:millisecond) - 70}
             end)

    assert_received :from_a_timer
    assert_received {:timeout, ref, :started} when is_reference(ref)
  end

  # OTP's exceptions ----------------------------------------------------------------------

  @bad_calls [
    {:send_after, [-1, :self, :m]},
    {:send_after, [1.5, :self, :m]},
    {:send_after, [:soon, :self, :m]},
    {:send_after, [10, {:name, :node@host}, :m]},
    {:send_after, [10, "dest", :m]},
    {:send_after, [10, :self, :m, [abs: :yes]]},
    {:send_after, [10, :self, :m, [:abs]]},
    {:send_after, [10, :self, :m, [{:abs, true} | :tail]]},
    {:send_after, [10, :self, :m, [other: true]]},
    {:send_after, [10, :self, :m, :not_a_list]},
    {:send_after, [-5, :self, :m, [abs: false]]},
    {:send_after, [-5, {:a, :b}, :m, [abs: :x]]},
    {:send_after, [-5, {:a, :b}, :m]},
    {:send_after, [1.0, :self, :m, [abs: true]]},
    {:start_timer, [-1, :self, :m]},
    {:start_timer, [10, 42, :m]},
    {:start_timer, [10, :self, :m, [abs: 1]]},
    {:cancel_timer, [:not_a_ref]},
    {:cancel_timer, [:ref, [:async]]},
    {:cancel_timer, [:ref, [async: 1]]},
    {:cancel_timer, [:ref, [other: true]]},
    {:cancel_timer, [:ref, :not_a_list]},
    {:cancel_timer, [:not_a_ref, []]},
    {:read_timer, [:not_a_ref]},
    {:read_timer, [:ref, [info: true]]},
    {:read_timer, [:ref, [async: :yes]]},
    {:read_timer, [:not_a_ref, []]},
    {:process_send_after, [:self, :m, -1]},
    {:process_send_after, [:self, :m, 10, [abs: :maybe]]},
    {:process_send_after, [{:a, :b}, :m, 10]},
    {:process_cancel_timer, [:not_a_ref]},
    {:process_cancel_timer, [:ref, [info: :no]]},
    {:process_read_timer, ["ref"]},
    {:process_sleep, [-1]},
    {:process_sleep, [1.5]},
    {:process_sleep, [:forever]},
    {:process_sleep, [4_294_967_296]},
    {:timer_sleep, [-1]},
    {:timer_sleep, [1.5]},
    {:timer_sleep, [:forever]},
    {:monotonic_time, [:minute]},
    {:monotonic_time, [0]},
    {:monotonic_time, [-1]},
    {:monotonic_time, ["second"]},
    {:system_time, [:hour]},
    {:system_time, [0]},
    {:os_system_time, [:milliseconds]},
    {:os_system_time, [:day]},
    {:system_monotonic_time, [:perf_counter]},
    {:system_monotonic_time, [:minute]},
    {:system_monotonic_time, [0]},
    {:system_system_time, [:hour]},
    {:system_os_time, [:perf_counter]},
    {:rand_uniform, [0]},
    {:rand_uniform, [-3]},
    {:rand_uniform, [1.5]},
    {:rand_uniform, [:ten]},
    {:rand_bytes, [-1]},
    {:rand_normal, [:mean, 1]}
  ]

  defp call(m, fun, args) do
    args =
      Enum.map(args, fn
        :self -> self()
        :ref -> make_ref()
        arg -> arg
      end)

    apply(m, fun, args)
  end

  test "bad arguments raise what OTP raises: class, reason and message" do
    for {fun, args} <- @bad_calls do
      real = plain(fn -> call(Real, fun, args) end)
      virtual = managed(fn -> call(Ops, fun, args) end)

      assert {_class, _reason, _message} = real,
             "#{fun}#{inspect(args)} did not raise: #{inspect(real)}"

      assert virtual == real, "#{fun}#{inspect(args)}: #{inspect({real, virtual})}"
    end
  end

  test "a timer whose deadline is beyond OTP's clock raises badarg, relative or absolute" do
    max = Lockstep.Timeout.max_deadline()

    assert {:ok, :ok} =
             managed(fn ->
               Ops.process_sleep(10)
               ref = Ops.send_after(max - 10, self(), :far)
               Ops.cancel_timer(ref, info: false)
             end)

    for call <- [
          fn -> Ops.send_after(max + 1, self(), :m) end,
          fn -> Ops.start_timer(max + 1, self(), :m, abs: true) end,
          # before the iteration started, as OTP refuses a time before the VM started
          fn -> Ops.send_after(-1, self(), :m, abs: true) end,
          fn ->
            Ops.process_sleep(10)
            Ops.send_after(max - 9, self(), :m)
          end
        ] do
      assert {:error, :badarg, _} = managed(call)
    end
  end

  # Sleeping ------------------------------------------------------------------------------

  test "Process.sleep and :timer.sleep advance the virtual clock by exactly their time" do
    long = 4_294_967_295 + 1_000
    total = long + 250

    assert {:ok, {:ok, :ok, 250, ^total}} =
             managed(fn ->
               a = Ops.process_sleep(100)
               b = Ops.timer_sleep(150)
               t1 = Ops.monotonic_time(:millisecond)
               :ok = Ops.timer_sleep(long)
               {a, b, t1, Ops.monotonic_time(:millisecond)}
             end)
  end

  test "sleeps leave the mailbox alone" do
    assert {:ok, [:early]} =
             managed(fn ->
               Ops.send_after(10, self(), :early)
               :ok = Ops.process_sleep(50)
               :ok = Ops.timer_sleep(0)
               [managed_next(0)]
             end)
  end

  # Time ----------------------------------------------------------------------------------

  @units [:second, :millisecond, :microsecond, :nanosecond, :native, :perf_counter, 1, 1000] ++
           [:seconds, :milli_seconds, :micro_seconds, :nano_seconds, 7]

  test "every unit OTP accepts: virtual monotonic and system time, converted consistently" do
    {:ok, real} =
      plain(fn ->
        for u <- @units, do: {Real.monotonic_time(u), Real.system_time(u), Real.os_system_time(u)}
      end)

    assert Enum.all?(List.flatten(Enum.map(real, &Tuple.to_list/1)), &is_integer/1)

    {:ok, {zero, virtual, native, sys, os, stamp}} =
      managed(fn ->
        zero = {Ops.monotonic_time(), Ops.monotonic_time(:millisecond)}
        Ops.process_sleep(1_500)

        values =
          for u <- @units, do: {Ops.monotonic_time(u), Ops.system_time(u), Ops.os_system_time(u)}

        {zero, values, Ops.monotonic_time(), Ops.system_time(), Ops.os_system_time(),
         Ops.timestamp()}
      end)

    assert zero == {0, 0}

    for {u, {mono, system, os_time}} <- Enum.zip(@units, virtual) do
      assert mono == :erlang.convert_time_unit(1_500, :millisecond, u), inspect(u)

      epoch_ms = DateTime.to_unix(@epoch, :millisecond)
      assert system == :erlang.convert_time_unit(epoch_ms + 1_500, :millisecond, u), inspect(u)
      assert os_time == system
    end

    assert :erlang.convert_time_unit(native, :native, :millisecond) == 1_500
    assert :erlang.convert_time_unit(sys, :native, :millisecond) == 1_767_225_601_500
    assert os == sys

    assert DateTime.to_unix(DateTime.from_unix!(sys, :native), :millisecond) ==
             DateTime.to_unix(@epoch, :millisecond) + 1_500

    assert :calendar.now_to_universal_time(stamp) == {{2026, 1, 1}, {0, 0, 1}}
    assert {_, _, 500_000} = stamp
  end

  test "time_offset is the constant system time minus monotonic time" do
    {:ok, {offsets, sums}} =
      managed(fn ->
        Ops.process_sleep(1_234)

        offsets =
          {Ops.time_offset(), Ops.time_offset(:second), Ops.system_time_offset(),
           Ops.system_time_offset(:millisecond)}

        sums =
          for u <- @units do
            {Ops.monotonic_time(u) + Ops.time_offset(u), Ops.system_time(u)}
          end

        {offsets, sums}
      end)

    epoch_ms = DateTime.to_unix(@epoch, :millisecond)
    native = :erlang.convert_time_unit(epoch_ms, :millisecond, :native)
    assert offsets == {native, div(epoch_ms, 1000), native, epoch_ms}
    # exact in every unit that divides a millisecond's worth evenly
    for {{sum, system}, u} <- Enum.zip(sums, @units), u not in [:second, :seconds, 1, 7] do
      assert sum == system, inspect(u)
    end

    assert {:error, :badarg, _} = plain(fn -> Real.time_offset(:hour) end)
    assert managed(fn -> Ops.time_offset(:hour) end) == plain(fn -> Real.time_offset(:hour) end)
  end

  test "System.* with Elixir's units, plurals (and their warnings) included" do
    units = [:second, :millisecond, :microsecond, :nanosecond, :native, 1000]
    plurals = [seconds: :second, milliseconds: :millisecond, micro_seconds: :microsecond]

    {:ok, real} =
      plain(fn ->
        for u <- units,
            do:
              {Real.system_monotonic_time(u), Real.system_system_time(u), Real.system_os_time(u)}
      end)

    assert length(real) == length(units)

    {:ok, {defaults, values}} =
      managed(fn ->
        Ops.process_sleep(2_000)
        defaults = {Ops.system_monotonic_time(), Ops.system_system_time(), Ops.system_os_time()}

        values =
          for u <- units,
              do: {Ops.system_monotonic_time(u), Ops.system_system_time(u), Ops.system_os_time(u)}

        {defaults, values}
      end)

    {mono, sys, os} = defaults
    assert System.convert_time_unit(mono, :native, :millisecond) == 2_000
    assert sys == os
    assert DateTime.to_unix(DateTime.from_unix!(sys, :native)) == DateTime.to_unix(@epoch) + 2

    for {u, {m, s, o}} <- Enum.zip(units, values) do
      assert m == System.convert_time_unit(2_000, :millisecond, u)
      assert s == o and s == System.convert_time_unit(1_767_225_602_000, :millisecond, u)
    end

    for {plural, unit} <- plurals do
      real_warning =
        capture_io(:stderr, fn -> plain(fn -> Real.system_system_time(plural) end) end)

      warning =
        capture_io(:stderr, fn ->
          expected = :erlang.convert_time_unit(1_767_225_600_000, :millisecond, unit)
          assert {:ok, ^expected} = managed(fn -> Ops.system_system_time(plural) end)
        end)

      assert warning =~ "deprecated" and real_warning =~ "deprecated", inspect(plural)
    end
  end

  # Randomness ----------------------------------------------------------------------------

  defp draws do
    me = self()

    for name <- [:a, :b] do
      Lockstep.spawn(fn ->
        values = {
          Ops.rand_uniform(),
          Ops.rand_uniform_real(),
          Ops.rand_normal(),
          Ops.rand_normal(10, 2),
          Ops.rand_bytes(8),
          Ops.rand_uniform(2 ** 70)
        }

        Lockstep.send(me, {name, values})
      end)
    end

    a = Lockstep.receive(do: ({:a, v} -> v))
    b = Lockstep.receive(do: ({:b, v} -> v))
    {a, b}
  end

  test "rand: seeded per process from the iteration seed and its name; same seed, same draws" do
    {:ok, {a, b}} = managed(&draws/0, seed: 11)
    assert {:ok, {^a, ^b}} = managed(&draws/0, seed: 11)
    assert {:ok, {^a, ^b}} = managed(&draws/0, seed: 11, strategy: :random)
    assert a != b
    assert {:ok, {other_a, _}} = managed(&draws/0, seed: 12)
    assert other_a != a

    {u, real, normal, normal2, bytes, big} = a
    assert is_float(u) and u >= 0.0 and u < 1.0
    assert is_float(real) and real > 0.0 and real < 1.0
    assert is_float(normal) and is_float(normal2)
    assert byte_size(bytes) == 8
    assert big in 1..(2 ** 70)
  end

  test "rand: a seed the program sets with :rand.seed/1,2 stands, as in OTP" do
    program = fn m ->
      :rand.seed(:exsss, 42)
      first = {m.rand_uniform(), m.rand_bytes(4), m.rand_normal()}
      :rand.seed(:exrop, {1, 2, 3})
      {first, m.rand_uniform_real(), m.rand_normal(5, 2), is_tuple(m.rand_jump())}
    end

    assert {:ok, _} = real = plain(fn -> program.(Real) end)
    assert managed(fn -> program.(Ops) end) == real
  end

  test "rand: uniform(n) is a controlled choice in 1..n, recorded, found and replayed" do
    body = fn ->
      x = Ops.rand_uniform(10)
      true = x in 1..10
      if x == 7, do: raise("drew seven")
    end

    assert {:error, %BugFound{} = bug} = Lockstep.check(body, iterations: 500, seed: 3)
    assert inspect(bug.reason) =~ "drew seven"
    assert {:random, 6} in bug.schedule

    error = assert_raise BugFound, fn -> Lockstep.replay(body, bug.trace_path) end
    assert error.schedule == bug.schedule
  end

  test "rand: a bug that depends on uniform/0 replays exactly" do
    body = fn ->
      me = self()

      Lockstep.spawn(fn ->
        Lockstep.send(me, {:draw, Ops.rand_uniform()})
      end)

      {:draw, x} = Lockstep.recv()
      if x < 0.2, do: raise("unlucky draw #{x}")
    end

    assert {:error, %BugFound{} = bug} = Lockstep.check(body, iterations: 200, seed: 5)
    error = assert_raise BugFound, fn -> Lockstep.replay(body, bug.trace_path) end
    assert error.reason == bug.reason
  end

  # A bug found ---------------------------------------------------------------------------

  # A caller waits for a reply with a timeout timer; on the reply it cancels the timer and
  # assumes no :timeout will come. If the timer fired before the cancel, `cancel_timer`
  # returned false and the :timeout is in the mailbox: the buggy version ignores that.
  defp call_with_timeout(fixed?) do
    fn ->
      me = self()
      timer = Ops.send_after(10, me, :timeout)
      Lockstep.spawn(fn -> Lockstep.send(me, :reply) end)

      Lockstep.receive do
        :reply ->
          result = Ops.cancel_timer(timer)

          if fixed? and result == false do
            Lockstep.receive(do: (:timeout -> :flushed))
          end

          Lockstep.receive do
            :timeout -> raise "a :timeout arrived after cancel_timer"
          after
            0 -> :ok
          end

        :timeout ->
          :timed_out
      end
    end
  end

  test "cancel_timer's result ignored: the stale timer message is found, the fix passes" do
    assert {:error, %BugFound{} = bug} =
             Lockstep.check(call_with_timeout(false), timers: :anytime, iterations: 300, seed: 1)

    assert inspect(bug.reason) =~ "a :timeout arrived after cancel_timer"
    assert Enum.any?(bug.trace, &match?({_, {:timer_fired, _, _}}, &1))

    assert {:ok, summary} =
             Lockstep.check(call_with_timeout(true), timers: :anytime, iterations: 300, seed: 1)

    assert summary.iterations == 300
  end
end
