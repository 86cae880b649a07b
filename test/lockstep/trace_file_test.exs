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
end
