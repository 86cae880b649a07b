defmodule Lockstep.MiscTest do
  use ExUnit.Case, async: true
  require Lockstep

  test "a run cannot be nested inside a managed process" do
    {:error, bug} =
      Lockstep.check(
        fn -> Lockstep.run(fn -> :ok end) end,
        iterations: 1,
        seed: 1,
        trace_dir:
          Path.join(System.tmp_dir!(), "lockstep_misc_#{System.unique_integer([:positive])}")
      )

    assert bug.kind == :exception
    assert {:error, %ArgumentError{message: message}, _} = bug.reason
    assert message =~ "cannot be nested"
    File.rm_rf!(Path.dirname(bug.trace_path))
  end

  test "the report's trace header counts in the singular and the plural" do
    dir = Path.join(System.tmp_dir!(), "lockstep_misc_#{System.unique_integer([:positive])}")
    {:error, one} = Lockstep.check(fn -> exit(:boom) end, iterations: 1, trace_dir: dir)
    assert one.steps == 1 and length(one.trace) == 2
    assert Exception.message(one) =~ "Trace (2 events over 1 step;"

    {:error, two} =
      Lockstep.check(fn -> Lockstep.yield() && exit(:boom) end, iterations: 1, trace_dir: dir)

    assert two.steps == 2
    assert Exception.message(two) =~ "events over 2 steps;"
    File.rm_rf!(dir)
  end

  test "the summary counts iterations by how they ended" do
    # Every second iteration needs more than :max_steps (counted outside the run).
    counter = :counters.new(1, [])

    body = fn ->
      :counters.add(counter, 1, 1)
      n = if rem(:counters.get(counter, 1), 2) == 0, do: 3, else: 0
      for _ <- 1..n//1, do: Lockstep.yield()
    end

    {summary, _warning} =
      ExUnit.CaptureIO.with_io(:stderr, fn ->
        Lockstep.run(body, iterations: 7, max_steps: 2, seed: 3)
      end)

    assert summary.outcomes == %{pass: 4, max_steps: 3}
    assert summary.max_steps_hit == 3

    summary = Lockstep.run(fn -> :ok end, iterations: 4, seed: 3)
    assert summary.outcomes == %{pass: 4, max_steps: 0}
  end

  test "Global.send returns the pid and exits with badarg for an unknown name" do
    assert {pid_ok, exited} =
             (fn ->
                me = self()

                Lockstep.run(
                  fn ->
                    :yes = Lockstep.Global.register_name(:g_misc, self())
                    pid = Lockstep.Global.send(:g_misc, :hi)
                    :hi = Lockstep.recv()

                    exited =
                      try do
                        Lockstep.Global.send(:g_nobody, :x)
                      catch
                        :exit, reason -> reason
                      end

                    Lockstep.send(me, {pid == self(), exited})
                  end,
                  iterations: 1,
                  seed: 1
                )

                receive do
                  result -> result
                end
              end).()

    assert pid_ok
    assert exited == {:badarg, {:g_nobody, :x}}
  end

  test "a deadlock report points out a message sent with Kernel.send" do
    {:error, bug} =
      Lockstep.check(
        fn ->
          me = self()
          Lockstep.spawn(fn -> send(me, :hello) end)

          Lockstep.receive do
            :hello -> :ok
          end
        end,
        iterations: 3,
        seed: 1,
        trace_dir:
          Path.join(System.tmp_dir!(), "lockstep_misc_#{System.unique_integer([:positive])}")
      )

    assert bug.kind == :deadlock
    assert [%{name: "P", unmanaged: [:hello], mailbox: []}] = bug.details
    assert Exception.message(bug) =~ "this receive never"
    assert Exception.message(bug) =~ "instrument: [TheModule]"
    File.rm_rf!(Path.dirname(bug.trace_path))
  end

  test "a controller with bad options raises in the caller" do
    assert_raise ArgumentError, ~r/option :seed/, fn ->
      Lockstep.Controller.start_link(seed: -1)
    end

    assert_raise ArgumentError, ~r/option :strategy/, fn ->
      Lockstep.Controller.start_link(strategy: :nope)
    end

    assert_raise ArgumentError, ~r/option :capture/, fn ->
      Lockstep.Controller.start_link(capture: :yes)
    end
  end

  test "a controller refuses, by name, the options of a whole search it would ignore" do
    for {key, value} <- [iterations: 5, workers: 2, name: "x", trace_dir: "t", foo: 1] do
      error = assert_raise ArgumentError, fn -> Lockstep.Controller.start_link([{key, value}]) end

      assert error.message =~ "unknown option #{inspect(key)} (value #{inspect(value)})"
      assert error.message =~ "Lockstep.Controller.start_link/1"
      assert error.message =~ ":capture"
    end
  end
end
