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

    # If this process dies mid-run (an ExUnit timeout kills it), the janitor kills the
    # run's processes and frees its state.
    result = Lockstep.Janitor.with_janitor(fn -> loop(fun, cfg, cell, 1, new_stats()) end)
    Lockstep.Progress.stop()
    elapsed = System.monotonic_time(:microsecond) - started

    case result do
      {:ok, %{iterations: n, max_steps_hit: n}} when n > 0 -> {:error, inconclusive(cfg, n)}
      {:ok, stats} -> {:ok, warn(cfg, summary(cfg, stats, elapsed))}
      {:bug, bug} -> {:error, bug}
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

  defp new_stats do
    %{iterations: 0, steps: 0, max_steps_hit: 0, fingerprints: MapSet.new(), switches: 0}
  end

  defp loop(_fun, %{iterations: n}, _cell, i, stats) when i > n, do: {:ok, stats}

  defp loop(fun, cfg, cell, i, stats) do
    iter_seed = Native.iteration_seed(cfg.seed, i)
    result = Iteration.run(cell, fun, iter_seed, cfg, false)
    stats = account(stats, result)
    Lockstep.Progress.tick(i, stats)

    case result.kind do
      :pass ->
        loop(fun, cfg, cell, i + 1, stats)

      :internal_error ->
        raise Lockstep.InternalError,
          message:
            "#{result.reason} (run #{inspect(cfg.name)}, seed #{cfg.seed}, iteration #{i}). " <>
              "Every managed process was stopped. Please report it with the test."

      :max_steps when not cfg.fail_on_max_steps ->
        loop(fun, cfg, cell, i + 1, %{stats | max_steps_hit: stats.max_steps_hit + 1})

      _failure ->
        {:bug, report(fun, cfg, i, iter_seed, result)}
    end
  end

  defp account(stats, %{metrics: m}) do
    %{
      stats
      | iterations: stats.iterations + 1,
        steps: stats.steps + m.steps,
        switches: stats.switches + m.context_switches,
        fingerprints: MapSet.put(stats.fingerprints, m.fingerprint)
    }
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

    result =
      Lockstep.Janitor.with_janitor(fn -> Iteration.run(cell, fun, file.iter_seed, cfg, true) end)

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
