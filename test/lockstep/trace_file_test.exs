defmodule Lockstep.TraceFileTest do
  use ExUnit.Case, async: true

  alias Lockstep.{BugFound, TraceFile}
  import Lockstep.TestSupport

  # A body that fails with a message naming `n`, so each run's failure is its own.
  defp failing(n), do: fn -> raise "failure of run #{inspect(n)}" end

  describe "concurrent runs with the same name and seed" do
    test "each get their own BugFound and their own trace file" do
      dir = tmp_dir!()

      for round <- 1..5 do
        runs = 12

        results =
          1..runs
          |> Enum.map(fn n ->
            Task.async(fn ->
              Lockstep.check(failing({round, n}),
                name: "shared helper",
                seed: 7,
                iterations: 1,
                trace_dir: dir
              )
            end)
          end)
          |> Task.await_many(30_000)

        paths =
          for {{:error, %BugFound{} = bug}, n} <- Enum.with_index(results, 1) do
            assert {:error, %RuntimeError{message: message}, _} = bug.reason
            assert message == "failure of run #{inspect({round, n})}"
            assert is_binary(bug.trace_path)
            saved = TraceFile.load!(bug.trace_path)
            assert saved.reason =~ "failure of run #{inspect({round, n})}"
            bug.trace_path
          end

        assert length(paths) == runs, "some runs did not return their BugFound"
        assert length(Enum.uniq(paths)) == runs
      end

      assert Path.wildcard(Path.join(dir, "*.tmp*")) == []
    end

    test "the file name still says the run's name, seed and iteration" do
      dir = tmp_dir!()

      {:error, bug} =
        Lockstep.check(failing(1), name: "my run", seed: 42, iterations: 1, trace_dir: dir)

      assert Path.dirname(bug.trace_path) == dir
      assert Path.basename(bug.trace_path) =~ ~r/^my_run-seed42-iter1-[0-9a-z-]+\.lockstep$/
    end
  end

  describe "a trace that cannot be saved" do
    # The report's encoded schedule, as printed.
    defp printed_schedule(bug) do
      [_, code] = Regex.run(~r/\{:schedule, "([A-Za-z0-9_-]+)"\}/, Exception.message(bug))
      code
    end

    test "an invalid :trace_dir still gives the BugFound, with the encoded schedule" do
      dir = tmp_dir!()
      file = Path.join(dir, "a_file")
      File.write!(file, "")

      for {trace_dir, why} <- [
            {Path.join(file, "traces"), "not a directory"},
            {"/proc/lockstep-traces", "cannot create the trace directory"},
            {"bad\0dir", "NUL byte"}
          ] do
        assert {:error, %BugFound{} = bug} =
                 Lockstep.check(ordering_race(), iterations: 100, seed: 5, trace_dir: trace_dir)

        assert bug.kind == :exception
        assert {:error, %RuntimeError{message: "out of order" <> _}, _} = bug.reason
        assert bug.trace_path == nil
        assert bug.trace_error =~ why
        assert is_binary(bug.encoded_schedule)

        message = Exception.message(bug)
        assert message =~ "out of order"
        assert message =~ "seed: 5"
        assert message =~ "The trace file could not be written: #{bug.trace_error}"
        assert printed_schedule(bug) == bug.encoded_schedule

        # The printed text replays the bug exactly.
        replayed =
          assert_raise BugFound, fn ->
            Lockstep.replay(ordering_race(), {:schedule, printed_schedule(bug)})
          end

        assert replayed.kind == bug.kind
        assert replayed.schedule == bug.schedule
        assert replayed.trace_path == nil
        assert Exception.message(replayed) =~ "{:schedule, "
      end
    end

    test "run/2 raises the BugFound, not a File error" do
      assert_raise BugFound, ~r/out of order/, fn ->
        Lockstep.run(ordering_race(), iterations: 100, seed: 5, trace_dir: "/proc/nope/traces")
      end
    end

    test "an encoded schedule carries the run's options and seeds" do
      opts = [iterations: 100, seed: 9, delivery: :delayed, max_steps: 700]

      assert {:error, bug} = Lockstep.check(ordering_race(), [trace_dir: "/proc/nope"] ++ opts)

      file = TraceFile.load!({:schedule, bug.encoded_schedule})
      assert file.schedule == bug.schedule
      assert file.seed == 9
      assert file.iter_seed == bug.iter_seed
      assert file.iteration == bug.iteration
      assert file.options[:delivery] == :delayed
      assert file.options[:max_steps] == 700

      # ...and it is the same bug as the file a writable directory gets.
      assert {:error, saved} = Lockstep.check(ordering_race(), [trace_dir: tmp_dir!()] ++ opts)
      assert TraceFile.load!(saved.trace_path).schedule == file.schedule
    end

    test "an encoded schedule shrinks into a file of the trace directory" do
      dir = tmp_dir!()
      body = &Lockstep.RaceBodies.racy_with_spinner/0

      assert {:error, bug} =
               Lockstep.check(body, iterations: 200, seed: 3, trace_dir: "/proc/nope")

      assert {:ok, info} =
               Lockstep.shrink(body, {:schedule, bug.encoded_schedule},
                 trace_dir: dir,
                 max_attempts: 50
               )

      assert Path.dirname(info.trace_path) == dir
      assert info.original_length == length(bug.schedule)
      assert info.new_length <= info.original_length
      assert info.original_events > 0
      replayed = assert_raise BugFound, fn -> Lockstep.replay(body, info.trace_path) end
      assert replayed.schedule == info.schedule
    end

    test "an encoded schedule that is not one raises TraceError" do
      for {text, message} <- [
            {"not base64 at all!", "not an encoded schedule"},
            {Base.url_encode64("hello", padding: false), "corrupt or not in Erlang"},
            {Base.url_encode64(:erlang.term_to_binary(:hello), padding: false),
             "not a Lockstep trace"}
          ] do
        error =
          assert_raise Lockstep.TraceError, fn ->
            Lockstep.replay(ordering_race(), {:schedule, text})
          end

        assert Exception.message(error) =~ message
        assert Exception.message(error) =~ "(encoded schedule)"
      end
    end
  end
end

defmodule Lockstep.TraceDirEnvTest do
  # Not async: LOCKSTEP_TRACE_DIR is global to the VM.
  use ExUnit.Case, async: false

  alias Lockstep.BugFound
  import Lockstep.TestSupport

  test "LOCKSTEP_TRACE_DIR=\"\" gives the BugFound and says why no file was written" do
    System.put_env("LOCKSTEP_TRACE_DIR", "")
    on_exit(fn -> System.delete_env("LOCKSTEP_TRACE_DIR") end)

    assert {:error, %BugFound{} = bug} =
             Lockstep.check(ordering_race(), iterations: 100, seed: 5, trace_dir: tmp_dir!())

    assert bug.trace_path == nil
    assert bug.trace_error =~ "LOCKSTEP_TRACE_DIR"
    assert Exception.message(bug) =~ "The trace file could not be written"

    replayed =
      assert_raise BugFound, fn ->
        Lockstep.replay(ordering_race(), {:schedule, bug.encoded_schedule})
      end

    assert replayed.schedule == bug.schedule
  end
end
