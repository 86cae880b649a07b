defmodule Lockstep.TimeoutsTest do
  # Every timeout Lockstep takes behaves as its OTP counterpart for bad values (same
  # exception class and reason, or the same exit), and large valid values run in virtual
  # time. The reference is the real OTP call, run in this VM next to the Lockstep one.
  use ExUnit.Case, async: true

  require Lockstep

  @max_receive 2 ** 32 - 1

  @bad_values [-1, -(2 ** 64), 1.5, :foo, nil, "x", 2 ** 32, 2 ** 59, 2 ** 64, 2 ** 70]

  # {name, OTP call, Lockstep call}; each waits ~50 ms (wall or virtual) for something to
  # arrive, so a value that is valid returns in both and a bad one is checked where OTP
  # checks it: when the caller would wait.
  defp cases do
    [
      {"Process.sleep/1 vs Lockstep.sleep/1", fn t -> Process.sleep(t) end,
       fn t -> Lockstep.sleep(t) end},
      {"receive after", fn t -> otp_receive(t) end, fn t -> lockstep_receive(t) end},
      {"receive after, the message already there",
       fn t ->
         send(self(), :x)
         otp_receive(t)
       end,
       fn t ->
         Lockstep.send(self(), :x)
         lockstep_receive(t)
       end},
      {"Process.send_after/3 vs Lockstep.send_after/3",
       fn t -> :erlang.cancel_timer(Process.send_after(self(), :x, t)) end,
       fn t -> Lockstep.cancel_timer(Lockstep.send_after(self(), :x, t)) end},
      {"GenServer.call/3",
       fn t ->
         {:ok, a} = Agent.start_link(fn -> 0 end)
         GenServer.call(a, {:get, &slow_otp/1}, t)
       end,
       fn t ->
         {:ok, a} = Lockstep.Agent.start_link(fn -> 0 end)
         Lockstep.GenServer.call(a, {:get, &slow_lockstep/1}, t)
       end},
      {"Agent.get/3",
       fn t ->
         {:ok, a} = Agent.start_link(fn -> 0 end)
         Agent.get(a, &slow_otp/1, t)
       end,
       fn t ->
         {:ok, a} = Lockstep.Agent.start_link(fn -> 0 end)
         Lockstep.Agent.get(a, &slow_lockstep/1, t)
       end},
      {"Agent.update/3",
       fn t ->
         {:ok, a} = Agent.start_link(fn -> 0 end)
         Agent.update(a, &slow_otp/1, t)
       end,
       fn t ->
         {:ok, a} = Lockstep.Agent.start_link(fn -> 0 end)
         Lockstep.Agent.update(a, &slow_lockstep/1, t)
       end},
      {"Agent.get_and_update/3",
       fn t ->
         {:ok, a} = Agent.start_link(fn -> 0 end)
         Agent.get_and_update(a, &{slow_otp(&1), &1}, t)
       end,
       fn t ->
         {:ok, a} = Lockstep.Agent.start_link(fn -> 0 end)
         Lockstep.Agent.get_and_update(a, &{slow_lockstep(&1), &1}, t)
       end},
      {"Agent.stop/3",
       fn t ->
         {:ok, a} = Agent.start_link(fn -> 0 end)
         {Agent.stop(a, :normal, t), Process.alive?(a)}
       end,
       fn t ->
         {:ok, a} = Lockstep.Agent.start_link(fn -> 0 end)
         {Lockstep.Agent.stop(a, :normal, t), Lockstep.alive?(a)}
       end},
      {"GenServer.stop/3",
       fn t ->
         {:ok, a} = Agent.start_link(fn -> 0 end)
         GenServer.stop(a, :normal, t)
       end,
       fn t ->
         {:ok, a} = Lockstep.Agent.start_link(fn -> 0 end)
         Lockstep.GenServer.stop(a, :normal, t)
       end},
      {"GenServer.start_link/3, timeout:",
       fn t -> GenServer.start_link(__MODULE__.PlainServer, :ok, timeout: t) end,
       fn t -> Lockstep.GenServer.start_link(__MODULE__.Silent, :ok, timeout: t) end},
      {"Task.await/2", fn t -> Task.await(Task.async(&slow_otp/0), t) end,
       fn t -> Lockstep.Task.await(Lockstep.Task.async(&slow_lockstep/0), t) end},
      {"Task.await_many/2", fn t -> Task.await_many([Task.async(&slow_otp/0)], t) end,
       fn t -> Lockstep.Task.await_many([Lockstep.Task.async(&slow_lockstep/0)], t) end}
    ]
  end

  defp otp_receive(t) do
    Process.send_after(self(), :x, 50)

    receive do
      :x -> :got
    after
      t -> :timeout
    end
  end

  defp lockstep_receive(t) do
    Lockstep.send_after(self(), :x, 50)

    Lockstep.receive do
      :x -> :got
    after
      t -> :timeout
    end
  end

  defp slow_otp(value \\ 1) do
    Process.sleep(50)
    value
  end

  defp slow_lockstep(value \\ 1) do
    Lockstep.sleep(50)
    value
  end

  # What a call did, comparable between OTP and Lockstep: the raw error reason and the
  # exception it normalises to, or the exit reason with pids, stacktraces and the mirrored
  # module names made uniform.
  defp outcome(fun) do
    {:returned, uniform(fun.())}
  catch
    :error, reason ->
      exception = Exception.normalize(:error, reason, __STACKTRACE__)
      raw = if is_atom(reason), do: reason, else: :exception
      {:error, raw, exception.__struct__, Map.get(exception, :original)}

    :exit, reason ->
      {:exit, uniform(reason)}
  end

  defp uniform(pid) when is_pid(pid), do: :pid
  defp uniform(ref) when is_reference(ref), do: :ref
  defp uniform(GenServer), do: Lockstep.GenServer
  defp uniform(Task), do: Lockstep.Task
  defp uniform(%Task{}), do: :task
  defp uniform(%Lockstep.Task{}), do: :task

  defp uniform([{m, f, a, loc} | _] = frames) when is_atom(m) and is_atom(f) and is_list(loc) do
    if is_list(a) or is_integer(a), do: :stacktrace, else: Enum.map(frames, &uniform/1)
  end

  defp uniform(list) when is_list(list), do: Enum.map(list, &uniform/1)

  defp uniform(tuple) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> uniform() |> List.to_tuple()

  defp uniform(other), do: other

  # The OTP call in a fresh process (so a linked agent or task dies with it), or :waits if
  # it has not returned within 1 s.
  defp otp(fun) do
    parent = self()

    {pid, ref} =
      spawn_monitor(fn ->
        send(parent, {:otp, self(), outcome(fun)})
        exit(:shutdown)
      end)

    receive do
      {:otp, ^pid, result} ->
        receive do: ({:DOWN, ^ref, _, _, _} -> result)
    after
      1_000 ->
        Process.exit(pid, :kill)
        receive do: ({:DOWN, ^ref, _, _, _} -> :waits)
    end
  end

  defp lockstep(fun) do
    {result, _virtual_ms} = lockstep_timed(fun)
    result
  end

  # The outcome and the virtual time it took.
  defp lockstep_timed(fun) do
    test = self()

    Lockstep.run(
      fn ->
        t0 = Lockstep.now()
        result = outcome(fun)
        Lockstep.send(test, {:lockstep, result, Lockstep.now() - t0})
      end,
      iterations: 1,
      seed: 1
    )

    receive do: ({:lockstep, result, ms} -> {result, ms})
  end

  # A value OTP accepts and waits on (:waits) must run in virtual time in Lockstep: it
  # returns, after the clock advanced that far (the clock is 64-bit and saturates). Elixir
  # 1.18 made Process.sleep/1 accept any non-negative integer.
  defp same?({_name, value, :waits, {{:returned, _}, ms}}),
    do: ms >= min(value, 2 ** 64 - 1)

  # The ms a real timer has left when it is cancelled counts down in wall time: on a loaded
  # machine a millisecond or two may pass between send_after and cancel_timer. Lockstep's
  # virtual clock does not move in between.
  defp same?({_name, _value, {:returned, real}, {{:returned, virtual}, _ms}})
       when is_integer(real) and is_integer(virtual),
       do: (virtual - real) in 0..5

  defp same?({_name, _value, otp, {lockstep, _ms}}), do: otp == lockstep

  test "bad timeouts: the same exception or exit as the OTP call, value by value" do
    table =
      for {name, otp_call, lockstep_call} <- cases(), value <- @bad_values do
        {name, value, otp(fn -> otp_call.(value) end),
         lockstep_timed(fn -> lockstep_call.(value) end)}
      end

    mismatches = for row <- table, not same?(row), do: row

    assert mismatches == [],
           "Lockstep differs from OTP (name, value, OTP, Lockstep):\n" <>
             Enum.map_join(mismatches, "\n", &inspect/1)

    # The table is not vacuous: OTP rejects most of these values, in every class.
    outcomes = Enum.map(table, fn {_, _, otp, _} -> otp end)
    assert {:error, :timeout_value, ErlangError, :timeout_value} in outcomes
    assert {:error, :function_clause, FunctionClauseError, nil} in outcomes
    assert {:error, :badarg, ArgumentError, nil} in outcomes
    assert Enum.any?(outcomes, &match?({:exit, {{{:function_clause, _}, _}, _}}, &1))
    assert Enum.any?(outcomes, &match?({:exit, {{{:timeout_value, _}, _}, _}}, &1))
    assert Enum.count(outcomes, &(&1 == :waits)) <= 4
  end

  test "an invalid after value is reported at the wait, not when a message already matches" do
    assert otp(fn ->
             send(self(), :x)
             otp_receive(-1)
           end) == {:returned, :got}

    assert lockstep(fn ->
             Lockstep.send(self(), :x)
             lockstep_receive(-1)
           end) == {:returned, :got}
  end

  test "sleep(:infinity) blocks for good, as Process.sleep(:infinity) does" do
    assert otp(fn -> Process.sleep(:infinity) end) == :waits

    dir = Path.join(System.tmp_dir!(), "lockstep_sleep_#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(dir) end)

    assert {:error, %Lockstep.BugFound{kind: :deadlock, details: [blocked]}} =
             Lockstep.check(fn -> Lockstep.sleep(:infinity) end,
               iterations: 1,
               seed: 1,
               trace_dir: dir
             )

    assert blocked.waiting_for == "Lockstep.sleep(:infinity)"
  end

  test "the error names the bad value and the accepted range" do
    error =
      lockstep(fn ->
        try do
          Lockstep.send_after(self(), :x, 2 ** 64)
        rescue
          e -> {:message, Exception.message(e)}
        end
      end)

    assert {:returned, {:message, message}} = error
    assert message =~ "18446744073709551616"
    assert message =~ "virtual ms"
  end

  defmodule PlainServer do
    use GenServer

    @impl true
    def init(state), do: {:ok, state}
  end

  defmodule Silent do
    use Lockstep.GenServer

    @impl true
    def init(state), do: {:ok, state}

    @impl true
    def handle_call(_request, _from, state), do: {:noreply, state}
  end

  test "large valid timeouts run in virtual time: the clock advances to them" do
    big = 2 ** 40
    test = self()

    # OTP accepts them (these calls would wait, so they are only started).
    assert otp(fn -> Process.sleep(@max_receive) end) == :waits
    assert otp(fn -> receive after: (@max_receive -> :ok) end) == :waits

    assert {:returned, _} =
             otp(fn -> :erlang.cancel_timer(Process.send_after(self(), :x, big)) end)

    assert otp(fn -> Task.await_many([Task.async(fn -> Process.sleep(:infinity) end)], big) end) ==
             :waits

    Lockstep.run(
      fn ->
        :ok = Lockstep.sleep(@max_receive)
        t1 = Lockstep.now()

        :timeout =
          Lockstep.receive do
            :never -> :ok
          after
            @max_receive -> :timeout
          end

        t2 = Lockstep.now()

        Lockstep.send_after(self(), :late, big)
        :late = Lockstep.recv()
        t3 = Lockstep.now()

        {:ok, silent} = Lockstep.GenServer.start_link(Silent, nil)
        {:timeout, _} = catch_exit(Lockstep.GenServer.call(silent, :hello, @max_receive))
        t4 = Lockstep.now()

        slow = Lockstep.Task.async(fn -> Lockstep.sleep(@max_receive - 1) end)
        :ok = Lockstep.Task.await(slow, @max_receive)
        t5 = Lockstep.now()

        # Longer than one receive can wait: two sleeps.
        slower =
          Lockstep.Task.async(fn ->
            Lockstep.sleep(@max_receive) && Lockstep.sleep(@max_receive)
          end)

        [:ok] = Lockstep.Task.await_many([slower], big)
        t6 = Lockstep.now()

        Lockstep.send(test, {:clock, [t1, t2, t3, t4, t5, t6]})
      end,
      iterations: 1,
      seed: 1
    )

    m = @max_receive
    assert_received {:clock, clock}
    assert clock == [m, 2 * m, 2 * m + big, 3 * m + big, 4 * m - 1 + big, 6 * m - 1 + big]
  end
end
