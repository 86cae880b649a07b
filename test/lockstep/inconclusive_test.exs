defmodule Lockstep.InconclusiveTest do
  # SPEC §1: a run in which every iteration hit :max_steps tested nothing; one in which
  # more than a tenth did says so. Not async: it captures the VM's stderr.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias Lockstep.{InconclusiveError, Summary}

  defp spin do
    Lockstep.yield()
    spin()
  end

  # A body whose every `n`-th iteration spins until :max_steps (counted outside the run, so
  # the share is exact whatever the strategy does).
  defp every_nth_spins(n) do
    counter = :counters.new(1, [])

    fn ->
      :counters.add(counter, 1, 1)
      if rem(:counters.get(counter, 1), n) == 0, do: spin()
      :ok
    end
  end

  test "run/2 raises InconclusiveError when every iteration hit :max_steps" do
    {error, stderr} =
      with_io(:stderr, fn ->
        assert_raise InconclusiveError, fn ->
          Lockstep.run(&spin/0, iterations: 5, max_steps: 50, seed: 7, name: "spinner")
        end
      end)

    assert %InconclusiveError{
             name: "spinner",
             iterations: 5,
             max_steps_hit: 5,
             max_steps: 50,
             seed: 7,
             strategy: :pct
           } = error

    message = Exception.message(error)

    for fragment <- ["spinner", "all 5 iterations", ":max_steps", "50", ":fair_pct", "seed: 7"] do
      assert message =~ fragment, "expected #{inspect(fragment)} in: #{message}"
    end

    # The error says it all; no separate warning line.
    assert stderr == ""
  end

  test "check/2 returns {:error, %InconclusiveError{}} instead" do
    assert {:error, %InconclusiveError{iterations: 3, max_steps_hit: 3, max_steps: 20}} =
             Lockstep.check(&spin/0, iterations: 3, max_steps: 20, seed: 1)
  end

  test "one iteration that completes is enough to pass" do
    {summary, _stderr} =
      with_io(:stderr, fn ->
        Lockstep.run(every_nth_spins(1_000), iterations: 1, max_steps: 50, seed: 1)
      end)

    assert %Summary{iterations: 1, max_steps_hit: 0} = summary
  end

  test "more than a tenth inconclusive: the summary and stderr say so, with the counts" do
    {summary, stderr} =
      with_io(:stderr, fn ->
        Lockstep.run(every_nth_spins(3), iterations: 30, max_steps: 50, seed: 2, name: "third")
      end)

    assert %Summary{iterations: 30, max_steps_hit: 10} = summary
    assert [warning] = summary.warnings
    assert warning =~ "10 of 30 iterations"
    assert warning =~ ":max_steps"
    assert stderr =~ "third"
    assert stderr =~ warning
    assert length(String.split(stderr, "\n", trim: true)) == 1

    assert to_string(summary) =~
             ~r/^30 iterations \(\d+ distinct schedules\), no bug, but 10 of them hit :max_steps and were inconclusive$/
  end

  test "a tenth or less: no warning" do
    {summary, stderr} =
      with_io(:stderr, fn ->
        Lockstep.run(every_nth_spins(10), iterations: 30, max_steps: 50, seed: 2)
      end)

    assert %Summary{iterations: 30, max_steps_hit: 3, warnings: []} = summary
    assert stderr == ""
    assert to_string(summary) =~ "but 3 of them hit :max_steps"
  end

  test "one iteration cut short: the summary says 'was'" do
    {summary, _stderr} =
      with_io(:stderr, fn ->
        Lockstep.run(every_nth_spins(20), iterations: 20, max_steps: 50, seed: 2)
      end)

    assert %Summary{iterations: 20, max_steps_hit: 1} = summary
    assert to_string(summary) =~ ~r/, no bug, but 1 of them hit :max_steps and was inconclusive$/
  end

  test "an exhaustive search stopped by :iterations says how many interleavings hit :max_steps" do
    # The first interleaving (the draw's first value) spins; the other nine finish.
    body = fn -> if Lockstep.random(10) == 0, do: spin() end
    opts = [strategy: :exhaustive, iterations: 5, max_steps: 50, seed: 1]

    {{summary, stderr}, stdout} =
      with_io(fn -> with_io(:stderr, fn -> Lockstep.run(body, opts) end) end)

    assert %Summary{iterations: 5, max_steps_hit: 1, complete: false} = summary
    assert stderr =~ "1 of 5 iterations"
    text = to_string(summary)

    assert text =~
             ~r/^not complete: 5 interleavings explored, no bug; .*; 1 cut short by :max_steps$/

    # The line an exhaustive run prints is that text.
    assert stdout =~ text

    {{summary, _stderr}, _stdout} =
      with_io(fn ->
        with_io(:stderr, fn ->
          Lockstep.run(fn -> if Lockstep.random(10) < 2, do: spin() end, opts)
        end)
      end)

    assert %Summary{max_steps_hit: 2, complete: false} = summary
    assert to_string(summary) =~ ~r/; 2 cut short by :max_steps$/
  end
end
