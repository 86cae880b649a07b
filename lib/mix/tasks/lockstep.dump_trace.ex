defmodule Mix.Tasks.Lockstep.DumpTrace do
  @shortdoc "Prints a saved Lockstep trace file"
  @moduledoc """
  Prints a trace file saved by a failing Lockstep run.

      mix lockstep.dump_trace PATH [--format pretty|events|raw]

    * `pretty` (default) — the report: what failed, seed, iteration, strategy, the trace
      with the failing step marked, and the replay command;
    * `events` — one `{step, event}` term per line;
    * `raw` — the whole file as an Elixir term.
  """

  use Mix.Task

  @impl Mix.Task
  def run(args) do
    {opts, paths, invalid} = OptionParser.parse(args, strict: [format: :string])

    case {paths, invalid} do
      {[path], []} -> dump(path, opts[:format] || "pretty")
      _ -> Mix.raise("usage: mix lockstep.dump_trace PATH [--format pretty|events|raw]")
    end
  end

  defp dump(path, format) do
    file = load(path)

    case format do
      "pretty" ->
        Mix.shell().info(Lockstep.Report.format(Lockstep.Tasks.bug_from_file(file, path)))

      "events" ->
        Enum.each(file.events, &Mix.shell().info(inspect(&1, limit: :infinity)))

      "raw" ->
        Mix.shell().info(inspect(file, pretty: true, limit: :infinity))

      other ->
        Mix.raise("unknown --format #{inspect(other)}; use pretty, events or raw")
    end
  end

  defp load(path) do
    Lockstep.TraceFile.load!(path)
  rescue
    e in Lockstep.TraceError -> Mix.raise(Exception.message(e))
  end
end
