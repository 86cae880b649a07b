defmodule Lockstep.OTP.OutsideTest do
  # OTP is instrumented in place (docs/architecture.md, "OTP in place"): every process
  # outside a run must keep exactly its behaviour. A real OTP workload gives the same
  # outcome before and after instrumentation (in a fresh VM, the only place "before"
  # exists: the suite instruments OTP up front), and while instrumented runs go on
  # beside it (async).
  use ExUnit.Case, async: true

  alias Lockstep.TestSupport.OTP.{Account, Workload}

  @moduletag timeout: 180_000

  test "the workload's outcome before and after instrumenting OTP, in a fresh VM" do
    code = ~S"""
    alias Lockstep.TestSupport.OTP.Workload
    false = Lockstep.Instrument.instrumented?(:gen_server)
    before = Workload.run()
    Lockstep.Instrument.instrument!(:otp)
    true = Enum.all?(Lockstep.Instrument.otp_modules(), &Lockstep.Instrument.instrumented?/1)
    later = Workload.run()
    IO.puts("before=" <> inspect(before == Workload.expected()) <>
      " after=" <> inspect(later == Workload.expected()) <> " " <> inspect(later))
    """

    ebin = Path.join(:code.lib_dir(:lockstep), "ebin")
    {output, 0} = System.cmd("elixir", ["-pa", ebin, "-e", code], stderr_to_stdout: true)
    assert output =~ "before=true after=true"
  end

  test "here, instrumented, and while instrumented runs go on beside it" do
    assert Lockstep.Instrument.instrumented?(:gen_server)
    assert Workload.run() == Workload.expected()

    # The workload in processes of its own (it checks its mailbox is empty), the runs here.
    workloads = for _ <- 1..5, do: Task.async(&Workload.run/0)
    summary = Lockstep.run(&Account.fixed_body/0, instrument: [Account], iterations: 300)
    assert summary.iterations == 300
    outcomes = Task.await_many(workloads, 30_000)
    assert Enum.uniq(outcomes) == [Workload.expected()]
  end
end
