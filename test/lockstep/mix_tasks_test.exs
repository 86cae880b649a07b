defmodule Lockstep.MixTasksTest do
  # Not async: `--file` recompiles test/support/race_bodies.ex (redefining
  # Lockstep.RaceBodies), which must not happen while other tests run its code.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import Lockstep.TestSupport

  alias Lockstep.{BugFound, RaceBodies, TraceFile}
  alias Mix.Tasks.Lockstep.{DumpTrace, Replay, Shrink}

  setup do
    dir = tmp_dir!()

    assert {:error, %BugFound{} = bug} =
             Lockstep.check(&RaceBodies.racy/0,
               iterations: 200,
               seed: 2026,
               trace_dir: dir,
               name: "mix tasks racy"
             )

    %{dir: dir, bug: bug, path: bug.trace_path}
  end

  describe "mix lockstep.dump_trace" do
    test "prints the report by default", %{path: path, bug: bug} do
      out = capture_io(fn -> DumpTrace.run([path]) end)

      assert out =~ "lost update"
      assert out =~ "mix tasks racy"
      assert out =~ "seed: 2026"
      assert out =~ "iteration: #{bug.iteration}"
      assert out =~ "Replay this exact schedule"
      assert out =~ path
      # The failing step is marked.
      assert out =~ ~r/^>>\s+#{bug.fail_step}\s+P\s/m

      assert capture_io(fn -> DumpTrace.run([path, "--format", "pretty"]) end) == out
    end

    test "--format events prints one {step, event} term per line", %{path: path} do
      out = capture_io(fn -> DumpTrace.run([path, "--format", "events"]) end)
      events = TraceFile.load!(path).events
      lines = String.split(out, "\n", trim: true)

      assert length(lines) == length(events)
      assert hd(lines) == ~s({1, {:start, "P"}})

      for line <- lines do
        assert {{step, event}, []} = Code.eval_string(line)
        assert is_integer(step) and is_tuple(event)
      end

      assert Enum.any?(lines, &(&1 =~ ~s({:value, 0})))
    end

    test "--format raw prints the whole file as a term", %{path: path, bug: bug} do
      out = capture_io(fn -> DumpTrace.run([path, "--format", "raw"]) end)
      assert out =~ "format: :lockstep_trace"
      assert out =~ "seed: 2026"
      assert out =~ "iter_seed: #{bug.iter_seed}"
    end

    test "an unknown --format raises Mix.Error naming it", %{path: path} do
      error = assert_raise Mix.Error, fn -> DumpTrace.run([path, "--format", "bogus"]) end
      assert error.message =~ "bogus"
      assert error.message =~ "pretty"
    end

    test "a missing path raises Mix.Error with a clear message", %{dir: dir} do
      missing = Path.join(dir, "missing.lockstep")
      error = assert_raise Mix.Error, fn -> DumpTrace.run([missing]) end
      assert error.message =~ "cannot read trace file"
      assert error.message =~ missing
      assert error.message =~ "no such file"
    end

    test "a corrupt file raises Mix.Error", %{dir: dir} do
      corrupt = Path.join(dir, "corrupt.lockstep")
      File.write!(corrupt, "garbage")
      error = assert_raise Mix.Error, fn -> DumpTrace.run([corrupt]) end
      assert error.message =~ "corrupt"
    end

    test "no path or stray arguments raise a usage error", %{path: path} do
      assert_raise Mix.Error, ~r/usage: mix lockstep.dump_trace/, fn -> DumpTrace.run([]) end

      assert_raise Mix.Error, ~r/usage: mix lockstep.dump_trace/, fn ->
        DumpTrace.run([path, path])
      end

      assert_raise Mix.Error, ~r/usage: mix lockstep.dump_trace/, fn ->
        DumpTrace.run([path, "--colour"])
      end
    end
  end

  describe "mix lockstep.replay" do
    test "prints the metadata and the trace, and replays the body the trace names", %{
      path: path,
      bug: bug
    } do
      out = capture_io(fn -> assert catch_exit(Replay.run([path])) == {:shutdown, 1} end)

      assert out =~ "Lockstep trace mix tasks racy"
      assert out =~ "kind: :exception"
      assert out =~ "seed: 2026"
      assert out =~ "iteration: #{bug.iteration}"
      assert out =~ "iteration seed: #{bug.iter_seed}"
      assert out =~ "strategy: :pct"
      assert out =~ "schedule: #{length(bug.schedule)} decisions"
      assert out =~ "body: Lockstep.RaceBodies.racy/0"
      assert out =~ "lost update"
      assert out =~ "Replay this exact schedule"
      assert out =~ "Replaying #{path} with Lockstep.RaceBodies.racy/0"
      assert out =~ "The bug reproduces (exception)"
    end

    test "a trace of an anonymous body is printed, with what to pass to replay it", %{dir: dir} do
      {:error, bug} =
        Lockstep.check(fn -> RaceBodies.racy() end, iterations: 200, seed: 2026, trace_dir: dir)

      out = capture_io(fn -> assert Replay.run([bug.trace_path]) == :ok end)
      assert out =~ "body: an anonymous function (not recorded)"
      assert out =~ "lost update"
      assert out =~ "pass --run Module.function"
      refute out =~ "Replaying"
    end

    test "--run with --file replays and reports the reproduction", %{path: path} do
      parent = self()

      stderr =
        capture_io(:stderr, fn ->
          out =
            capture_io(fn ->
              assert catch_exit(
                       Replay.run([
                         path,
                         "--run",
                         "Lockstep.RaceBodies.racy",
                         "--file",
                         "test/support/race_bodies.ex"
                       ])
                     ) == {:shutdown, 1}
            end)

          send(parent, {:out, out})
        end)

      assert_received {:out, out}
      assert out =~ "Replaying #{path} with Lockstep.RaceBodies.racy/0"
      assert out =~ "The bug reproduces (exception)"
      assert out =~ "lost update"
      # Recompiling an already loaded module only warns.
      refute stderr =~ "error"
    end

    test "--run after a fix reports the divergence as a Mix error", %{path: path} do
      out =
        capture_io(fn ->
          error =
            assert_raise Mix.Error, fn ->
              Replay.run([path, "--run", "Lockstep.RaceBodies.atomic"])
            end

          assert error.message =~ "diverged at step"
          assert error.message =~ "the schedule says run"
          refute error.message =~ "\n"
        end)

      # What the replay did last comes first, one event per line.
      assert out =~ "The replay's last events before it diverged:"
      assert out =~ ~r/^    +\d+  P\.\d  exits normally$/m
    end

    test "--run with an undefined function raises Mix.Error", %{path: path} do
      capture_io(fn ->
        error =
          assert_raise Mix.Error, fn ->
            Replay.run([path, "--run", "Lockstep.RaceBodies.no_such_body"])
          end

        assert error.message =~ "Lockstep.RaceBodies.no_such_body/0 is not defined"

        assert_raise Mix.Error, ~r/--run expects Module.function/, fn ->
          Replay.run([path, "--run", "racy"])
        end
      end)
    end

    test "a missing path or no path raises Mix.Error", %{dir: dir} do
      missing = Path.join(dir, "missing.lockstep")
      error = assert_raise Mix.Error, fn -> Replay.run([missing]) end
      assert error.message =~ "cannot read trace file #{missing}"

      assert_raise Mix.Error, ~r/usage: mix lockstep.replay/, fn -> Replay.run([]) end
    end
  end

  describe "mix lockstep.shrink" do
    test "prints the shrunk result", %{path: path} do
      out = capture_io(fn -> Shrink.run([path, "--run", "Lockstep.RaceBodies.racy"]) end)

      shrunk = Path.rootname(path, ".lockstep") <> ".shrunk.lockstep"

      assert out =~
               ~r/Shrunk #{Regex.escape(path)}: \d+ → \d+ decisions, \d+ → \d+ context switches, \d+ → \d+ trace events \(\d+ attempts\)/

      assert out =~ "saved to #{shrunk}"
      assert out =~ "lost update"
      assert out =~ "Replay this exact schedule"
      assert File.regular?(shrunk)

      [_, from, to] = Regex.run(~r/: (\d+) → (\d+) decisions/, out)
      assert String.to_integer(to) <= String.to_integer(from)

      replayed = assert_raise BugFound, fn -> Lockstep.replay(&RaceBodies.racy/0, shrunk) end
      assert replayed.kind == :exception
      assert length(replayed.schedule) == String.to_integer(to)
    end

    test "shrinks a trace with a useless spinner strictly", %{dir: dir} do
      assert {:error, bug} =
               Lockstep.check(&RaceBodies.racy_with_spinner/0,
                 iterations: 200,
                 seed: 2026,
                 trace_dir: dir
               )

      out =
        capture_io(fn ->
          Shrink.run([
            bug.trace_path,
            "--run",
            "Lockstep.RaceBodies.racy_with_spinner",
            "--max-attempts",
            "200",
            "--time-budget-ms",
            "20000"
          ])
        end)

      [_, from, to] = Regex.run(~r/: (\d+) → (\d+) decisions/, out)
      assert String.to_integer(from) == length(bug.schedule)
      assert String.to_integer(to) < String.to_integer(from)
    end

    test "a program that no longer fails raises Mix.Error", %{path: path} do
      error =
        assert_raise Mix.Error, fn ->
          Shrink.run([path, "--run", "Lockstep.RaceBodies.atomic"])
        end

      assert error.message =~ "cannot shrink"
    end

    test "usage errors raise Mix.Error", %{dir: dir} do
      assert_raise Mix.Error, ~r/usage: mix lockstep.shrink/, fn -> Shrink.run([]) end

      {:error, anonymous} =
        Lockstep.check(fn -> RaceBodies.racy() end, iterations: 200, seed: 2026, trace_dir: dir)

      assert_raise Mix.Error, ~r/does not name its test body.*--run Module.function/, fn ->
        Shrink.run([anonymous.trace_path])
      end

      missing = Path.join(dir, "missing.lockstep")

      error =
        assert_raise Mix.Error, fn ->
          Shrink.run([missing, "--run", "Lockstep.RaceBodies.racy"])
        end

      assert error.message =~ "cannot read trace file #{missing}"
    end
  end

  describe "bad input is a one-line Mix error" do
    # The setup's trace, rewritten to name a test body that no longer exists.
    defp with_removed_body(path, dir) do
      {:lockstep_trace, 2, atoms, payload} = path |> File.read!() |> :erlang.binary_to_term()
      data = :erlang.binary_to_term(payload)
      body = %{module: Lockstep.RemovedBodies, function: :gone, source: "test/removed.exs"}
      bin = {:lockstep_trace, 2, atoms, :erlang.term_to_binary(%{data | body: body})}
      removed = Path.join(dir, "removed-body.lockstep")
      File.write!(removed, :erlang.term_to_binary(bin))
      removed
    end

    test "each task, each bad argument", %{path: path, dir: dir} do
      missing = Path.join(dir, "missing_bodies.ex")
      broken = Path.join(dir, "broken_bodies.ex")
      File.write!(broken, "defmodule Broken do\n  def body, do: (\nend\n")
      removed = with_removed_body(path, dir)
      racy = "Lockstep.RaceBodies.racy"

      cases = [
        {DumpTrace, [path, "--max-trace-bytes", "abc"],
         ~s(invalid value "abc" for --max-trace-bytes)},
        {DumpTrace, [path, "--max-trace-bytes", "0"],
         "--max-trace-bytes expects a positive integer, got 0"},
        {DumpTrace, [dir], "illegal operation on a directory"},
        {DumpTrace, [path, path], "expected one trace file, got 2"},
        {Replay, [path, "--run", racy, "--file", missing], "cannot load #{missing}"},
        {Replay, [path, "--run", racy, "--file", broken], "cannot load #{broken}"},
        {Replay, [path, "--timeout", "0"], "--timeout expects a positive integer, got 0"},
        {Replay, [path, "--bogus"], "unknown option --bogus"},
        {Replay, [removed],
         "the trace's test body Lockstep.RemovedBodies.gone/0 is not defined (it was in test/removed.exs)"},
        {Shrink, [path, "--run", racy, "--max-attempts", "0"],
         "--max-attempts expects a positive integer, got 0"},
        {Shrink, [path, "--time-budget-ms", "soon"],
         ~s(invalid value "soon" for --time-budget-ms)},
        {Shrink, [path, "--run", racy, "--file", missing], "cannot load #{missing}"},
        {Shrink, [path, "--run", "nope"], "--run expects Module.function"},
        {Shrink, [removed], "the trace's test body Lockstep.RemovedBodies.gone/0 is not defined"}
      ]

      for {task, args, message} <- cases do
        capture_io(fn ->
          error = assert_raise Mix.Error, fn -> task.run(args) end
          assert error.message =~ message, "#{inspect(task)} #{inspect(args)}: #{error.message}"
          refute error.message =~ "\n"
        end)
      end
    end
  end
end
