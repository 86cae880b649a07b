defmodule Lockstep.Instrument.ControlledReceiveTest do
  # Instrumented `receive` inside a run keeps Erlang's semantics: implicit pins, exported
  # variables, nested receives, `after 0`, a receive with only `after`, run-time `after`
  # values (in virtual time) and OTP's error for a bad one. And an instrumented failure is
  # deterministic, replays, and its trace file records what was instrumented.
  use ExUnit.Case, async: true

  alias Lockstep.TestSupport.PlainCounter

  setup_all do
    Lockstep.Instrument.instrument!([:ls_ops, PlainCounter])
    :ok
  end

  # Runs `:ls_ops.function(args)` in the root of a one-iteration run whose mailbox holds
  # `preload` first; returns the result and what is left in the mailbox.
  defp controlled(function, args, preload) do
    parent = self()

    Lockstep.run(
      fn ->
        Enum.each(preload, &Lockstep.send(self(), &1))

        result =
          try do
            {:ok, apply(:ls_ops, function, args)}
          catch
            class, reason -> {class, reason}
          end

        left = drain([])
        send(parent, {:outcome, result, left})
      end,
      iterations: 1
    )

    assert_received {:outcome, result, left}
    {result, left}
  end

  defp drain(acc) do
    case :ls_ops.recv_after(0) do
      {:got, msg} -> drain([msg | acc])
      :timeout -> Enum.reverse(acc)
    end
  end

  test "receive forms give the results they give in plain OTP" do
    cases = [
      {:recv_after, [0], [:hello], {{:ok, {:got, :hello}}, []}},
      {:recv_after, [0], [], {{:ok, :timeout}, []}},
      {:recv_after, [:soon], [:hello], {{:ok, {:got, :hello}}, []}},
      {:recv_after, [:soon], [], {{:error, :timeout_value}, []}},
      {:recv_only_after, [0], [:kept], {{:ok, :waited}, [:kept]}},
      {:recv_only_after, [-1], [], {{:error, :timeout_value}, []}},
      {:recv_bound, [:t], [{:x, 1}, {:t, 2}], {{:ok, {:matched, 2}}, [{:x, 1}]}},
      {:recv_bound, [:t], [{:x, 1}], {{:ok, :none}, [{:x, 1}]}},
      {:recv_export, [0], [{:b, 7}], {{:ok, {7, 2}}, []}},
      {:recv_export, [0], [{:c, 7}], {{:ok, {:none, 0}}, [{:c, 7}]}},
      {:recv_nested, [], [:first, :second], {{:ok, :both}, []}},
      {:recv_nested, [], [:first], {{:ok, :only_first}, []}},
      {:recv_nested, [], [:second], {{:ok, :neither}, [:second]}}
    ]

    for {function, args, preload, expected} <- cases do
      assert controlled(function, args, preload) == expected,
             "#{function}#{inspect(args)} with #{inspect(preload)}"
    end
  end

  test "after counts virtual time: a long timeout passes at once" do
    {elapsed, {result, []}} = :timer.tc(fn -> controlled(:recv_after, [60_000], []) end)
    assert result == {:ok, :timeout}
    assert elapsed < 5_000_000
  end

  defp lost_update do
    c = PlainCounter.start(0)
    me = self()

    for _ <- 1..2 do
      Lockstep.spawn(fn ->
        PlainCounter.increment(c)
        Lockstep.send(me, :done)
      end)
    end

    Lockstep.recv()
    Lockstep.recv()
    2 = PlainCounter.value(c)
  end

  test "an instrumented failure is deterministic, replays, and records :instrument" do
    dir = Lockstep.TestSupport.tmp_dir!("ls_instr_replay")
    opts = [iterations: 300, seed: 4242, instrument: [PlainCounter], trace_dir: dir]

    {:error, first} = Lockstep.check(fn -> lost_update() end, opts)
    {:error, second} = Lockstep.check(fn -> lost_update() end, opts)
    assert first.iteration == second.iteration
    assert first.schedule == second.schedule

    file = Lockstep.TraceFile.load!(first.trace_path)
    assert [PlainCounter | otp] = file.options[:instrument]
    assert otp == Lockstep.Instrument.otp_modules()

    assert_raise Lockstep.BugFound, fn ->
      Lockstep.replay(fn -> lost_update() end, first.trace_path)
    end
  end
end
