defmodule Mix.Tasks.Lockstep.Replay do
  @shortdoc "Replays a saved Lockstep trace against its test body"
  @moduledoc """
  Prints a trace file's metadata and trace, then re-runs its schedule.

      mix lockstep.replay PATH
      mix lockstep.replay PATH --run MyApp.RaceTest.body --file test/support/race_bodies.ex
      mix lockstep.replay PATH [--timeout MS] [--max-trace-bytes N]

  A trace whose body was a named function — `&Module.function/0`, and every `ctest` —
  records it, so `mix lockstep.replay PATH` replays it without being told (a `ctest`'s
  test file is loaded, after its `test_helper.exs`, as `mix test` would). `--run Mod.fun`
  names another public zero-arity function as the root of the replayed iteration (for a
  trace of an anonymous body, say); `--file` loads the file defining it first (modules
  under `test/` are not compiled into the app).

  Exit status: 1 when the bug reproduces (its report is printed); 0 when the schedule runs
  to the end and nothing fails; a one-line error and a non-zero status when the code no
  longer follows the schedule (`Lockstep.ReplayDivergence`) or the input is bad.

  Runs in the test environment unless `MIX_ENV` says otherwise.
  """

  use Mix.Task

  # Read by Mix only for tasks it can load before the project's dependencies (see
  # Lockstep.Tasks.in_test_env/3, which does the work).
  @preferred_cli_env :test

  @usage "usage: mix lockstep.replay PATH [--run Mod.fun [--file path/to/file.ex]] " <>
           "[--timeout MS] [--max-trace-bytes N]"

  @switches [run: :string, file: :keep, timeout: :integer, max_trace_bytes: :integer]

  @impl Mix.Task
  def run(args) do
    Lockstep.Tasks.in_test_env("lockstep.replay", args, fn -> replay(args) end)
  end

  defp replay(args) do
    {path, opts} = Lockstep.Tasks.parse!(args, @switches, @usage)

    replay_opts =
      Lockstep.Tasks.positive!(opts, :max_trace_bytes, "--max-trace-bytes") ++
        Lockstep.Tasks.positive!(opts, :timeout, "--timeout")

    file = Lockstep.Tasks.load!(path, replay_opts)

    Mix.shell().info(Lockstep.Tasks.metadata(file))
    Mix.shell().info(Lockstep.Report.format(Lockstep.Tasks.bug_from_file(file, path)))

    Mix.Task.run("app.start")

    case Lockstep.Tasks.one_line_errors(fn -> Lockstep.Tasks.body!(opts, file) end) do
      nil ->
        Mix.shell().info(
          "The trace does not name its test body (it was an anonymous function): pass " <>
            "--run Module.function (a public zero-arity function running the same code) " <>
            "to replay it."
        )

      fun ->
        Mix.shell().info("Replaying #{path} with #{describe(fun)} …")
        run_replay(fun, path, replay_opts)
    end
  end

  defp run_replay(fun, path, replay_opts) do
    Lockstep.Tasks.one_line_errors(fn ->
      :ok = Lockstep.replay(fun, path, replay_opts)
      Mix.shell().info("The schedule ran to the end and nothing failed: the bug is fixed.")
    end)
  rescue
    e in Lockstep.BugFound ->
      Mix.shell().info("The bug reproduces (#{e.kind}):\n" <> Exception.message(e))
      exit({:shutdown, 1})

    e in Lockstep.ReplayDivergence ->
      # What the replay did last, then the divergence as the one-line error.
      with %{events: [_ | _]} <- e do
        Mix.shell().info(e |> Exception.message() |> String.split("\n", parts: 2) |> List.last())
      end

      Mix.raise(Exception.message(%{e | events: []}))
  end

  defp describe(fun) do
    info = Function.info(fun)
    Lockstep.Tasks.fun_text(info[:module], info[:name])
  end
end
