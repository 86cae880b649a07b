defmodule Lockstep.BankAccountExampleTest do
  # The example `make demo` runs (examples/bank_account.ex): a plain `use GenServer`
  # account, tested unmodified.
  use ExUnit.Case, async: true

  alias Lockstep.Examples.BankAccount

  @opts [instrument: [BankAccount, BankAccount.Test], seed: 2026]

  test "the check-then-act withdrawal is found, and replays from its trace file" do
    dir = Lockstep.TestSupport.tmp_dir!("ls_bank")

    assert {:error, %Lockstep.BugFound{kind: :exception} = bug} =
             Lockstep.check(&BankAccount.Test.racy/0, @opts ++ [iterations: 500, trace_dir: dir])

    assert Exception.message(bug) =~ "overdrawn"
    assert Exception.message(bug) =~ "calls P.1 (Lockstep.Examples.BankAccount) :balance"
    assert Exception.message(bug) =~ "replies 100 to"

    replayed =
      assert_raise Lockstep.BugFound, fn ->
        Lockstep.replay(&BankAccount.Test.racy/0, bug.trace_path)
      end

    assert replayed.schedule == bug.schedule
  end

  test "the one-call withdrawal passes 1,000 iterations" do
    summary = Lockstep.run(&BankAccount.Test.atomic/0, @opts ++ [iterations: 1_000])
    assert summary.iterations == 1_000
    assert summary.distinct_schedules > 1
  end

  test "outside a run the account works as plain OTP" do
    Lockstep.Instrument.instrument!(@opts[:instrument])
    {:ok, account} = BankAccount.start_link(100)
    assert BankAccount.withdraw(account, 60) == :ok
    assert BankAccount.withdraw(account, 60) == {:error, :insufficient_funds}
    assert BankAccount.balance(account) == 40
  end
end
