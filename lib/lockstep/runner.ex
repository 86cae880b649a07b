defmodule Lockstep.Runner do
  @moduledoc false
  # The iteration loop behind `Lockstep.run/2`, `check/2` and `replay/3`.
  #
  # Fast iterations record decisions only. When one fails, its schedule is replayed once
  # more with full capture (payloads, exit reasons) to build the report; if that replay does
  # not fail the same way, the program has nondeterminism Lockstep does not control, and
  # the report says so with the first divergent step.

  alias Lockstep.{BugFound, Iteration, Options, Session, Summary, Trace, TraceFile}

  def check(fun, opts) do
    if Lockstep.Runtime.context_or_nil() do
      raise ArgumentError,
            "Lockstep.run/2 and check/2 cannot be nested: this process is a managed process " <>
              "of a running Lockstep run. Start runs from the test process."
    end

    cfg = Options.validate!(fun, opts)
    Lockstep.Instrument.instrument!(cfg.instrument)
    cell = Session.strategy(strategy_spec(cfg))
    started = System.monotonic_time(:microsecond)
    Lockstep.Progress.start(cfg)

    # If this process dies mid-run (an ExUnit timeout kills it), the janitor kills the
    # run's processes and frees its state — also during the re-run that builds a report;
    # each worker of a parallel search has its own.
    Lockstep.Janitor.with_janitor(fn -> search(fun, cfg, cell, started) end)
  end

  defp search(fun, cfg, cell, started) do
    {outcome, stats, per_worker, lost_nodes} = Lockstep.Search.run(fun, cfg, cell)
    Lockstep.Progress.stop()
    elapsed = System.monotonic_time(:microsecond) - started

    case outcome do
      :ok when stats.iterations > 0 and stats.max_steps_hit == stats.iterations ->
        {:error, inconclusive(cfg, stats.iterations)}

      :ok ->
        summary = summary(cfg, stats, elapsed)
        if cfg.strategy == :exhaustive, do: IO.puts("Lockstep #{cfg.name}: #{summary}")

        summary =
          cfg
          |> warn(%{summary | per_worker: per_worker, lost_nodes: lost_nodes})
          |> warn_uncontrolled(cfg)

        {:ok, summary}

      {:failed, i, iter_seed, result} ->
        {:error, report(fun, cfg, i, iter_seed, result)}

      {:internal_error, i, reason} ->
        raise Lockstep.InternalError,
          message:
            "#{reason} (run #{inspect(cfg.name)}, seed #{cfg.seed}, iteration #{i}). " <>
              "Every managed process was stopped. Please report it with the test."
    end
  end

  # SPEC §1: a run whose every iteration hit :max_steps tested nothing.
  defp inconclusive(cfg, n) do
    %Lockstep.InconclusiveError{
      name: cfg.name,
      iterations: n,
      max_steps_hit: n,
      max_steps: cfg.max_steps,
      seed: cfg.seed,
      strategy: cfg.user_strategy
    }
  end

  # More than a tenth inconclusive: said in the summary and on stderr (one line, naming the
  # run and, under ctest, the test's location).
  defp warn(cfg, %Summary{iterations: n, max_steps_hit: hit} = summary) when hit * 10 > n do
    warning =
      "#{hit} of #{n} iterations hit :max_steps (#{cfg.max_steps} steps) and were " <>
        "inconclusive; raise :max_steps, or use strategy: :fair_pct if a process spins " <>
        "waiting for another"

    where = if cfg[:location], do: " (#{cfg.location})", else: ""
    IO.puts(:stderr, "warning: Lockstep run #{inspect(cfg.name)}#{where}: #{warning}")
    %{summary | warnings: [warning]}
  end

  defp warn(_cfg, summary), do: summary

  # SPEC §9 "No silent pass": once per run, naming the processes, where, and the fix.
  defp warn_uncontrolled(%Summary{uncontrolled: []} = summary, _cfg), do: summary

  defp warn_uncontrolled(%Summary{uncontrolled: found} = summary, cfg) do
    first = hd(found).iteration

    warning =
      "from iteration #{first}, " <>
        Lockstep.Uncontrolled.describe(Enum.map(found, &{&1.process, &1})) <>
        " (strict_control: true makes this a failure)"

    where = if cfg[:location], do: " (#{cfg.location})", else: ""
    IO.puts(:stderr, "warning: Lockstep run #{inspect(cfg.name)}#{where}: #{warning}")
    %{summary | warnings: summary.warnings ++ [warning]}
  end

  defp summary(cfg, stats, elapsed) do
    %Summary{
      iterations: stats.iterations,
      steps: stats.steps,
      max_steps_hit: stats.max_steps_hit,
      distinct_schedules: MapSet.size(stats.fingerprints),
      context_switches: stats.switches,
      outcomes: %{pass: stats.iterations - stats.max_steps_hit, max_steps: stats.max_steps_hit},
      seed: cfg.seed,
      strategy: cfg.user_strategy,
      elapsed_us: elapsed,
      uncontrolled: stats.uncontrolled,
      complete: complete?(stats.search),
      sleep_blocked: if(stats.search, do: stats.search.sleep_blocked, else: 0),
      still_on_stack: if(stats.search, do: stats.search.depth, else: 0)
    }
  end

  defp complete?(%{exhausted: true}), do: true
  defp complete?(_), do: false

  @doc false
  def strategy_spec(%{strategy: :random}), do: :random
  def strategy_spec(%{strategy: :pos}), do: :pos
  def strategy_spec(%{strategy: :pct, strategy_opts: opts}), do: {:pct, opts[:bug_depth]}

  def strategy_spec(%{strategy: :fair_pct, strategy_opts: opts}),
    do: {:fair_pct, opts[:bug_depth], opts[:fair_switch]}

  def strategy_spec(%{strategy: :idpct, strategy_opts: opts}),
    do: {:idpct, opts[:d_min], opts[:d_max]}

  def strategy_spec(%{strategy: :exhaustive, strategy_opts: opts}),
    do: {:exhaustive, opts[:dpor], opts[:preemption_bound]}

  # Failure reporting ----------------------------------------------------------------------

  defp report(fun, cfg, iteration, iter_seed, fast) do
    capture = recapture(fun, cfg, iter_seed, fast.schedule)
    same? = capture.kind == fast.kind

    {source, nondeterminism} =
      if same? do
        {capture, nil}
      else
        {fast, nondeterminism_note(fast, capture)}
      end

    bug =
      BugFound.new(
        kind: fast.kind,
        reason: source.reason,
        process: fast.proc,
        details: source.details,
        iteration: iteration,
        seed: cfg.seed,
        iter_seed: iter_seed,
        strategy: cfg.user_strategy,
        schedule: fast.schedule,
        trace: if(same?, do: capture.trace, else: capture.trace || []),
        call_sites: capture.call_sites,
        proc_labels: capture.proc_labels,
        name: cfg.name,
        nondeterminism: nondeterminism,
        steps: fast.metrics.steps,
        pid_names: source.pid_names,
        proc_nodes: source.proc_nodes,
        replay_run: replay_run(fun),
        location: cfg[:location]
      )

    saved(bug, cfg)
  end

  @doc false
  # A trace that cannot be saved never replaces the bug: the report says why and prints
  # the encoded schedule, which `Lockstep.replay(body, {:schedule, text})` replays.
  def saved(bug, cfg, path \\ nil) do
    saved =
      try do
        TraceFile.save(bug, cfg, path)
      rescue
        e -> {:error, "writing it raised #{inspect(e.__struct__)}: #{Exception.message(e)}"}
      end

    case saved do
      {:ok, path} ->
        %{bug | trace_path: path, picture_path: picture(bug, path)}

      {:error, why} ->
        %{bug | trace_path: nil, trace_error: why, encoded_schedule: TraceFile.encode(bug, cfg)}
    end
  end

  # The picture of the failing iteration, beside its trace file; a picture that cannot be
  # drawn or written is left out (the trace file is what replays), never the bug.
  defp picture(%{trace: trace} = bug, path) when is_list(trace) and trace != [] do
    svg_path = TraceFile.svg_path(path)

    case File.write(svg_path, TraceFile.to_svg(bug)) do
      :ok -> svg_path
      {:error, _} -> nil
    end
  rescue
    _ -> nil
  end

  defp picture(_bug, _path), do: nil

  @doc false
  # `{Module, function}` for `&Module.function/0`: recorded in the trace file, so the mix
  # tasks replay it without being told; `nil` for an anonymous function.
  def replay_run(fun) do
    case Function.info(fun, :type) do
      {:type, :external} ->
        info = Function.info(fun)
        {info[:module], info[:name]}

      _ ->
        nil
    end
  end

  defp recapture(fun, cfg, iter_seed, schedule) do
    cell = Session.strategy({:replay, schedule})
    Iteration.run(cell, fun, iter_seed, cfg, true)
  end

  @doc false
  # The report's warning when the capturing re-run did not fail the same way.
  def nondeterminism_note(fast, capture) do
    diverged_at =
      case capture.outcome do
        {:diverged, %Session.Divergence{step: step, expected: expected, got: got}} ->
          expected =
            if expected, do: Trace.describe_decision(expected), else: "the end of the schedule"

          "; first divergent step #{step}: expected #{expected}, got #{Trace.describe_decisions(got)}"

        _ ->
          ""
      end

    "re-running the failing schedule with full capture ended as #{inspect(capture.kind)} " <>
      "instead of #{inspect(fast.kind)}: the program has nondeterminism Lockstep does not " <>
      "control (time, :rand, ETS or processes outside the run)" <> diverged_at
  end

  defp check_replay_options!(opts) do
    unless Keyword.keyword?(opts) do
      raise ArgumentError, "Lockstep.replay options must be a keyword list, got: #{inspect(opts)}"
    end

    case Keyword.keys(opts) -- [:timeout, :name, :trace_dir, :max_trace_bytes] do
      [] ->
        :ok

      unknown ->
        raise ArgumentError,
              "unknown replay option(s) #{inspect(unknown)}; Lockstep.replay/3 accepts " <>
                ":timeout, :name, :trace_dir and :max_trace_bytes (the rest comes from the " <>
                "trace file)"
    end
  end

  @doc false
  # The run config a trace file was recorded with (the `:timeout`, `:name` and
  # `:trace_dir` of `opts` win).
  def file_config(fun, file, path, opts) do
    saved = file.options

    run_opts = [
      iterations: 1,
      seed: file.seed,
      max_steps: saved[:max_steps] || 10_000,
      fail_on_max_steps: saved[:fail_on_max_steps] || false,
      delivery: saved[:delivery] || :instant,
      crash: saved[:crash] || :fail,
      timers: saved[:timers] || :on_idle,
      blocked_at_end: saved[:blocked_at_end] || :kill,
      strict_control: saved[:strict_control] || false,
      instrument: saved[:instrument] || [],
      timeout: Keyword.get(opts, :timeout, saved[:timeout] || 5_000),
      name: Keyword.get(opts, :name, file.name),
      trace_dir: Keyword.get_lazy(opts, :trace_dir, fn -> source_dir(path) end)
    ]

    run_opts = if file.location, do: [{:location, file.location} | run_opts], else: run_opts
    cfg = Options.validate!(fun, Enum.reject(run_opts, &match?({:trace_dir, nil}, &1)))
    %{cfg | user_strategy: file.strategy}
  end

  # Replaying a file writes beside it; an encoded schedule uses the usual trace directory.
  defp source_dir({:schedule, _text}), do: nil
  defp source_dir(path), do: Path.dirname(path)

  # Replay ---------------------------------------------------------------------------------

  # The bug a replay reproduced points at its file, or, replayed from an encoded schedule,
  # prints that schedule again.
  defp replayed(bug, {:schedule, _} = _source, cfg),
    do: %{bug | trace_path: nil, encoded_schedule: TraceFile.encode(bug, cfg)}

  defp replayed(bug, path, _cfg), do: %{bug | trace_path: path}

  defp early_failure(kind, result) do
    what =
      case result.reason do
        nil ->
          ""

        reason ->
          ": " <> (reason |> Lockstep.Report.format_reason() |> String.split("\n") |> hd())
      end

    "#{inspect(kind)} of #{result.proc || "the run"} at step #{result.metrics.steps}#{what}"
  end

  # The replay's last events before `step`, with managed pids shown by name.
  defp events_before(result, step) do
    (result.trace || [])
    |> Enum.filter(fn {s, _event} -> s < step end)
    |> Enum.take(-Lockstep.ReplayDivergence.events_kept())
    |> Lockstep.Report.display_trace(result.pid_names)
  end

  defp source_label({:schedule, _}), do: "the encoded schedule"
  defp source_label(path), do: path

  def replay(fun, path, opts) do
    unless is_function(fun, 0) do
      raise ArgumentError,
            "Lockstep.replay expects a zero-arity function as the root process, got: #{inspect(fun)}"
    end

    check_replay_options!(opts)
    file = TraceFile.load!(path, Keyword.take(opts, [:max_trace_bytes]))
    cfg = file_config(fun, file, path, opts)
    Lockstep.Instrument.instrument!(cfg.instrument)
    cell = Session.strategy({:replay, file.schedule})

    result =
      Lockstep.Janitor.with_janitor(fn -> Iteration.run(cell, fun, file.iter_seed, cfg, true) end)

    case result.kind do
      :diverged ->
        {:diverged, %Session.Divergence{} = d} = result.outcome

        raise Lockstep.ReplayDivergence,
          step: d.step,
          expected: d.expected,
          got: d.got,
          path: source_label(path),
          events: events_before(result, d.step)

      :pass ->
        :ok

      :max_steps when not cfg.fail_on_max_steps ->
        :ok

      kind when length(result.schedule) < length(file.schedule) ->
        # Failing before the schedule's end is another failure, not the recorded one. The
        # step is the trace's, as in a divergence the engine reports: a `Lockstep.random`
        # draw belongs to the step that ended it, any other decision starts the next one.
        expected = Enum.at(file.schedule, length(result.schedule))
        steps = result.metrics.steps
        step = if match?({:random, _}, expected), do: steps, else: steps + 1

        raise Lockstep.ReplayDivergence,
          step: step,
          expected: expected,
          got: [],
          path: source_label(path),
          ended_by: early_failure(kind, result),
          events: events_before(result, step + 1)

      kind ->
        bug =
          BugFound.new(
            kind: kind,
            reason: result.reason,
            process: result.proc,
            details: result.details,
            iteration: file.iteration,
            seed: file.seed,
            iter_seed: file.iter_seed,
            strategy: file.strategy,
            schedule: result.schedule,
            trace: result.trace,
            call_sites: result.call_sites,
            proc_labels: result.proc_labels,
            name: cfg.name,
            nondeterminism: nil,
            steps: result.metrics.steps,
            pid_names: result.pid_names,
            proc_nodes: result.proc_nodes,
            replay_run: replay_run(fun),
            location: cfg[:location]
          )

        raise replayed(bug, path, cfg)
    end
  end
end
