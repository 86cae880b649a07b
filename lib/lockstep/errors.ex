defmodule Lockstep.NotManagedError do
  @moduledoc """
  Raised when a Lockstep runtime function (a sync point) is called from a process that is
  not managed by a running `Lockstep.run/2`.

  Fields: `function` (the Lockstep function called, when known), `reason`, and for the
  run-context cases `process` (the caller) and `context_owner` (the managed process the
  context belongs to). `reason` is:

    * `nil` — the caller has no run context at all;
    * `:ended` — the caller holds a run context (`Process.get(:"$lockstep")` copied out of
      a managed process) whose iteration has ended;
    * `:copied` — the iteration is running, but the context belongs to another process;
    * `:unmanaged` — the caller is a real process started by (or linked to) the managed
      process `context_owner` with `Kernel.spawn/1`, `spawn_link/1`, `Task.async/1` or
      the like, so it is outside the run. When it is linked, the run reports this error
      as the failure of the managed process the link then kills.
  """
  defexception [:function, :reason, :process, :context_owner]

  @type t :: %__MODULE__{
          function: String.t() | nil,
          reason: nil | :ended | :copied | :unmanaged,
          process: pid() | nil,
          context_owner: pid() | nil
        }

  @impl true
  def message(%{reason: :ended} = e) do
    "#{what(e)} was called by #{inspect(e.process)} with a run context whose iteration has " <>
      "ended: the context (the process-dictionary entry Lockstep keeps for each managed " <>
      "process) was copied out of a managed process and used after its run finished. A " <>
      "context belongs to one managed process of one iteration; make the calls from " <>
      "processes of the run, started with Lockstep.spawn/1 (or Lockstep.Task, " <>
      "Lockstep.GenServer, …)."
  end

  def message(%{reason: :copied} = e) do
    "#{what(e)} was called by #{inspect(e.process)}, which is not the managed process " <>
      "#{inspect(e.context_owner)} its run context belongs to: the context was copied " <>
      "into another process. Only processes started by the run are managed: start this " <>
      "one with Lockstep.spawn/1 (or Lockstep.Task.async/1, Lockstep.GenServer, …) " <>
      "instead of Kernel.spawn/1 or Task."
  end

  def message(%{reason: :unmanaged} = e) do
    "#{what(e)} was called by #{inspect(e.process)}, a process Lockstep does not manage, " <>
      "started by or linked to the managed process #{inspect(e.context_owner)}. " <>
      "Kernel.spawn/1, spawn_link/1, Task.async/1 and other OTP calls start real " <>
      "processes outside the run; start it with Lockstep.spawn/1, Lockstep.spawn_link/1 " <>
      "or Lockstep.Task.async/1 instead."
  end

  def message(%{function: function}) do
    "#{function || "a Lockstep runtime function"} was called outside a Lockstep run. " <>
      "Sync points only work in processes started by Lockstep.run/2 (the root function) " <>
      "or spawned from them with Lockstep.spawn/1; wrap the code in " <>
      "Lockstep.run(fn -> ... end) or spawn the process with Lockstep.spawn."
  end

  defp what(%{function: nil}), do: "A Lockstep function"
  defp what(%{function: function}), do: function
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
  the one the trace recorded. `events` holds the replay's last events before it diverged
  (`{step, event}`, at most 8; see `Lockstep.Trace`), which the message lists.
  """
  defexception [:step, :expected, :got, :path, :ended_by, events: []]

  alias Lockstep.Trace

  @doc false
  # How many of the replay's events before the divergent step the exception keeps.
  def events_kept, do: 8

  @impl true
  def message(%{step: step, expected: expected, got: got, path: path} = e) do
    what =
      case {expected, got, e.ended_by} do
        {nil, _, _} -> "the schedule ran out while the program offered #{offered(got)}"
        {_, [], nil} -> "the schedule says #{said(expected)} but the program had ended"
        {_, [], by} -> "the schedule says #{said(expected)} but the program had ended, by #{by}"
        _ -> "the schedule says #{said(expected)} but the program offered #{offered(got)}"
      end

    "replay of #{path} diverged at step #{step}: #{what}. The code changed since the trace " <>
      "was saved, or it depends on nondeterminism Lockstep does not control (time, :rand, " <>
      "processes outside the run). Re-run the search to get a fresh trace." <> events(e)
  end

  defp said(decision), do: Trace.describe_decision(decision)
  defp offered(list), do: Trace.describe_decisions(list)

  defp events(%{events: [_ | _] = events}) do
    rows = for {step, event} <- events, do: {to_string(step), Trace.actor(event), event}
    step_width = rows |> Enum.map(&String.length(elem(&1, 0))) |> Enum.max()
    actor_width = rows |> Enum.map(&String.length(elem(&1, 1))) |> Enum.max()

    lines =
      Enum.map(rows, fn {step, actor, event} ->
        "\n    #{String.pad_leading(step, step_width)}  #{String.pad_trailing(actor, actor_width)}" <>
          "  #{Trace.describe(event)}"
      end)

    IO.iodata_to_binary(["\nThe replay's last events before it diverged:" | lines])
  rescue
    _ -> ""
  end

  defp events(_e), do: ""
end

defmodule Lockstep.InconclusiveError do
  @moduledoc """
  Returned by `Lockstep.check/2` (and raised by `Lockstep.run/2`) when no iteration ran to
  completion: every one hit `:max_steps`, so the run tested nothing.

  Fields: `name` (the run's label), `iterations` (how many ran), `max_steps_hit` (how many
  hit the limit: all of them), `max_steps`, `seed` and `strategy` (as in
  `Lockstep.Summary`). The message says what happened and which knobs to turn:
  `:max_steps` when the program needs more steps, `strategy: :fair_pct` when a process
  spins waiting for another that the strategy starves.
  """
  defexception [:name, :iterations, :max_steps_hit, :max_steps, :seed, :strategy]

  @type t :: %__MODULE__{
          name: String.t(),
          iterations: pos_integer(),
          max_steps_hit: pos_integer(),
          max_steps: pos_integer(),
          seed: non_neg_integer(),
          strategy: atom() | {atom(), keyword()}
        }

  @impl true
  def message(%__MODULE__{} = e) do
    "Lockstep run #{inspect(e.name)} tested nothing: #{all(e.iterations)} hit " <>
      ":max_steps (#{e.max_steps} scheduling steps) before their processes finished, so " <>
      "none ran to completion. Either the program never finishes on its own (a process " <>
      "loops forever: end it, e.g. stop the server the root no longer needs), or it needs " <>
      "more steps: raise :max_steps. If a process spins waiting for another (a yield " <>
      "loop), use strategy: :fair_pct, which stops starving the one it waits for. " <>
      "(seed: #{e.seed}, strategy: #{inspect(e.strategy)})"
  end

  defp all(1), do: "its only iteration"
  defp all(n), do: "all #{n} iterations"
end

defmodule Lockstep.InstrumentError do
  @moduledoc """
  Raised when a module given to `:instrument` (or `Lockstep.Instrument.instrument!/1`)
  cannot be instrumented. `module` names it; `reason` is one of `:not_found`,
  `{:no_debug_info, :disk | :in_memory}`, `:in_memory`, `:nif`, `:lockstep`,
  `:runtime_system`, `:old_code_in_use`, `{:app, reason}`, `{:compile, errors}` or
  `{:load, reason}`. The message says what to do.
  """
  defexception [:module, :reason]

  @type t :: %__MODULE__{module: module(), reason: term()}

  @impl true
  def message(%{module: module, reason: reason}) do
    "cannot instrument #{inspect(module)}: " <> explain(module, reason)
  end

  defp explain(module, :not_found) do
    "no such module is available. Check the spelling and that it is compiled (for a " <>
      "module of a dependency, that the dependency is in your deps); " <>
      "Code.ensure_loaded(#{inspect(module)}) must return {:module, _}."
  end

  defp explain(module, {:no_debug_info, :disk}) do
    "it was compiled without debug info, which Lockstep reads to rewrite its code. Mix " <>
      "compiles with debug info unless told not to: remove `debug_info: false` from " <>
      "elixirc_options (or erlc_options) and `@compile {:debug_info, false}` from the " <>
      "module, or add `use Lockstep.Instrumented` to #{inspect(module)}."
  end

  defp explain(module, {:no_debug_info, :in_memory}) do
    "its bytecode carries no debug info (test files are compiled without it). Add " <>
      "`use Lockstep.Instrumented` to #{inspect(module)} (a `use Lockstep.Test` module is " <>
      "instrumented without being told), or define it in a file under lib/ or " <>
      "test/support/ that Mix compiles to a .beam."
  end

  defp explain(module, :in_memory) do
    "it was compiled in memory (a test file or an `.exs`), so there is no .beam to read " <>
      "its code from. Add `use Lockstep.Instrumented` to #{inspect(module)} (it is then " <>
      "instrumented as it is compiled), or move it to a file Mix compiles (lib/, " <>
      "test/support/ with elixirc_paths)."
  end

  defp explain(_module, :nif) do
    "it loads a NIF (native code Lockstep cannot see into). Instrument the Elixir or " <>
      "Erlang modules that call it instead; its functions then run as they are."
  end

  defp explain(_module, :lockstep) do
    "it is one of Lockstep's own modules, which already run under control. Remove it " <>
      "from :instrument."
  end

  defp explain(_module, :runtime_system) do
    "it belongs to the runtime system (:erts or :kernel), which Lockstep's own machinery " <>
      "runs on. Its process operations (send, spawn, :ets, timers…) are already sync " <>
      "points when called from instrumented code; remove it from :instrument."
  end

  defp explain(module, :old_code_in_use) do
    "an older version of it is still being run by some process, and loading another " <>
      "version would kill that process. Wait for it to leave the old code (or restart " <>
      "the VM), then retry; :code.soft_purge(#{inspect(module)}) returns true once it is free."
  end

  defp explain(_module, {:app, reason}) do
    "the application could not be loaded (#{inspect(reason)}). Check the application " <>
      "name given as {:app, name}."
  end

  defp explain(_module, {:compile, errors}) do
    "the rewritten code did not compile (a bug in Lockstep; please report it with the " <>
      "module): #{inspect(errors, limit: 20)}"
  end

  defp explain(_module, {:load, reason}) do
    "loading the instrumented code failed: #{inspect(reason)}."
  end

  defp explain(_module, reason), do: inspect(reason)
end
