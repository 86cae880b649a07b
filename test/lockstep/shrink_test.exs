defmodule Lockstep.ShrinkTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{BugFound, RaceBodies, TraceFile}
  import Lockstep.TestSupport

  @strategies [:random, :pct, :pos, :fair_pct, :idpct]

  defp failing_trace(body, opts) do
    opts = Keyword.merge([iterations: 300, seed: 3, trace_dir: tmp_dir!()], opts)
    assert {:error, %BugFound{} = bug} = Lockstep.check(body, opts)
    bug
  end

  defp assert_replays_as(body, path, kind, schedule) do
    replayed = assert_raise BugFound, fn -> Lockstep.replay(body, path) end
    assert replayed.kind == kind
    assert replayed.schedule == schedule
    replayed
  end

  describe "shrinking a failing schedule" do
    for strategy <- @strategies do
      test "drops a useless spinner's steps: strictly shorter (#{inspect(strategy)})" do
        body = &RaceBodies.racy_with_spinner/0
        bug = failing_trace(body, strategy: unquote(strategy))
        spinner_steps = Enum.count(bug.schedule, &(&1 == {:run, "P.1"}))
        assert spinner_steps >= 1

        assert {:ok, info} = Lockstep.shrink(body, bug.trace_path)

        assert info.original_length == length(bug.schedule)
        assert info.new_length < info.original_length
        assert info.new_length == length(info.schedule)
        assert info.attempts > 0
        assert info.kind == :exception
        assert Enum.count(info.schedule, &(&1 == {:run, "P.1"})) < spinner_steps

        # Saved beside the original, in the same format, and it replays to the same kind.
        assert info.trace_path != bug.trace_path
        assert Path.dirname(info.trace_path) == Path.dirname(bug.trace_path)
        assert String.ends_with?(info.trace_path, ".shrunk.lockstep")
        assert File.regular?(info.trace_path)
        assert TraceFile.load!(info.trace_path).schedule == info.schedule

        replayed = assert_replays_as(body, info.trace_path, :exception, info.schedule)
        assert {:error, %RuntimeError{message: "lost update" <> _}, _} = replayed.reason
        assert %BugFound{kind: :exception, trace_path: path} = info.bug
        assert path == info.trace_path
        assert Exception.message(info.bug) =~ "lost update"

        # The original is untouched and still replays.
        assert_replays_as(body, bug.trace_path, :exception, bug.schedule)
      end
    end

    for {label, body, strategy} <- [
          {"the lost update", quote(do: &RaceBodies.racy/0), :pct},
          {"the four-writers bug", quote(do: RaceBodies.four_writers(1)), :pos}
        ] do
      test "#{label}: never longer, and the result replays to the same kind" do
        body = unquote(body)
        bug = failing_trace(body, strategy: unquote(strategy))

        assert {:ok, info} = Lockstep.shrink(body, bug.trace_path)
        assert info.original_length == length(bug.schedule)
        assert info.new_length <= info.original_length
        assert_replays_as(body, info.trace_path, bug.kind, info.schedule)
      end
    end

    test "after the fix, replaying the shrunk trace raises ReplayDivergence" do
      bug = failing_trace(&RaceBodies.racy_with_spinner/0, strategy: :pct)
      assert {:ok, info} = Lockstep.shrink(&RaceBodies.racy_with_spinner/0, bug.trace_path)

      error =
        assert_raise Lockstep.ReplayDivergence, fn ->
          Lockstep.replay(&RaceBodies.atomic_with_spinner/0, info.trace_path)
        end

      assert error.step in 1..info.new_length
      assert error.expected == Enum.at(info.schedule, error.step - 1)
      assert is_list(error.got)
      refute error.expected in error.got
      assert Exception.message(error) =~ info.trace_path

      # ...and the fixed program passes the same search.
      assert %Lockstep.Summary{max_steps_hit: 0} =
               Lockstep.run(&RaceBodies.atomic_with_spinner/0, iterations: 300, seed: 3)
    end

    test "the summary states what shrank: decisions, context switches and trace events" do
      body = &RaceBodies.racy_with_spinner/0
      bug = failing_trace(body, strategy: :pct)
      assert {:ok, info} = Lockstep.shrink(body, bug.trace_path)

      switches = fn schedule ->
        schedule
        |> Enum.flat_map(fn
          {:run, p} -> [p]
          _ -> []
        end)
        |> Enum.chunk_by(& &1)
        |> length()
      end

      original = TraceFile.load!(bug.trace_path)
      shrunk = TraceFile.load!(info.trace_path)

      assert info.original_length == length(original.schedule)
      assert info.new_length == length(shrunk.schedule)
      assert info.original_switches == switches.(original.schedule)
      assert info.new_switches == switches.(shrunk.schedule)
      assert info.original_events == length(original.events)
      assert info.new_events == length(shrunk.events)
      assert info.new_events < info.original_events

      assert Lockstep.Shrink.summary(bug.trace_path, info) ==
               "Shrunk #{bug.trace_path}: " <>
                 "#{info.original_length} → #{info.new_length} decisions, " <>
                 "#{info.original_switches} → #{info.new_switches} context switches, " <>
                 "#{info.original_events} → #{info.new_events} trace events " <>
                 "(#{info.attempts} attempts), saved to #{info.trace_path}"
    end

    test "the shrunk failure prints one line per run of a process's events" do
      body = &RaceBodies.racy_with_spinner/0
      bug = failing_trace(body, strategy: :pct)
      assert {:ok, info} = Lockstep.shrink(body, bug.trace_path)
      assert info.bug.trace_style == :compact

      trace_lines = fn message ->
        message |> String.split("\n") |> Enum.filter(&(&1 =~ ~r/^(>>|  ) +\d+(–\d+)?  P/))
      end

      compact = trace_lines.(Lockstep.Report.format(info.bug, slice: false))
      full = trace_lines.(Lockstep.Report.format(info.bug, style: :full, slice: false))
      assert length(full) == length(info.bug.trace)
      assert length(compact) < length(full)

      # A line per run of one process: no two neighbours belong to the same process.
      actors =
        Enum.map(compact, &(Regex.run(~r/^(?:>>|  ) +[\d–]+  (P[.\d]*)/, &1) |> List.last()))

      assert Enum.dedup(actors) == actors

      # Nothing is lost but "starts" (implied) and the wording of waits.
      text = Enum.join(compact, "\n")

      for {_step, event} <- Lockstep.Report.display_trace(info.bug.trace, info.bug.pid_names),
          elem(event, 0) not in [:start, :block] do
        assert text =~ Lockstep.Trace.describe(event)
      end

      assert [failing] = Enum.filter(compact, &String.starts_with?(&1, ">>"))
      assert failing =~ "lost update"
    end

    test "is deterministic" do
      body = &RaceBodies.racy_with_spinner/0
      bug = failing_trace(body, strategy: :random)

      assert {:ok, a} = Lockstep.shrink(body, bug.trace_path)
      assert {:ok, b} = Lockstep.shrink(body, bug.trace_path)
      assert a.schedule == b.schedule
      assert a.attempts == b.attempts
    end

    test "respects :max_attempts and still returns {:ok, info}" do
      body = &RaceBodies.racy_with_spinner/0
      bug = failing_trace(body, strategy: :pct)

      assert {:ok, info} = Lockstep.shrink(body, bug.trace_path, max_attempts: 2)
      assert info.attempts <= 2
      assert info.new_length <= info.original_length
      assert_replays_as(body, info.trace_path, :exception, info.schedule)
    end

    test "a shrunk trace can be shrunk again without getting longer" do
      body = &RaceBodies.racy_with_spinner/0
      bug = failing_trace(body, strategy: :pos)

      assert {:ok, first} = Lockstep.shrink(body, bug.trace_path)
      assert {:ok, second} = Lockstep.shrink(body, first.trace_path)
      assert second.original_length == first.new_length
      assert second.new_length <= first.new_length
    end
  end

  describe "shrink errors" do
    test "a program that no longer fails returns {:error, {:does_not_reproduce, _}}" do
      bug = failing_trace(&RaceBodies.racy/0, strategy: :pct)

      assert {:error, {:does_not_reproduce, message}} =
               Lockstep.shrink(&RaceBodies.atomic/0, bug.trace_path)

      assert is_binary(message)
      assert message =~ bug.trace_path
      refute File.exists?(Path.rootname(bug.trace_path, ".lockstep") <> ".shrunk.lockstep")
    end

    test "a missing trace file raises Lockstep.TraceError" do
      path = Path.join(tmp_dir!(), "nope.lockstep")

      assert_raise Lockstep.TraceError, ~r/nope\.lockstep/, fn ->
        Lockstep.shrink(&RaceBodies.racy/0, path)
      end
    end

    test "a corrupt trace file raises Lockstep.TraceError" do
      path = Path.join(tmp_dir!(), "corrupt.lockstep")
      File.write!(path, "not a trace")

      assert_raise Lockstep.TraceError, fn -> Lockstep.shrink(&RaceBodies.racy/0, path) end
    end

    # SPEC §8: invalid options raise a clear exception, never a silent pass.
    test "invalid shrink options raise ArgumentError naming the option" do
      body = &RaceBodies.racy_with_spinner/0
      bug = failing_trace(body, strategy: :pct)

      for {opts, key} <- [
            {[bogus: 1], ":bogus"},
            {[max_attempts: "10"], ":max_attempts"},
            {[max_attempts: -1], ":max_attempts"},
            {[time_budget_ms: :soon], ":time_budget_ms"},
            {[timeout: 0], ":timeout"}
          ] do
        error = assert_raise ArgumentError, fn -> Lockstep.shrink(body, bug.trace_path, opts) end

        assert error.message =~ key, "#{inspect(opts)}: #{error.message}"
      end
    end

    test "a body that is not a zero-arity function raises ArgumentError" do
      bug = failing_trace(&RaceBodies.racy/0, strategy: :pct)

      assert_raise ArgumentError, fn -> Lockstep.shrink(fn _ -> :ok end, bug.trace_path) end
    end
  end
end
