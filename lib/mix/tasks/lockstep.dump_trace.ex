defmodule Mix.Tasks.Lockstep.DumpTrace do
  @shortdoc "Prints a saved Lockstep trace file"
  @moduledoc """
  Prints a trace file saved by a failing Lockstep run.

      mix lockstep.dump_trace PATH [--format pretty|compact|events|schedule|raw|svg]
                                   [--slice] [--output FILE] [--max-trace-bytes N]

    * `pretty` (default) — the report: what failed, seed, iteration, strategy, the trace
      with the failing step marked, and the replay command;
    * `compact` — the same report with the trace in one line per run of a process's
      consecutive events (as a shrunk failure is printed);
    * `events` — one `{step, event}` term per line, followed by `# file:line` when the
      event comes from instrumented code (its source location);
    * `schedule` — the schedule, one decision per line, numbered from 1 as the steps are
      (`3  deliver P.1 -> P`);
    * `raw` — the whole file as an Elixir term;
    * `svg` — a message sequence chart of the failing iteration (`Lockstep.TraceFile.to_svg/2`),
      written to `--output FILE` (default: PATH with `.svg` in place of `.lockstep`), whose
      path is printed.

  `--slice` keeps only the causal slice (`Lockstep.Trace.Slice`): the events that happened
  before the failing step. `pretty`, `compact` and `events` show it in place of the whole
  trace (which is their default; a failing run's own report shows the slice when it leaves
  events out); `svg` always highlights it.

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
           "[--format pretty|compact|events|schedule|raw|svg] [--slice] [--output FILE] " <>
           "[--max-trace-bytes N]"

  @impl Mix.Task
  def run(args) do
    Lockstep.Tasks.in_test_env("lockstep.dump_trace", args, fn -> dump(args) end)
  end

  defp dump(args) do
    {path, opts} =
      Lockstep.Tasks.parse!(
        args,
        [format: :string, max_trace_bytes: :integer, slice: :boolean, output: :string],
        @usage
      )

    format = opts[:format] || "pretty"
    slice? = opts[:slice] == true

    unless format in ["pretty", "compact", "events", "schedule", "raw", "svg"] do
      Mix.raise(
        "unknown --format #{inspect(format)}; use pretty, compact, events, schedule, raw or svg"
      )
    end

    if opts[:output] && format != "svg" do
      Mix.raise("--output is for --format svg only; the other formats print to the terminal")
    end

    file =
      Lockstep.Tasks.load!(
        path,
        Lockstep.Tasks.positive!(opts, :max_trace_bytes, "--max-trace-bytes")
      )

    case format do
      "pretty" ->
        bug = Lockstep.Tasks.bug_from_file(file, path)
        Mix.shell().info(Lockstep.Report.format(bug, slice: slice?))

      "compact" ->
        bug = Lockstep.Tasks.bug_from_file(file, path)
        Mix.shell().info(Lockstep.Report.format(bug, style: :compact, slice: slice?))

      "events" ->
        keep = if slice?, do: slice_of(file)

        file.events
        |> Enum.with_index()
        |> Enum.filter(fn {_, i} -> keep == nil or MapSet.member?(keep, i) end)
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

      "svg" ->
        output = opts[:output] || Lockstep.TraceFile.svg_path(path)
        svg = Lockstep.TraceFile.to_svg(Lockstep.Tasks.bug_from_file(file, path))

        case File.write(output, svg) do
          :ok -> Mix.shell().info("wrote #{output}")
          {:error, why} -> Mix.raise("cannot write #{output}: #{:file.format_error(why)}")
        end
    end
  end

  defp slice_of(file),
    do: Lockstep.Trace.Slice.indexes(file.events, file.fail_step, file.kind, file.process)
end
