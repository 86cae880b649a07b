defmodule Lockstep.UncontrolledTest do
  # SPEC §9 "No silent pass": concurrency that escaped control is recorded in the summary
  # and warned about once per run, or fails the iteration as :uncontrolled under
  # `strict_control: true`. Not async: the warnings are read with capture_io(:stderr),
  # which captures the whole VM's standard error (another test's warning would count).
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  require Lockstep
  alias Lockstep.BugFound
  alias UninstrumentedHelpers, as: Uninstrumented

  defp opts(extra) do
    dir = Lockstep.TestSupport.tmp_dir!("lockstep_uncontrolled")
    Keyword.merge([iterations: 10, seed: 3, trace_dir: dir], extra)
  end

  defp run_capturing(body, extra) do
    parent = self()

    warning =
      capture_io(:stderr, fn -> send(parent, {:summary, Lockstep.run(body, opts(extra))}) end)

    assert_received {:summary, summary}
    {summary, warning}
  end

  test "messages sent around Lockstep are recorded and warned about, once per run" do
    body = fn ->
      42 = Uninstrumented.ask(21)
      :ok
    end

    {summary, warning} = run_capturing(body, [])

    assert [%{iteration: 1, process: "P", messages: ["{:bye, 21}"], started: []}] =
             summary.uncontrolled

    assert [_] = Regex.scan(~r/concurrency escaped Lockstep's control/, warning)
    assert warning =~ "P received 1 message(s) that did not come through Lockstep: {:bye, 21}"
    assert warning =~ ":instrument"
    assert warning =~ "strict_control: true"
    assert Enum.any?(summary.warnings, &(&1 =~ "{:bye, 21}"))
  end

  test "a worker started and awaited by uninstrumented code leaves its link behind" do
    body = fn ->
      4 = Uninstrumented.double(2)
      :ok
    end

    {summary, warning} = run_capturing(body, iterations: 3)

    assert [%{process: "P", started: [%{call: "linked outside Lockstep, since exited"}]}] =
             summary.uncontrolled

    assert warning =~ "P started #PID<"
  end

  test "a worker still running is named with its code location and module" do
    body = fn ->
      Uninstrumented.start_task()
      :ok
    end

    {summary, warning} = run_capturing(body, iterations: 3)
    assert [%{process: "P", started: [started]}] = summary.uncontrolled
    assert started.module == Uninstrumented
    assert started.location =~ "test/support/uninstrumented.ex:"
    assert warning =~ "P started #PID<"
    assert warning =~ "add UninstrumentedHelpers to :instrument"
    assert warning =~ "instrument: [UninstrumentedHelpers]"
  end

  test "a linked helper still alive when the iteration ends is found there" do
    body = fn ->
      Lockstep.spawn(fn ->
        Uninstrumented.start_helper()
        Lockstep.receive(do: (:never -> :ok))
      end)

      :ok
    end

    {summary, warning} = run_capturing(body, iterations: 2)
    # Not yet scheduled when it is found, the helper shows only its initial call.
    assert [%{process: "P.1", started: [%{call: ":erlang.apply/2"}]}] = summary.uncontrolled
    assert warning =~ "P.1 started"
  end

  test "strict_control: true fails the iteration as :uncontrolled, naming the module" do
    body = fn ->
      Uninstrumented.start_task()
      :ok
    end

    assert {:error, %BugFound{} = bug} = Lockstep.check(body, opts(strict_control: true))
    assert bug.kind == :uncontrolled
    assert bug.process == "P"
    assert bug.iteration == 1
    assert [{"P", %{started: [%{module: Uninstrumented}]}}] = bug.details
    message = Exception.message(bug)
    assert message =~ "concurrency escaped Lockstep's control (strict_control: true)"
    assert message =~ "instrument: [UninstrumentedHelpers]"
    assert message =~ "Lockstep.replay("

    file = Lockstep.TraceFile.load!(bug.trace_path)
    assert file.kind == :uncontrolled
    assert file.options[:strict_control] == true
    replayed = assert_raise BugFound, fn -> Lockstep.replay(body, bug.trace_path) end
    assert replayed.kind == :uncontrolled
  end

  test "a program that stays under Lockstep's control records nothing and warns nothing" do
    body = fn ->
      me = self()
      child = Lockstep.spawn(fn -> Lockstep.send(me, {:answer, 42}) end)
      ref = Lockstep.monitor(child)
      Lockstep.receive(do: ({:answer, 42} -> :ok))
      Lockstep.receive(do: ({:DOWN, ^ref, _, _, _} -> :ok))
      Lockstep.spawn(fn -> Lockstep.receive(do: (:never -> :ok)) end)
      :ok
    end

    {summary, warning} = run_capturing(body, iterations: 20)
    assert summary.uncontrolled == []
    assert warning == ""
    assert summary.warnings == []
    assert %Lockstep.Summary{} = Lockstep.run(body, opts(strict_control: true))
  end
end
