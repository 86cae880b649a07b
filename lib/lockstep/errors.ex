defmodule Lockstep.NotManagedError do
  @moduledoc """
  Raised when a Lockstep runtime function (a sync point) is called from a process that is
  not managed by a running `Lockstep.run/2`.
  """
  defexception [:function]

  @impl true
  def message(%{function: function}) do
    "#{function || "a Lockstep runtime function"} was called outside a Lockstep run. " <>
      "Sync points only work in processes started by Lockstep.run/2 (the root function) " <>
      "or spawned from them with Lockstep.spawn/1; wrap the code in " <>
      "Lockstep.run(fn -> ... end) or spawn the process with Lockstep.spawn."
  end
end

defmodule Lockstep.InternalError do
  @moduledoc """
  An invariant of Lockstep itself was violated (a bug in Lockstep, or a run context used
  from the wrong process). The run is ended; the message says what happened.
  """
  defexception [:message]
end

defmodule Lockstep.TraceError do
  @moduledoc "A trace file is missing, corrupt, or of a version this Lockstep cannot read."
  defexception [:path, :reason]

  @impl true
  def message(%{path: path, reason: reason}), do: "cannot read trace file #{path}: #{reason}"
end

defmodule Lockstep.ReplayDivergence do
  @moduledoc """
  Raised by `Lockstep.replay/3` when the program no longer follows the saved schedule:
  at `step` the schedule said `expected` (`nil`: the schedule had run out) and the program
  offered `got` (`[]`: the program had ended). `ended_by` describes the failure that
  ended the program before the schedule did, when one did: a different failure from
  the one the trace recorded.
  """
  defexception [:step, :expected, :got, :path, :ended_by]

  @impl true
  def message(%{step: step, expected: expected, got: got, path: path} = e) do
    what =
      case {expected, got, e.ended_by} do
        {nil, _, _} -> "the schedule ran out while the program offered #{fmt(got)}"
        {_, [], nil} -> "the schedule says #{fmt1(expected)} but the program had ended"
        {_, [], by} -> "the schedule says #{fmt1(expected)} but the program had ended, by #{by}"
        _ -> "the schedule says #{fmt1(expected)} but the program offered #{fmt(got)}"
      end

    "replay of #{path} diverged at step #{step}: #{what}. The code changed since the trace " <>
      "was saved, or it depends on nondeterminism Lockstep does not control (time, :rand, " <>
      "processes outside the run). Re-run the search to get a fresh trace."
  end

  defp fmt(list), do: "[" <> Enum.map_join(list, ", ", &fmt1/1) <> "]"
  defp fmt1({:run, p}), do: "run #{p}"
  defp fmt1({:deliver, from, to}), do: "deliver #{from} -> #{to}"
  defp fmt1({:random, n}), do: "random #{n}"
  defp fmt1(other), do: inspect(other)
end
