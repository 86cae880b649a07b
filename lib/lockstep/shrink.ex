defmodule Lockstep.Shrink do
  @moduledoc false
  # Shrinking a failing schedule. A candidate is a schedule with decisions removed; it is
  # run with a lenient replay (decisions the program does not offer are skipped, and once
  # the candidate is used up the run continues at random, seeded), and kept when the
  # iteration fails with the same kind — what is kept is the schedule that actually ran,
  # so every kept schedule replays exactly. Passes, repeated to a fixed point: prefix
  # truncation (halving), removal of whole runs of one process's consecutive steps, removal
  # of single decisions. "Shorter" is by length, then by context switches: of two schedules
  # of one length, the one that switches less reads better. Bounded by `:max_attempts` and
  # `:time_budget_ms`.

  alias Lockstep.{BugFound, Iteration, Runner, Session, TraceFile}

  @default_max_attempts 500
  @default_budget_ms 30_000

  @option_keys [:max_attempts, :time_budget_ms, :timeout, :name, :trace_dir, :max_trace_bytes]

  def shrink(fun, path, opts) do
    # killed mid-shrink, the caller leaves its janitor to end the iteration under way
    Lockstep.Janitor.with_janitor(fn -> do_shrink(fun, path, opts) end)
  end

  defp do_shrink(fun, path, opts) do
    validate!(opts)
    file = TraceFile.load!(path, Keyword.take(opts, [:max_trace_bytes]))
    cfg = Runner.file_config(fun, file, path, opts)
    Lockstep.Instrument.instrument!(cfg.instrument)
    max_attempts = Keyword.get(opts, :max_attempts, @default_max_attempts)
    budget = Keyword.get(opts, :time_budget_ms, @default_budget_ms)

    state = %{
      fun: fun,
      cfg: cfg,
      seed: file.iter_seed,
      kind: file.kind,
      attempts: 0,
      max_attempts: max_attempts,
      deadline: System.monotonic_time(:millisecond) + budget
    }

    original = file.schedule

    case run_candidate(state, {:replay, original}) do
      {:same, _schedule} ->
        original_events = original_events(state, file)
        {best, state} = fixed_point(state, original)
        bug = Runner.saved(capture(state, best, file), cfg, shrunk_path(path))

        {:ok,
         %{
           trace_path: bug.trace_path,
           original_length: length(original),
           new_length: length(best),
           original_switches: switches(original),
           new_switches: switches(best),
           original_events: original_events,
           new_events: length(bug.trace || []),
           attempts: state.attempts,
           kind: file.kind,
           schedule: best,
           bug: bug
         }}

      {:other, kind} ->
        {:error,
         {:does_not_reproduce,
          "replaying #{label(path)} ended as #{inspect(kind)}, not #{inspect(file.kind)}: the code " <>
            "changed or has nondeterminism Lockstep does not control"}}
    end
  end

  @doc false
  # What shrank, in every measure: a schedule can keep its length and still read much
  # better with fewer context switches and fewer trace events.
  def summary(path, info) do
    saved =
      case info.trace_path do
        nil -> "not saved: #{info.bug.trace_error}"
        shrunk -> "saved to #{shrunk}"
      end

    "Shrunk #{label(path)}: #{info.original_length} → #{info.new_length} decisions, " <>
      "#{info.original_switches} → #{info.new_switches} context switches, " <>
      "#{info.original_events} → #{info.new_events} trace events " <>
      "(#{info.attempts} attempts), #{saved}"
  end

  # The file's events, or (an encoded schedule has none) those of one captured replay.
  defp original_events(_state, %{events: [_ | _] = events}), do: length(events)

  defp original_events(state, file) do
    cell = Session.strategy({:replay, file.schedule})
    r = Iteration.run(cell, state.fun, state.seed, state.cfg, true)
    length(r.trace || [])
  end

  defp validate!(opts) do
    unless Keyword.keyword?(opts) do
      raise ArgumentError, "Lockstep.shrink options must be a keyword list, got: #{inspect(opts)}"
    end

    Enum.each(opts, fn
      {key, value} when key in [:max_attempts, :time_budget_ms, :max_trace_bytes] ->
        unless is_integer(value) and value > 0 do
          raise ArgumentError,
                "invalid value for shrink option #{inspect(key)}: got #{inspect(value)}, " <>
                  "expected a positive integer"
        end

      {key, _value} when key in @option_keys ->
        :ok

      {key, value} ->
        raise ArgumentError,
              "unknown shrink option #{inspect(key)} (value #{inspect(value)}); " <>
                "Lockstep.shrink/3 accepts " <> Enum.map_join(@option_keys, ", ", &inspect/1)
    end)
  end

  defp label({:schedule, _text}), do: "the encoded schedule"
  defp label(path), do: path

  # Beside the original; a shrunk encoded schedule gets a file of its own in :trace_dir.
  defp shrunk_path({:schedule, _text}), do: nil
  defp shrunk_path(path), do: Path.rootname(path, ".lockstep") <> ".shrunk.lockstep"

  defp fixed_point(state, best) do
    {candidate, state} =
      {best, state}
      |> pass(&truncations/1)
      |> pass(&run_removals/1)
      |> pass(&single_removals/1)

    if smaller?(candidate, best) and budget_left?(state),
      do: fixed_point(state, candidate),
      else: {candidate, state}
  end

  # Tries each candidate the generator proposes for the current best; restarts the pass
  # from the new best whenever one is shorter.
  defp pass({best, state}, generator) do
    Enum.reduce_while(generator.(best), {best, state}, fn candidate, {best, state} ->
      cond do
        not budget_left?(state) ->
          {:halt, {best, state}}

        length(candidate) > length(best) ->
          {:cont, {best, state}}

        true ->
          state = %{state | attempts: state.attempts + 1}

          case run_candidate(state, {:shrink_replay, candidate, state.seed}) do
            {:same, ran} ->
              if smaller?(ran, best),
                do: {:halt, pass({ran, state}, generator)},
                else: {:cont, {best, state}}

            _ ->
              {:cont, {best, state}}
          end
      end
    end)
  end

  defp smaller?(a, b), do: measure(a) < measure(b)

  defp measure(schedule), do: {length(schedule), switches(schedule)}

  defp switches(schedule) do
    schedule
    |> Enum.flat_map(fn
      {:run, p} -> [p]
      _ -> []
    end)
    |> Enum.chunk_by(& &1)
    |> length()
  end

  defp budget_left?(state) do
    state.attempts < state.max_attempts and
      System.monotonic_time(:millisecond) < state.deadline
  end

  defp truncations(schedule) do
    n = length(schedule)

    Stream.unfold(div(n, 2), fn
      0 -> nil
      k -> {Enum.take(schedule, n - k), div(k, 2)}
    end)
  end

  # Removes each maximal run of consecutive decisions of one process, longest first.
  defp run_removals(schedule) do
    schedule
    |> Enum.with_index()
    |> Enum.chunk_by(fn {decision, _} -> owner(decision) end)
    |> Enum.filter(&(length(&1) > 1))
    |> Enum.sort_by(&(-length(&1)))
    |> Stream.map(fn chunk ->
      drop = MapSet.new(chunk, fn {_, i} -> i end)
      for {d, i} <- Enum.with_index(schedule), not MapSet.member?(drop, i), do: d
    end)
  end

  defp single_removals(schedule) do
    n = length(schedule)
    Stream.map((n - 1)..0//-1, &List.delete_at(schedule, &1))
  end

  defp owner({:run, p}), do: p
  defp owner({:deliver, _from, to}), do: {:deliver, to}
  defp owner(other), do: other

  defp run_candidate(state, spec) do
    cell = Session.strategy(spec)
    result = Iteration.run(cell, state.fun, state.seed, state.cfg, false)

    if result.kind == state.kind,
      do: {:same, result.schedule},
      else: {:other, result.kind}
  end

  defp capture(state, schedule, file) do
    cell = Session.strategy({:replay, schedule})
    r = Iteration.run(cell, state.fun, state.seed, state.cfg, true)

    BugFound.new(
      kind: r.kind,
      reason: r.reason,
      process: r.proc,
      details: r.details,
      iteration: file.iteration,
      seed: file.seed,
      iter_seed: file.iter_seed,
      strategy: file.strategy,
      schedule: r.schedule || schedule,
      trace: r.trace,
      call_sites: r.call_sites,
      proc_labels: r.proc_labels,
      name: state.cfg.name,
      nondeterminism: nil,
      steps: r.metrics.steps,
      pid_names: r.pid_names,
      proc_nodes: r.proc_nodes,
      replay_run: Runner.replay_run(state.fun),
      location: state.cfg[:location],
      trace_style: :compact
    )
  end
end
