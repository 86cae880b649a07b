defmodule Mix.Tasks.Lockstep.Replay do
  @shortdoc "Shows a saved Lockstep trace and replays it against a test body"
  @moduledoc """
  Prints a trace file's metadata and trace, and re-runs its schedule when told which
  function is the test body.

      mix lockstep.replay PATH
      mix lockstep.replay PATH --run MyApp.RaceTest.body --file test/support/race_bodies.ex

  `--run Mod.fun` names a public zero-arity function returning nothing in particular: it
  is the root of the replayed iteration (the body you passed to `Lockstep.run/2`).
  `--file` loads the file defining it first (for modules under `test/`, which are not
  compiled into the app). The replay raises the same `Lockstep.BugFound` when the bug
  reproduces and `Lockstep.ReplayDivergence` when the code no longer follows the schedule.
  """

  use Mix.Task

  @impl Mix.Task
  def run(args) do
    {opts, paths, invalid} = OptionParser.parse(args, strict: [run: :string, file: :keep])

    path =
      case {paths, invalid} do
        {[path], []} ->
          path

        _ ->
          Mix.raise("usage: mix lockstep.replay PATH [--run Mod.fun [--file path/to/file.ex]]")
      end

    file =
      try do
        Lockstep.TraceFile.load!(path)
      rescue
        e in Lockstep.TraceError -> Mix.raise(Exception.message(e))
      end

    Mix.shell().info(metadata(file))
    Mix.shell().info(Lockstep.Report.format(Lockstep.Tasks.bug_from_file(file, path)))

    if target = opts[:run] do
      Mix.Task.run("app.start")
      Enum.each(Keyword.get_values(opts, :file), &Code.require_file/1)
      fun = Lockstep.Tasks.resolve_fun!(target)
      Mix.shell().info("Replaying #{path} with #{target}/0 …")

      try do
        :ok = Lockstep.replay(fun, path)
        Mix.shell().info("The schedule ran to the end and nothing failed: the bug is fixed.")
      rescue
        e in Lockstep.BugFound ->
          Mix.shell().info("The bug reproduces (#{e.kind}):\n" <> Exception.message(e))
          exit({:shutdown, 1})

        e in Lockstep.ReplayDivergence ->
          Mix.raise(Exception.message(e))
      end
    end
  end

  defp metadata(file) do
    """
    Lockstep trace #{file[:name]} (format v#{file.version}, written by Lockstep #{file[:lockstep_version]})
      kind: #{inspect(file.kind)}   process: #{file[:process] || "-"}
      seed: #{file.seed}   iteration: #{file.iteration}   iteration seed: #{file.iter_seed}
      strategy: #{inspect(file[:strategy])}   options: #{inspect(file.options)}
      schedule: #{length(file.schedule)} decisions
    """
  end
end
