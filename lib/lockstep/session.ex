defmodule Lockstep.Session do
  @moduledoc false
  # The one gateway to the NIF (`Lockstep.Native`, stubs only) for everything that is not
  # a managed process's sync point: the runner, the search, iterations, the controller,
  # shrinking, the janitor, the shared-state wrappers. It calls the NIF, turns the
  # positional tuples the NIF returns into the small structs below, and is the one place
  # that knows how the NIF answers and fails:
  #
  #   * an expected answer is a plain value (`:ok` where there is nothing to say, which is
  #     checked here, so callers get the value or an exception, never a tag to match);
  #   * the NIF raises its own exceptions, `%Lockstep.InternalError{}` (an invariant of
  #     the engine broke) and `%Lockstep.NotManagedError{}` (a run context used by the
  #     wrong process), which pass through unchanged;
  #   * anything else a NIF raises (rustler's `badarg` for a term it cannot decode, a bare
  #     string) means Lockstep called it wrongly: it becomes a `Lockstep.InternalError`
  #     naming the call, in `nif/2`, and is never stringified anywhere else.
  #
  # The hot path does not come through here. `Lockstep.Runtime` calls `Lockstep.Native`
  # directly for what a managed process does at and around its sync points — the `sync_*`
  # calls, `yield`, `exit`, `external_exit`, and the calls that settle or extend its own
  # operations (`consumed`, `hold`, `register_child`, `registered`, `alias`, `node_name`,
  # `ets_names`, `rand_seed`, `mark_park`, `external_received`, `await_outside`) — since
  # each is one NIF
  # call per operation whose plain result it acts on at once, and
  # a closure and a `try` per sync point would be measurable. What Runtime asks about the
  # session as a whole (its outcome, its clock) comes through here like everything else.
  # `test/lockstep/session_test.exs` checks that no other module calls the NIF.

  alias Lockstep.Native

  defmodule Proc do
    @moduledoc false
    # One process of an iteration, as `procs/1` lists them. `name` is its spawn-tree name
    # ("P", "P.1", …); `pid` is nil until the BEAM process is registered; `state` is
    # `:ready`, `:running`, `:blocked` or `:exited`; `pending` is the operation it will
    # perform when picked (an atom, or `{:random, n}`); `node` its simulated node.
    defstruct [:id, :name, :pid, :state, :pending, :node]

    @type t :: %__MODULE__{
            id: non_neg_integer(),
            name: String.t(),
            pid: pid() | nil,
            state: :ready | :running | :blocked | :exited,
            pending: atom() | {:random, pos_integer()},
            node: node()
          }
  end

  defmodule Progress do
    @moduledoc false
    # `progress` counts the NIF calls that moved the iteration on (the owner polls it to
    # notice a process that stopped reaching sync points); `step` is the scheduling step,
    # `running` the pid of the process that holds the turn (nil: none), `now` virtual time
    # in ms.
    defstruct [:progress, :step, :running, :now]

    @type t :: %__MODULE__{
            progress: non_neg_integer(),
            step: non_neg_integer(),
            running: pid() | nil,
            now: non_neg_integer()
          }
  end

  defmodule Metrics do
    @moduledoc false
    # What the strategy measured over one iteration (`finish/1`); `fingerprint` tells
    # distinct schedules apart; `cleanup` says whether the iteration stored
    # Lockstep.PersistentTerm keys that must be erased; `histories` whether it made a
    # Lockstep.History (whose records the owner then takes).
    # `search`: an exhaustive search's progress after the iteration (nil for randomised
    # strategies): `%{explored:, sleep_blocked:, depth:, exhausted:}`.
    defstruct steps: 0,
              context_switches: 0,
              contested_steps: 0,
              fingerprint: 0,
              cleanup: false,
              histories: false,
              search: nil

    @type t :: %__MODULE__{
            steps: non_neg_integer(),
            context_switches: non_neg_integer(),
            contested_steps: non_neg_integer(),
            fingerprint: non_neg_integer(),
            cleanup: boolean(),
            histories: boolean(),
            search:
              nil
              | %{
                  explored: non_neg_integer(),
                  sleep_blocked: non_neg_integer(),
                  depth: non_neg_integer(),
                  exhausted: boolean()
                }
          }
  end

  defmodule Divergence do
    @moduledoc false
    # A replay the program stopped following: at `step` the schedule said `expected` (nil:
    # it had run out) and the program offered the decisions `got`.
    defstruct [:step, :expected, :got]

    @type t :: %__MODULE__{
            step: pos_integer(),
            expected: Lockstep.Trace.decision() | nil,
            got: [Lockstep.Trace.decision()]
          }
  end

  @typedoc "A session of the NIF: one iteration's scheduler state."
  @type t :: reference()

  @typedoc "A strategy cell: the strategy a run's iterations share, one at a time."
  @type cell :: reference()

  @typedoc """
  How an iteration ended (nil: it has not). Process names are spawn-tree names.
  `{:killed, name, from, signal}`: under `crash: :strict`, `name` was killed by an exit
  signal from `from` whose reason `signal` is abnormal (a crash); `{:blocked_at_end,
  names}`: under `blocked_at_end: :fail`, processes left blocked after the root returned
  (a deadlock).
  """
  @type outcome ::
          nil
          | :pass
          | :max_steps
          | {:exception, String.t()}
          | {:crash, String.t()}
          | {:killed, String.t(), String.t(), term()}
          | {:deadlock, [String.t()]}
          | {:blocked_at_end, [String.t()]}
          | {:aborted, String.t() | nil}
          | {:diverged, Divergence.t()}

  # Strategies and seeds ---------------------------------------------------------------

  @doc false
  # A cell holding a fresh strategy for `spec` (`:random`, `{:pct, d}`, `{:replay,
  # schedule}`, …, as `Lockstep.Runner.strategy_spec/1` and the replays build them).
  @spec strategy(term()) :: cell()
  def strategy(spec), do: nif(:strategy_new, fn -> Native.strategy_new(spec) end)

  @doc false
  # An exhaustive search shared by `workers` workers (SPEC §11, `Lockstep.Search`), from
  # an `{:exhaustive, dpor, bound}` spec, stopping after `cap` interleavings.
  @spec exhaustive_parallel(term(), pos_integer(), pos_integer() | :infinity) :: reference()
  def exhaustive_parallel(spec, workers, cap),
    do:
      nif(:exhaustive_parallel_new, fn -> Native.exhaustive_parallel_new(spec, workers, cap) end)

  @doc false
  # A worker's next iteration of a parallel exhaustive search: `{:run, ticket}` (its
  # strategy is now in `cell`), `:wait` (the caller gets `{:lockstep_exhaustive, :wake}`
  # when there may be more), or `:stopped`.
  @spec exhaustive_take(reference(), cell()) :: {:run, pos_integer()} | :wait | :stopped
  def exhaustive_take(search, cell),
    do: nif(:exhaustive_take, fn -> Native.exhaustive_take(search, cell) end)

  @doc false
  # The iteration run as `ticket` ended (`failed`: a failure that stops the search).
  @spec exhaustive_complete(reference(), pos_integer(), boolean()) :: :ok
  def exhaustive_complete(search, ticket, failed),
    do: nif(:exhaustive_complete, fn -> Native.exhaustive_complete(search, ticket, failed) end)

  @doc false
  # How many iterations of a parallel exhaustive search have completed (read without its
  # lock: what a waiting worker polls).
  @spec exhaustive_generation(reference()) :: non_neg_integer()
  def exhaustive_generation(search),
    do: nif(:exhaustive_generation, fn -> Native.exhaustive_generation(search) end)

  @doc false
  # Where a parallel exhaustive search stands: `%{stop:, explored:, sleep_blocked:, depth:,
  # exhausted:, restarted:, handed_out:, discarded:}`, `stop` being nil,
  # `{:failed, ticket, iteration}`, `:exhausted` or `:capped`.
  @spec exhaustive_status(reference()) :: map()
  def exhaustive_status(search),
    do: nif(:exhaustive_status, fn -> Native.exhaustive_status(search) end)

  @doc false
  # The seed of iteration `i` of a run seeded `seed` (SplitMix64, in the engine).
  @spec iteration_seed(non_neg_integer(), pos_integer()) :: non_neg_integer()
  def iteration_seed(seed, i), do: nif(:iteration_seed, fn -> Native.iteration_seed(seed, i) end)

  @doc false
  # How many sessions the VM has not freed yet (tests check that runs free theirs).
  @spec live_sessions() :: non_neg_integer()
  def live_sessions, do: nif(:live_sessions, fn -> Native.live_sessions() end)

  # Test hooks for relayed hops (see the NIF's `relay.rs`): switch them off VM-wide to
  # compare runs with and without them, and count those the engine replayed.
  @doc false
  def relay_enabled_for_test(on?),
    do: nif(:relay_enabled_for_test, fn -> Native.relay_enabled_for_test(on?) end)

  @doc false
  def relayed_hops, do: nif(:relayed_hops, fn -> Native.relayed_hops() end)

  # Claims more relayed hops than the step budget allows on the lease out: the next
  # catch-up must stop the run with an internal error (relay_test.exs).
  @doc false
  def relay_miscount_for_test(session),
    do: nif(:relay_miscount_for_test, fn -> Native.relay_miscount_for_test(session) end)

  # One iteration ------------------------------------------------------------------------

  @doc false
  # A new session for one iteration, owned by the calling process, which gets
  # `{done, :done, reason}` when it ends. Takes the strategy out of `cell` until
  # `finish/1`. Returns `{session, tag}`; `tag` marks the wake-ups of its processes.
  @spec open(cell(), non_neg_integer(), map(), boolean(), reference()) ::
          {t(), non_neg_integer()}
  def open(cell, iter_seed, cfg, capture?, done) do
    config = %{
      max_steps: cfg.max_steps,
      delivery: cfg.delivery,
      crash: cfg.crash,
      timers: cfg.timers,
      blocked_at_end: cfg.blocked_at_end
    }

    nif(:session_new, fn -> Native.session_new(cell, iter_seed, config, capture?, done) end)
  end

  @doc false
  # Registers the root's pid and makes the first decision, which wakes it.
  @spec start(t(), pid()) :: :ok
  def start(session, root), do: ok!(:session_start, fn -> Native.session_start(session, root) end)

  @doc false
  # Keeps the whole trace of a session that does not capture (by default only a capturing
  # one keeps it: a failing iteration is re-run with capture for its report). Before start.
  @spec keep_trace(t()) :: :ok
  def keep_trace(session), do: ok!(:keep_trace, fn -> Native.keep_trace(session) end)

  @doc false
  # Ends the iteration from the owner's side: later calls of its processes park.
  @spec abort(t()) :: :ok
  def abort(session), do: ok!(:session_abort, fn -> Native.session_abort(session) end)

  @doc false
  # Ends the iteration for the strategy and gives the strategy back to its cell.
  @spec finish(t()) :: {outcome(), Metrics.t()}
  def finish(session) do
    {outcome, metrics} = nif(:session_finish, fn -> Native.session_finish(session) end)
    {decode_outcome(outcome), metrics(metrics)}
  end

  defp metrics({steps, switches, contested, fingerprint, cleanup, histories, search}) do
    %Metrics{
      steps: steps,
      context_switches: switches,
      contested_steps: contested,
      fingerprint: fingerprint,
      cleanup: cleanup,
      histories: histories,
      search: search
    }
  end

  @doc false
  @spec outcome(t()) :: outcome()
  def outcome(session), do: decode_outcome(nif(:outcome, fn -> Native.outcome(session) end))

  @doc false
  @spec progress(t()) :: Progress.t()
  def progress(session) do
    {progress, step, running, now} = nif(:progress, fn -> Native.progress(session) end)
    %Progress{progress: progress, step: step, running: running, now: now}
  end

  @doc false
  # Virtual time, read without a sync point.
  @spec now(t()) :: non_neg_integer()
  def now(session), do: progress(session).now

  @doc false
  # Every process of the iteration, the root first.
  @spec procs(t()) :: [Proc.t()]
  def procs(session) do
    for {id, name, pid, state, pending, node} <- nif(:procs, fn -> Native.procs(session) end) do
      %Proc{id: id, name: name, pid: pid, state: state, pending: pending, node: node}
    end
  end

  @doc false
  # What ending an iteration needs, in one call: its outcome (as `outcome/1`), the
  # uncontrolled reports so far (as `uncontrolled/1`), `{id, pid | nil, exited?}` for
  # every process, and how many processes were released. `release`, `false` or a
  # reference: when the iteration passed, the processes still alive are told to end
  # themselves after one look for what escaped the run's control (listed with a nil pid);
  # the owner gets `{release, :released, noted?}` when the last is gone (a reference made
  # just before, so that its receive skips the older messages of the owner's mailbox).
  # `procs/1` has the rest, for reports.
  @spec teardown_view(t(), false | reference()) ::
          {outcome(), [{String.t(), map()}], [{non_neg_integer(), pid() | nil, boolean()}],
           non_neg_integer()}
  def teardown_view(session, release \\ false) do
    {outcome, uncontrolled, pids, released} =
      nif(:teardown_view, fn -> Native.teardown_view(session, release) end)

    {decode_outcome(outcome), uncontrolled, pids, released}
  end

  @doc false
  # The decisions taken so far (see Lockstep.Trace).
  @spec schedule(t()) :: [Lockstep.Trace.decision()]
  def schedule(session), do: nif(:schedule, fn -> Native.schedule(session) end)

  @doc false
  # The events so far as `{step, event}` (see Lockstep.Trace); payloads only when the
  # session captures.
  @spec trace(t()) :: [{non_neg_integer(), Lockstep.Trace.event()}]
  def trace(session), do: nif(:trace, fn -> Native.trace(session) end)

  @doc false
  # The source location of each event of instrumented code, by its index in `trace/1`'s
  # list (0-based): `%{index => "lib/x.ex:12"}`; empty unless the session captures.
  @spec call_sites(t()) :: %{non_neg_integer() => String.t()}
  def call_sites(session), do: nif(:trace_sites, fn -> Map.new(Native.trace_sites(session)) end)

  @doc false
  # The labels processes noted for the report (the module an OTP behaviour runs), by name.
  @spec proc_labels(t()) :: %{String.t() => String.t()}
  def proc_labels(session),
    do: nif(:trace_labels, fn -> Map.new(Native.trace_labels(session)) end)

  # Reports from outside the run ---------------------------------------------------------

  @doc false
  # A process outside the run, linked to managed process `id`, died of a Lockstep call it
  # could not make: `report` (`{:error, exception, stacktrace}`) is why `id` will die.
  @spec note_outside_crash(t(), non_neg_integer(), term()) :: :ok
  def note_outside_crash(session, id, report),
    do: ok!(:note_outside_crash, fn -> Native.note_outside_crash(session, id, report) end)

  @doc false
  # The reports `note_outside_crash/3` noted, by process name.
  @spec outside_crashes(t()) :: [{String.t(), term()}]
  def outside_crashes(session),
    do: nif(:outside_crashes, fn -> Native.outside_crashes(session) end)

  @doc false
  # Concurrency that escaped the run's control, found by or about managed process `id`
  # (see Lockstep.Uncontrolled): `report` describes it.
  @spec note_uncontrolled(t(), non_neg_integer(), map()) :: :ok
  def note_uncontrolled(session, id, report),
    do: ok!(:note_uncontrolled, fn -> Native.note_uncontrolled(session, id, report) end)

  @doc false
  # What `note_uncontrolled/3` noted, in order, by process name.
  @spec uncontrolled(t()) :: [{String.t(), map()}]
  def uncontrolled(session), do: nif(:uncontrolled, fn -> Native.uncontrolled(session) end)

  @doc false
  # The iteration stored Lockstep.PersistentTerm keys: `finish/1`'s metrics say so.
  @spec mark_cleanup(t()) :: :ok
  def mark_cleanup(session), do: ok!(:mark_cleanup, fn -> Native.mark_cleanup(session) end)

  @doc false
  # The iteration made a Lockstep.History: `finish/1`'s metrics say so.
  @spec mark_history(t()) :: :ok
  def mark_history(session), do: ok!(:mark_history, fn -> Native.mark_history(session) end)

  # The consistency checker (Lockstep.Checker) ------------------------------------------------

  @doc false
  # Starts a check of the encoded `ops` on a thread of the NIF's; the caller gets
  # `{tag, :step, state, op, known?}` requests (user models) and one `{tag, :done, result}`.
  @spec checker_start([map()], term(), :linearizable | :sequential, pos_integer()) :: reference()
  def checker_start(ops, model, consistency, tag),
    do: nif(:checker_start, fn -> Native.checker_start(ops, model, consistency, tag) end)

  @doc false
  # A user model's answer to the check's last `:step` request: `{:ok, state}` or `:error`.
  @spec checker_answer(reference(), {:ok, non_neg_integer()} | :error) :: :ok
  def checker_answer(job, answer),
    do: ok!(:checker_answer, fn -> Native.checker_answer(job, answer) end)

  @doc false
  # Stops the check (a no-op once it is done).
  @spec checker_cancel(reference()) :: :ok
  def checker_cancel(job), do: ok!(:checker_cancel, fn -> Native.checker_cancel(job) end)

  # The boundary ---------------------------------------------------------------------------

  defp decode_outcome({:diverged, step, expected, got}),
    do: {:diverged, %Divergence{step: step, expected: expected, got: got}}

  defp decode_outcome(outcome), do: outcome

  defp ok!(name, call) do
    case nif(name, call) do
      :ok -> :ok
      other -> raise Lockstep.InternalError, message: unexpected(name, "returned", other)
    end
  end

  # Exceptions the NIF raises itself are structs (`Lockstep.InternalError`,
  # `Lockstep.NotManagedError`) and pass through; rustler's own errors do not.
  defp nif(name, call) do
    call.()
  rescue
    e in [ArgumentError, ErlangError] ->
      reraise Lockstep.InternalError,
              [message: unexpected(name, "raised", Exception.message(e))],
              __STACKTRACE__
  end

  defp unexpected(name, what, value) do
    value = if is_binary(value), do: value, else: inspect(value, limit: 20)

    "Lockstep internal error: the NIF call #{name} #{what} #{value} (a bug in Lockstep: " <>
      "please report it with the test)"
  end
end
