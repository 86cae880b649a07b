defmodule Mix.Tasks.Lockstep.DumpTrace do
  @shortdoc "Prints a saved Lockstep trace file"
  @moduledoc """
  Prints a trace file saved by a failing Lockstep run.

      mix lockstep.dump_trace PATH [--format pretty|compact|events|schedule|raw]
                                   [--max-trace-bytes N]

    * `pretty` (default) — the report: what failed, seed, iteration, strategy, the trace
      with the failing step marked, and the replay command;
    * `compact` — the same report with the trace in one line per run of a process's
      consecutive events (as a shrunk failure is printed);
    * `events` — one `{step, event}` term per line, followed by `# file:line` when the
      event comes from instrumented code (its source location);
    * `schedule` — the schedule, one decision per line, numbered from 1 as the steps are
      (`3  deliver P.1 -> P`);
    * `raw` — the whole file as an Elixir term.

  The events and decisions are the kinds `Lockstep.Trace` lists. `--max-trace-bytes N`
  raises the size limit on the file and its decoded contents (default 16 MiB). Runs in
  the test environment unless `MIX_ENV` says otherwise. Bad input (a missing, corrupt or
  malformed file, a bad option) is a one-line error and a non-zero exit status.
  """

  use Mix.Task

  # Read by Mix only for tasks it can load before the project's dependencies (see
  # Lockstep.Tasks.in_test_env/3, which does the work).
  @preferred_cli_env :test

  @usage "usage: mix lockstep.dump_trace PATH " <>
           "[--format pretty|compact|events|schedule|raw] [--max-trace-bytes N]"

  @impl Mix.Task
  def run(args) do
    Lockstep.Tasks.in_test_env("lockstep.dump_trace", args, fn -> dump(args) end)
  end

  defp dump(args) do
    {path, opts} =
      Lockstep.Tasks.parse!(args, [format: :string, max_trace_bytes: :integer], @usage)

    format = opts[:format] || "pretty"

    unless format in ["pretty", "compact", "events", "schedule", "raw"] do
      Mix.raise(
        "unknown --format #{inspect(format)}; use pretty, compact, events, schedule or raw"
      )
    end

    file =
      Lockstep.Tasks.load!(
        path,
        Lockstep.Tasks.positive!(opts, :max_trace_bytes, "--max-trace-bytes")
      )

    case format do
      "pretty" ->
        Mix.shell().info(Lockstep.Report.format(Lockstep.Tasks.bug_from_file(file, path)))

      "compact" ->
        bug = Lockstep.Tasks.bug_from_file(file, path)
        Mix.shell().info(Lockstep.Report.format(bug, style: :compact))

      "events" ->
        file.events
        |> Enum.with_index()
        |> Enum.each(fn {event, i} ->
          line = inspect(event, limit: :infinity)

          case file.call_sites[i] do
            nil -> Mix.shell().info(line)
            site -> Mix.shell().info(line <> "  # " <> site)
          end
        end)

      "schedule" ->
        file.schedule
        |> Enum.with_index(1)
        |> Enum.each(fn {decision, step} ->
          Mix.shell().info("#{step}  #{Lockstep.Trace.describe_decision(decision)}")
        end)

      "raw" ->
        Mix.shell().info(inspect(file, pretty: true, limit: :infinity))
    end
  end
end
