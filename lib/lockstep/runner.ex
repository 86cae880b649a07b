defmodule Lockstep.Runner do
  @moduledoc false
  # The iteration loop behind `Lockstep.run/2`, `check/2` and `replay/3`.
  #
  # Fast iterations record decisions only. When one fails, its schedule is replayed once
  # more with full capture (payloads, exit reasons) to build the report; if that replay does
  # not fail the same way, the program has nondeterminism Lockstep does not control, and
  # the report says so with the first divergent step.

  alias Lockstep.{BugFound, Iteration, Native, Options, Summary, TraceFile}

  def check(fun, opts) do
    if Lockstep.Runtime.context_or_nil() do
      raise ArgumentError,
            "Lockstep.run/2 and check/2 cannot be nested: this process is a managed process " <>
              "of a running Lockstep run. Start runs from the test process."
    end

    cfg = Options.validate!(fun, opts)
    cell = Native.strategy_new(strategy_spec(cfg))
    started = System.monotonic_time(:microsecond)
    Lockstep.Progress.start(cfg)

    {outcome, stats, per_worker, lost_nodes} = Lockstep.Search.run(fun, cfg, cell)
    Lockstep.Progress.stop()
    elapsed = System.monotonic_time(:microsecond) - started

    case outcome do
      :ok ->
        summary = summary(cfg, stats, elapsed)
        {:ok, %{summary | per_worker: per_worker, lost_nodes: lost_nodes}}

      {:failed, i, iter_seed, result} ->
        {:error, report(fun, cfg, i, iter_seed, result)}

      {:internal_error, i, reason} ->
        raise Lockstep.InternalError,
          message:
            "#{reason} (run #{inspect(cfg.name)}, seed #{cfg.seed}, iteration #{i}). " <>
              "Every managed process was stopped. Please report it with the test."
    end
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
      elapsed_us: elapsed
    }
  end

  @doc false
  def strategy_spec(%{strategy: :random}), do: :random
  def strategy_spec(%{strategy: :pos}), do: :pos
  def strategy_spec(%{strategy: :pct, strategy_opts: opts}), do: {:pct, opts[:bug_depth]}

  def strategy_spec(%{strategy: :fair_pct, strategy_opts: opts}),
    do: {:fair_pct, opts[:bug_depth], opts[:fair_switch]}

  def strategy_spec(%{strategy: :idpct, strategy_opts: opts}),
    do: {:idpct, opts[:d_min], opts[:d_max]}

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
        name: cfg.name,
        nondeterminism: nondeterminism,
        steps: fast.metrics.steps,
        pid_names: source.pid_names,
        proc_nodes: source.proc_nodes,
        replay_run: replay_run(fun),
        location: cfg[:location]
      )

    path = TraceFile.save!(bug, cfg)
    %{bug | trace_path: path}
  end

  @doc false
  # "Module.function" for `&Module.function/0`: what `mix lockstep.replay --run` takes.
  def replay_run(fun) do
    case Function.info(fun, :type) do
      {:type, :external} ->
        info = Function.info(fun)
        "#{inspect(info[:module])}.#{info[:name]}"

      _ ->
        nil
    end
  end

  defp recapture(fun, cfg, iter_seed, schedule) do
    cell = Native.strategy_new({:replay, schedule})
    Iteration.run(cell, fun, iter_seed, cfg, true)
  end

  defp nondeterminism_note(fast, capture) do
    diverged_at =
      case capture.outcome do
        {:diverged, step, expected, got} ->
          "; first divergent step #{step}: expected #{inspect(expected)}, got #{inspect(got)}"

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

    case Keyword.keys(opts) -- [:timeout, :name, :trace_dir] do
      [] ->
        :ok

      unknown ->
        raise ArgumentError,
              "unknown replay option(s) #{inspect(unknown)}; Lockstep.replay/3 accepts " <>
                ":timeout, :name and :trace_dir (the rest comes from the trace file)"
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
      timeout: Keyword.get(opts, :timeout, saved[:timeout] || 5_000),
      name: Keyword.get(opts, :name, file.name),
      trace_dir: Keyword.get(opts, :trace_dir, Path.dirname(path))
    ]

    cfg = Options.validate!(fun, run_opts)
    %{cfg | user_strategy: file.strategy}
  end

  # Replay ---------------------------------------------------------------------------------

  def replay(fun, path, opts) do
    unless is_function(fun, 0) do
      raise ArgumentError,
            "Lockstep.replay expects a zero-arity function as the root process, got: #{inspect(fun)}"
    end

    check_replay_options!(opts)
    file = TraceFile.load!(path)
    cfg = file_config(fun, file, path, opts)
    cell = Native.strategy_new({:replay, file.schedule})
    result = Iteration.run(cell, fun, file.iter_seed, cfg, true)

    case result.kind do
      :diverged ->
        {:diverged, step, expected, got} = result.outcome
        raise Lockstep.ReplayDivergence, step: step, expected: expected, got: got, path: path

      :pass ->
        :ok

      :max_steps when not cfg.fail_on_max_steps ->
        :ok

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
            name: cfg.name,
            nondeterminism: nil,
            steps: result.metrics.steps,
            pid_names: result.pid_names,
            proc_nodes: result.proc_nodes,
            replay_run: replay_run(fun)
          )

        raise %{bug | trace_path: path}
    end
  end
end
