defmodule Lockstep.BugFound do
  @moduledoc """
  Raised by `Lockstep.run/2` (returned by `Lockstep.check/2`) when an iteration fails.

  Fields:

    * `kind` — `:exception`, `:crash`, `:deadlock`, `:stuck`, `:max_steps`,
      `:linearizability` (a `Lockstep.History` failed its check) or `:uncontrolled` (with
      `strict_control: true`);
    * `reason` — for `:exception` and `:crash`, `{class, reason, stacktrace}` of the failing
      process; `nil` otherwise;
    * `process` — symbolic name of the failing process (`"P"`, `"P.2"`…), when one failed;
    * `details` — for `:deadlock`, each blocked process and what it waits for; for
      `:stuck`, the process's pid and current stacktrace; for a `:crash` under
      `crash: :strict` of a process killed by an exit signal, `%{killed_by: name, signal:
      reason}`; for `:linearizability`, the `Lockstep.Checker` failure details (the
      failing sub-history, its model, consistency and key) with `history:` (which history
      of the iteration, from 1) and `histories:` (how many it made); for `:uncontrolled`, `[{name, %{messages:, started:}}]` (see
      `Lockstep.Summary`'s `uncontrolled`);
    * `iteration`, `seed`, `iter_seed`, `strategy` — how to get here again;
    * `fail_step` — the step at which the failure happened;
    * `schedule` — the decisions of the failing iteration (`{:run, name}`,
      `{:deliver, from, to}`, `{:fire, owner, ordinal}`, `{:random, value}`; see
      `Lockstep.Trace`);
    * `trace` — the events of the failing iteration as `{step, event}` (every kind is
      listed in `Lockstep.Trace`);
    * `call_sites` — where in the source each event of instrumented code comes from:
      `%{index => "lib/my_app/counter.ex:12"}`, by the event's 0-based position in
      `trace` (events of code written against the `Lockstep` API have none);
    * `proc_labels` — the module each OTP behaviour process of instrumented code runs
      (`%{"P.1" => "MyApp.Account"}`); the report shows it beside a process that has no
      registered name;
    * `trace_path` — where the schedule and trace were saved (replay it with
      `Lockstep.replay/3`); `nil` when the file could not be written;
    * `picture_path` — the message sequence chart of the failing iteration
      (`Lockstep.TraceFile.to_svg/2`), written beside the trace file; `nil` when it was
      not written;
    * `trace_error` — why the trace file could not be written (`nil` when it was);
    * `encoded_schedule` — when there is no file, the schedule with its seeds and options
      as printable text: `Lockstep.replay(body, {:schedule, encoded_schedule})` replays it;
    * `nondeterminism` — set when re-running the failing schedule did not fail the same way;
    * `replay_run` — `{Module, function}` when the test body is a named zero-arity function
      (`&Module.function/0`, and every `ctest` body): the trace file records it, so
      `mix lockstep.replay PATH` replays it without being told which body to run;
    * `pid_names` — the pid of each managed process of the failing iteration and its
      symbolic name (the report shows names in place of pids);
    * `proc_nodes` — the simulated node of each process not on `:nonode@nohost` (the
      report shows `P.2@b`);
    * `trace_style` — `:full` (one line per event) or `:compact` (one line per run of a
      process's consecutive events; a shrunk failure's report uses it).

  Its message is the full report: what failed and why, seed, iteration and strategy, the
  trace with the failing step marked, and the command that replays it.
  """

  defexception [
    :kind,
    :reason,
    :process,
    :details,
    :iteration,
    :seed,
    :iter_seed,
    :strategy,
    :fail_step,
    :schedule,
    :trace,
    :trace_path,
    :picture_path,
    :trace_error,
    :encoded_schedule,
    :name,
    :nondeterminism,
    :steps,
    :replay_run,
    :location,
    trace_style: :full,
    call_sites: %{},
    proc_labels: %{},
    pid_names: %{},
    proc_nodes: %{}
  ]

  @type t :: %__MODULE__{}

  @doc false
  def new(fields) do
    bug = struct!(__MODULE__, fields)
    %{bug | fail_step: fail_step(bug)}
  end

  defp fail_step(%{kind: kind, process: proc, trace: trace, steps: steps})
       when kind in [:exception, :crash] and is_list(trace) do
    Enum.find_value(trace, steps, fn {step, event} ->
      case Lockstep.Trace.fields(event) do
        {:ok, tag, %{proc: ^proc}} when tag in [:exit, :exit_signal] -> step
        _ -> nil
      end
    end)
  end

  defp fail_step(%{steps: steps}), do: steps

  @impl true
  def message(bug) do
    Lockstep.Report.format(bug)
  rescue
    error -> Lockstep.Report.minimal(bug, error)
  end
end
