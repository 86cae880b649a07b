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

    {outcome, stats, per_worker} = search(fun, cfg, cell)
    Lockstep.Progress.stop()
    elapsed = System.monotonic_time(:microsecond) - started

    case outcome do
      :ok ->
        {:ok, %{summary(cfg, stats, elapsed) | per_worker: per_worker}}

      {:failed, i, iter_seed, result} ->
        {:error, report(fun, cfg, i, iter_seed, result)}

      {:internal_error, i, reason} ->
        raise Lockstep.InternalError,
          message:
            "#{reason} (run #{inspect(cfg.name)}, seed #{cfg.seed}, iteration #{i}). " <>
              "Every managed process was stopped. Please report it with the test."
    end
  end

  # The search: iterations 1..n in order, or with `workers: w` (SPEC §11) w independent
  # searches at once, worker k taking iterations k, k+w, k+2w, … with its own strategy
  # state. Every iteration keeps the seed it has in the sequential run. Workers share only
  # `stop`, the lowest failing iteration so far: a worker stops before an iteration at or
  # past it. Each worker's iterations below the lowest failing one therefore all run, in
  # order, whatever the others do, so the reported bug — the lowest failing iteration — is
  # the same for a given seed and worker count, however the workers were scheduled.
  defp search(fun, %{workers: 1} = cfg, cell) do
    {outcome, stats} = loop(fun, cfg, cell, 1, 1, new_stats(), nil)
    {lowest_failure([outcome]), stats, []}
  end

  defp search(fun, cfg, _cell) do
    n = cfg.workers
    stop = :atomics.new(1, signed: false)
    :atomics.put(stop, 1, cfg.iterations + 1)
    spec = strategy_spec(cfg)
    done = :counters.new(1, [:write_concurrency])
    reply = make_ref()
    caller = self()
    schedulers = System.schedulers_online()

    # Each worker is bound to its own scheduler (and its iterations' processes with it, see
    # `Lockstep.Runtime.spawn_root/3`), linked to the caller so that none outlives it.
    workers =
      for w <- 1..n, into: %{} do
        {pid, monitor} =
          spawn_bound_worker(rem(w - 1, schedulers) + 1, fn ->
            Kernel.send(caller, {reply, w, worker(fun, cfg, spec, w, {stop, done})})
          end)

        {w, {pid, monitor}}
      end

    results = await_workers(workers, reply, %{}, done)

    per_worker =
      for w <- 1..n do
        {_outcome, stats} = results[w]
        %{worker: w, iterations: stats.iterations, steps: stats.steps}
      end

    outcomes = for w <- 1..n, do: elem(results[w], 0)
    stats = Enum.reduce(1..n, new_stats(), &merge_stats(&2, elem(results[&1], 1)))
    {lowest_failure(outcomes), stats, per_worker}
  end

  defp spawn_bound_worker(scheduler, fun) do
    :erlang.spawn_opt(fun, [:link, :monitor, {:scheduler, scheduler}])
  rescue
    ArgumentError -> :erlang.spawn_opt(fun, [:link, :monitor])
  end

  defp worker(fun, cfg, spec, w, shared) do
    cell = Native.strategy_new(spec)
    loop(fun, cfg, cell, w, cfg.workers, new_stats(), shared)
  catch
    kind, reason -> {:raised, kind, reason, __STACKTRACE__}
  end

  # Waits for every worker; a worker that raised makes the run raise the same.
  defp await_workers(workers, _reply, results, _done) when map_size(workers) == 0, do: results

  defp await_workers(workers, reply, results, done) do
    receive do
      {^reply, w, {:raised, kind, reason, stack}} ->
        stop_workers(Map.delete(workers, w))
        :erlang.raise(kind, reason, stack)

      {^reply, w, result} ->
        {{_pid, monitor}, workers} = Map.pop(workers, w)
        Process.demonitor(monitor, [:flush])
        await_workers(workers, reply, Map.put(results, w, result), done)

      {:DOWN, monitor, :process, _pid, reason} when reason != :normal ->
        if Enum.any?(workers, fn {_w, {_pid, m}} -> m == monitor end) do
          stop_workers(workers)
          exit({:lockstep_worker_died, reason})
        else
          await_workers(workers, reply, results, done)
        end
    after
      250 ->
        Lockstep.Progress.tick(:counters.get(done, 1), %{workers: map_size(workers)})
        await_workers(workers, reply, results, done)
    end
  end

  # No worker (and so no managed process: each worker owns its iterations' sessions) may
  # outlive the run, also when it raises.
  defp stop_workers(workers) do
    for {_w, {pid, monitor}} <- workers do
      Process.unlink(pid)
      Process.exit(pid, :kill)

      receive do
        {:DOWN, ^monitor, :process, _, _} -> :ok
      end
    end

    :ok
  end

  defp merge_stats(a, b) do
    %{
      iterations: a.iterations + b.iterations,
      steps: a.steps + b.steps,
      max_steps_hit: a.max_steps_hit + b.max_steps_hit,
      fingerprints: MapSet.union(a.fingerprints, b.fingerprints),
      switches: a.switches + b.switches
    }
  end

  defp lowest_failure(outcomes) do
    failures = for {kind, i, _, _} = f <- outcomes, kind in [:failed, :internal_error], do: {i, f}

    case Enum.min_by(failures, &elem(&1, 0), fn -> nil end) do
      nil -> :ok
      {_i, {:internal_error, i, reason, _}} -> {:internal_error, i, reason}
      {_i, failed} -> failed
    end
  end

  defp lower_stop(nil, _i), do: :ok
  defp lower_stop({stop, _done}, i), do: lower_stop(stop, i)

  defp lower_stop(stop, i) do
    current = :atomics.get(stop, 1)

    if i < current and :atomics.compare_exchange(stop, 1, current, i) != :ok do
      lower_stop(stop, i)
    else
      :ok
    end
  end

  defp stopped?(nil, _i), do: false
  defp stopped?({stop, _done}, i), do: i >= :atomics.get(stop, 1)

  defp count_done(nil), do: :ok
  defp count_done({_stop, done}), do: :counters.add(done, 1, 1)

  defp new_stats do
    %{iterations: 0, steps: 0, max_steps_hit: 0, fingerprints: MapSet.new(), switches: 0}
  end

  # Iterations i, i + stride, i + 2·stride, … up to `:iterations`, or until one fails or
  # `stop` says a lower one has.
  defp loop(_fun, %{iterations: n}, _cell, i, _stride, stats, _stop) when i > n,
    do: {:ok, stats}

  defp loop(fun, cfg, cell, i, stride, stats, stop) do
    if stopped?(stop, i) do
      {:ok, stats}
    else
      iter_seed = Native.iteration_seed(cfg.seed, i)
      result = Iteration.run(cell, fun, iter_seed, cfg, false)
      stats = account(stats, result)
      count_done(stop)
      Lockstep.Progress.tick(i, stats)

      case result.kind do
        :pass ->
          loop(fun, cfg, cell, i + stride, stride, stats, stop)

        :internal_error ->
          lower_stop(stop, i)
          {{:internal_error, i, result.reason, nil}, stats}

        :max_steps when not cfg.fail_on_max_steps ->
          stats = %{stats | max_steps_hit: stats.max_steps_hit + 1}
          loop(fun, cfg, cell, i + stride, stride, stats, stop)

        _failure ->
          lower_stop(stop, i)
          {{:failed, i, iter_seed, result}, stats}
      end
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
