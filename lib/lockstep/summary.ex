defmodule Lockstep.Summary do
  @moduledoc """
  What a passing `Lockstep.run/2` explored.

    * `iterations` — iterations run;
    * `steps` — scheduling steps over all iterations;
    * `max_steps_hit` — iterations cut short by `:max_steps` (inconclusive);
    * `distinct_schedules` — how many different schedules were explored;
    * `context_switches` — steps that switched to another process, over all iterations;
    * `outcomes` — iterations per ending (`:pass`, `:max_steps`);
    * `warnings` — what the run wants you to know; when more than a tenth of the
      iterations hit `:max_steps`, a line with the counts (also printed on stderr). A run
      in which every iteration hit it returns `Lockstep.InconclusiveError` instead;
    * `seed`, `strategy` — as given or chosen; pass `seed:` to repeat the run exactly;
    * `elapsed_us` — wall-clock time of the whole run;
    * `per_worker` — with `workers: n > 1`, each worker's `%{worker:, iterations:, steps:}`
      (empty for a sequential run); under `:exhaustive`, the executions each worker ran
      for the one search, which add up to at least `iterations`;
    * `lost_nodes` — nodes of `nodes:` lost during the run (their share was re-run here);
    * `uncontrolled` — concurrency that escaped Lockstep's control (SPEC §9 "No silent
      pass"): each entry is `%{iteration:, process:, messages:, started:}`, the first
      iteration a managed process (`process`, its symbolic name) was found holding
      `messages` that did not come through Lockstep (inspected), or having `started`
      processes Lockstep does not manage (`%{pid:, call:, location:, module:}`: their
      initial call, the first frame of user code in their stacktrace, and the module to
      add to `:instrument`); at most 10 distinct findings. Empty for a run Lockstep fully
      controlled. When it is not, the run prints one warning naming them and the module
      to instrument (also in `warnings`); `strict_control: true` fails the iteration as
      `:uncontrolled` instead;
    * `complete` — with `strategy: :exhaustive`, whether every interleaving (up to
      equivalence; within the preemption bound, if one was given) was explored: the test
      is verified for this program and these options. Always `false` for the randomised
      strategies, which cannot tell;
    * `sleep_blocked` — with `:exhaustive`, interleavings cut short because every choice
      left was asleep (redundant work of `dpor: :source`; `:optimal` has none unless a
      step killed another process, which makes both start over with sleep sets alone:
      see the exhaustive guide);
    * `still_on_stack` — with `:exhaustive` stopped by `:iterations` before the end, the
      depth of the search stack still to backtrack over (0 when complete).

  `to_string/1` says what the run covered, e.g. "verified: all 64 interleavings explored,
  no bug" for a complete exhaustive run (one in which an interleaving was cut short by
  `:max_steps` says so instead of "verified", and an incomplete one says how many were),
  or "200 iterations (57 distinct schedules),
  no bug", which adds how many were inconclusive when some hit `:max_steps`.
  """

  defstruct iterations: 0,
            steps: 0,
            max_steps_hit: 0,
            distinct_schedules: 0,
            context_switches: 0,
            outcomes: %{},
            warnings: [],
            seed: nil,
            strategy: nil,
            elapsed_us: 0,
            per_worker: [],
            lost_nodes: [],
            uncontrolled: [],
            complete: false,
            sleep_blocked: 0,
            still_on_stack: 0

  @type t :: %__MODULE__{
          iterations: non_neg_integer(),
          steps: non_neg_integer(),
          max_steps_hit: non_neg_integer(),
          distinct_schedules: non_neg_integer(),
          context_switches: non_neg_integer(),
          outcomes: %{optional(atom()) => non_neg_integer()},
          warnings: [String.t()],
          seed: non_neg_integer(),
          strategy: atom() | {atom(), keyword()},
          elapsed_us: non_neg_integer(),
          per_worker: [
            %{worker: pos_integer(), iterations: non_neg_integer(), steps: non_neg_integer()}
          ],
          lost_nodes: [node()],
          complete: boolean(),
          sleep_blocked: non_neg_integer(),
          still_on_stack: non_neg_integer(),
          uncontrolled: [
            %{
              iteration: pos_integer(),
              process: String.t(),
              messages: [String.t()],
              started: [
                %{
                  pid: String.t(),
                  call: String.t(),
                  location: String.t() | nil,
                  module: module() | nil
                }
              ]
            }
          ]
        }
end

defimpl String.Chars, for: Lockstep.Summary do
  # An interleaving cut short by :max_steps was not explored to its end: no verdict past it.
  def to_string(%{complete: true, iterations: n, max_steps_hit: cut}) when cut > 0 do
    "all #{n} #{plural(n)} explored, no bug, but #{cut} of them #{if cut == 1, do: "was", else: "were"} " <>
      "cut short by :max_steps: verified only up to that many steps (raise :max_steps to " <>
      "verify them to their end)"
  end

  def to_string(%{complete: true, iterations: n}) do
    "verified: all #{n} #{plural(n)} explored, no bug"
  end

  def to_string(%{strategy: strategy, iterations: n, still_on_stack: depth} = s)
      when strategy == :exhaustive or (is_tuple(strategy) and elem(strategy, 0) == :exhaustive) do
    "not complete: #{n} #{plural(n)} explored, no bug; the search stopped with #{depth} " <>
      "decisions still on its stack (raise :iterations, or leave it at its default " <>
      ":infinity, to finish)" <> blocked(s) <> cut_short(s)
  end

  # Iterations cut short by :max_steps tested less than they seem to: said (SPEC §1).
  def to_string(%{iterations: n, distinct_schedules: d, max_steps_hit: cut}) when cut > 0 do
    "#{n} iterations (#{d} distinct schedules), no bug, but #{cut} of them hit :max_steps " <>
      "and #{if cut == 1, do: "was", else: "were"} inconclusive"
  end

  def to_string(%{iterations: n, distinct_schedules: d}) do
    "#{n} iterations (#{d} distinct schedules), no bug"
  end

  defp cut_short(%{max_steps_hit: 0}), do: ""
  defp cut_short(%{max_steps_hit: cut}), do: "; #{cut} cut short by :max_steps"

  defp blocked(%{sleep_blocked: 0}), do: ""
  defp blocked(%{sleep_blocked: b}), do: "; #{b} cut short by sleep sets"

  defp plural(1), do: "interleaving"
  defp plural(_), do: "interleavings"
end
