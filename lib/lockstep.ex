defmodule Lockstep do
  @moduledoc """
  Controlled concurrency testing for the BEAM.

  Lockstep runs a test body many times. In every run (an *iteration*) exactly one managed
  process executes between *sync points* — the calls in this module — and a *strategy*
  decides which process goes next. When an iteration fails, Lockstep raises
  `Lockstep.BugFound` with what failed, the seed, a readable trace with the failing step
  marked, and the command that replays the exact schedule.

  ## A first test

      test "two clients racing on a counter lose an update" do
        assert_raise Lockstep.BugFound, fn ->
          Lockstep.run(fn ->
            counter = Lockstep.spawn(fn -> counter_loop(0) end)
            me = self()

            for _ <- 1..2 do
              Lockstep.spawn(fn ->
                Lockstep.send(counter, {:get, self()})
                value = Lockstep.receive do
                  {:value, v} -> v
                end
                Lockstep.send(counter, {:put, value + 1})
                Lockstep.send(me, :done)
              end)
            end

            Lockstep.recv()
            Lockstep.recv()
            Lockstep.send(counter, {:get, self()})
            Lockstep.receive do
              {:value, v} -> assert v == 2
            end
          end, iterations: 200)
        end
      end

  Inside a run use `spawn/1`, `send/2`, `receive/1`, `recv/0`… instead of their Kernel
  counterparts: those are the sync points Lockstep schedules. A bare `receive` or
  `Process.sleep/1` in a managed process is code Lockstep does not control; the run
  reports it as `:stuck` after `:timeout` ms.

  See `run/2` for the options and the failure kinds.
  """

  import Kernel, except: [spawn: 1, spawn_link: 1, send: 2, node: 0]

  alias Lockstep.Runtime
  import Lockstep.Timeout, only: [is_timeout: 1]

  # The zero-arity function type is written `(() -> t)` by Elixir 1.14's formatter and
  # `(-> t)` by 1.15+'s, each rewriting the other, so no spelling passes
  # `mix format --check-formatted` on both. It is built here once from its AST, which no
  # formatter touches, and every spec uses `body/0` or `body/1`.
  @typedoc "A function of no arguments returning `result`: `(-> result)`."
  @type body(result) :: unquote([{:->, [], [[], Macro.var(:result, nil)]}])

  @typedoc "A function of no arguments: the root of a run or the code of a process."
  @type body :: body(any())

  @typedoc "What `Lockstep.run/2` accepts; see `run/2`."
  @type option ::
          {:iterations, pos_integer() | :infinity}
          | {:strategy, atom() | {atom(), keyword()}}
          | {:seed, non_neg_integer()}
          | {:bug_depth, pos_integer()}
          | {:max_steps, pos_integer()}
          | {:fail_on_max_steps, boolean()}
          | {:timeout, pos_integer()}
          | {:delivery, :instant | :delayed}
          | {:crash, :fail | :ignore | :strict}
          | {:blocked_at_end, :kill | :fail}
          | {:strict_control, boolean()}
          | {:instrument, [module() | {:app, atom()} | :otp]}
          | {:name, String.t() | atom()}
          | {:trace_dir, Path.t()}
          | {:workers, pos_integer() | :auto}
          | {:nodes, [node()]}

  @doc """
  Runs `fun` as the root process of up to `:iterations` controlled iterations and returns a
  `%Lockstep.Summary{}`; raises `Lockstep.BugFound` at the first failing iteration, and
  `Lockstep.InconclusiveError` when no iteration ran to completion (every one hit
  `:max_steps`: the run tested nothing).

  When more than a tenth of the iterations hit `:max_steps`, the summary's `warnings`
  and a line on stderr say so, with the counts.

  ## Options

  Invalid options raise `ArgumentError` naming the key, the value and what is accepted.

    * `:iterations` (100; `:infinity` under `:exhaustive`) — iterations to try
      (1..2^64-1); stops at the first bug. `:infinity` (only with `strategy: :exhaustive`)
      runs until every interleaving has been explored.
    * `:strategy` (`:pct`) — `:random`, `:pct`, `:fair_pct`, `:pos`, `:idpct` or
      `:exhaustive`, or `{name, opts}` such as `{:pct, bug_depth: 2}` (`bug_depth`, `d_min`
      and `d_max` in 1..2^32-1, `fair_switch` in 1..2^64-1). `:exhaustive` explores every
      interleaving up to equivalence (SPEC §10, `docs/guide-exhaustive.md`):
      `{:exhaustive, dpor: :optimal | :source | :none, preemption_bound: nil | k}` (default
      `dpor: :optimal`, no bound; `k` in 0..2^32-1 makes it plain depth-first search over
      the schedules with at most k preemptions, complete within that bound); the summary's
      `complete` says whether it finished. With `workers: n` its workers run the one
      search's executions ahead of time: the same interleavings, counts and bug as
      `workers: 1` (`nodes:` is refused with it).
    * `:seed` (ExUnit's seed under ExUnit, else random) — iteration seeds derive from it;
      an integer in 0..2^64-1, used as it is (no reduction), so the seed a report prints
      is the one to pass back.
    * `:bug_depth` (3) — PCT's d, 1..2^32-1.
    * `:max_steps` (10_000) — scheduling steps per iteration (1..2^64-1); reaching it ends
      the iteration as inconclusive, or fails it with `fail_on_max_steps: true`.
    * `:fail_on_max_steps` (`false`).
    * `:timeout` (5_000) — wall-clock ms a managed process may run without reaching a
      sync point before the iteration fails as `:stuck`.
    * `:delivery` (`:instant`) — `:delayed` keeps each message in flight until the strategy
      delivers it (order kept per sender→receiver pair), so reorderings across senders are
      explored.
    * `:crash` (`:fail`) — `:ignore` makes crashes of non-root processes normal;
      `:strict` is `:fail` plus Concuerror's rule: a process killed by an exit signal whose
      reason is not `:normal`, `:shutdown` or `{:shutdown, _}` fails the iteration too, as
      a `:crash` whose report names the sender of the signal and its reason.
    * `:blocked_at_end` (`:kill`) — what becomes of processes still blocked when the root
      has returned and nothing more can happen: `:kill` kills them quietly; `:fail` makes
      them a `:deadlock` listing them (Concuerror's rule). Under `:fail` pending timers
      keep firing while the iteration drains, so a process in `receive … after` is not
      blocked (a process that re-arms a timer forever then runs until `:max_steps`).
    * `:strict_control` (`false`) — concurrency that escaped Lockstep's control (messages
      that reached managed processes around it, processes they started outside it; see
      `Lockstep.Summary`'s `uncontrolled`) is a warning by default; `true` makes it a
      failure of kind `:uncontrolled`.
    * `:instrument` (`[]`) — modules whose unmodified code runs under control: module
      atoms, `{:app, app}` (every module of an application) and `:otp` (OTP's process
      machinery alone, which any non-empty list brings along). They are instrumented
      before the first iteration (`Lockstep.Instrument`) and recorded in the trace file,
      so replay and shrink instrument them again. See `docs/guide-instrumentation.md`.
    * `:name` — label used in reports and trace file names.
    * `:trace_dir` (`"_build/lockstep/traces"`; env `LOCKSTEP_TRACE_DIR` overrides).
    * `:workers` (1) — independent searches run at once on this VM's schedulers (`:auto`:
      one per scheduler). Worker k takes iterations k, k+n, k+2n, …; the first bug stops
      them all and the one reported is the lowest failing iteration, the same for a given
      seed and worker count. The summary's `per_worker` has each worker's counts.
    * `:nodes` (`[]`) — connected nodes running the same code that run `:workers` workers
      each too; the trace file of a bug is written here, and a node lost mid-run is listed
      in the summary's `lost_nodes` and its share re-run here.

  ## Failure kinds

    * `:exception` — the root raised, threw or exited abnormally (or was killed by an exit
      signal);
    * `:crash` — another managed process raised, threw or exited abnormally (under
      `crash: :strict`, or was killed by an exit signal with an abnormal reason);
    * `:deadlock` — the root has not returned and nothing can happen (under
      `blocked_at_end: :fail`, also: it has returned and processes are left blocked); the
      report lists every blocked process and what it waits for;
    * `:stuck` — a managed process ran `:timeout` ms without reaching a sync point (or,
      awaiting a reply from a process outside the run, got none in that time);
    * `:max_steps` — only with `fail_on_max_steps: true`;
    * `:linearizability` — a history recorded with `Lockstep.History` cannot be
      linearized (or is not sequentially consistent); the report shows the shortest
      failing sub-history found, with a time-line;
    * `:uncontrolled` — only with `strict_control: true`: a managed process received a
      message that did not come through Lockstep, or started a process Lockstep does not
      manage; the report names the processes, where it happened when known, and the
      module to add to `:instrument`.
  """
  @spec run(body(), [option()]) :: Lockstep.Summary.t()
  def run(fun, opts \\ []) do
    case check(fun, opts) do
      {:ok, summary} -> summary
      {:error, bug} -> raise bug
    end
  end

  @doc """
  Like `run/2` but returns `{:ok, summary}`, `{:error, %Lockstep.BugFound{}}` or
  `{:error, %Lockstep.InconclusiveError{}}`.
  """
  @spec check(body(), [option()]) ::
          {:ok, Lockstep.Summary.t()}
          | {:error, Lockstep.BugFound.t() | Lockstep.InconclusiveError.t()}
  def check(fun, opts \\ []), do: Lockstep.Runner.check(fun, opts)

  @doc """
  Re-runs one iteration of `fun` on the schedule saved in the trace file at `path`, or
  on an encoded schedule given as `{:schedule, text}` (what a report prints when the
  trace file could not be written; also `BugFound.encoded_schedule`).

  Raises the same `Lockstep.BugFound` when the bug reproduces,
  `Lockstep.ReplayDivergence` when the program no longer follows the schedule, and
  `Lockstep.TraceError` when the file is missing, corrupt, malformed, of an unknown
  version or larger than `:max_trace_bytes`. Returns `:ok` when the schedule is followed
  to the end and nothing fails. Accepts `:timeout`, `:trace_dir`, `:name` and
  `:max_trace_bytes` (default 16 MiB: the limit on the file and on its decoded
  contents); the other options come from the file.
  """
  @spec replay(body(), Path.t() | {:schedule, String.t()}, keyword()) :: :ok
  def replay(fun, path, opts \\ []), do: Lockstep.Runner.replay(fun, path, opts)

  @doc """
  Shrinks the failing schedule saved at `path`: looks for a shorter schedule that still
  fails the same way (same kind) when replayed, and saves it beside the original as
  `*.shrunk.lockstep`.

  Returns `{:ok, info}` with `:trace_path` (the shrunk file; `nil` when it could not be
  written, and then `info.bug` holds the encoded schedule), what shrank before and after
  — `:original_length` / `:new_length` (decisions), `:original_switches` /
  `:new_switches` (context switches), `:original_events` / `:new_events` (trace
  events) — `:attempts`, `:schedule` and `:bug` (the `Lockstep.BugFound` of the shrunk
  schedule, whose message shows its trace compactly); when nothing shorter fails the
  same way, `:new_length` equals `:original_length`. Returns `{:error,
  {:does_not_reproduce, message}}` when the original schedule no longer fails that way.
  `path` may be `{:schedule, text}` as for `replay/3`; the shrunk trace then goes to the
  trace directory.

  Options: `:max_attempts` (500), `:time_budget_ms` (30 000), `:timeout`,
  `:max_trace_bytes` (as for `replay/3`).
  """
  @spec shrink(body(), Path.t() | {:schedule, String.t()}, keyword()) ::
          {:ok, map()} | {:error, term()}
  def shrink(fun, path, opts \\ []) do
    unless is_function(fun, 0) do
      raise ArgumentError,
            "Lockstep.shrink expects a zero-arity function as the root process, got: #{inspect(fun)}"
    end

    Lockstep.Shrink.shrink(fun, path, opts)
  end

  @doc "Spawns a managed process running `fun`; mirrors `Kernel.spawn/1`."
  @spec spawn(body()) :: pid()
  def spawn(fun), do: Runtime.spawn(fun, false)

  @doc """
  Spawns a managed process with options: `node: n` places it on simulated node `n`
  (see `Lockstep.Cluster`).
  """
  @spec spawn(body(), keyword()) :: pid()
  def spawn(fun, []), do: Runtime.spawn(fun, false)

  def spawn(fun, node: node) when is_atom(node), do: Runtime.spawn(fun, false, node)

  def spawn(_fun, opts) do
    raise ArgumentError,
          "Lockstep.spawn/2 accepts only `node: atom`, got: #{inspect(opts)}"
  end

  @doc """
  Spawns a managed process linked to the caller; mirrors `Kernel.spawn_link/1`. If either
  exits abnormally the other is killed by the (simulated) exit signal.
  """
  @spec spawn_link(body()) :: pid()
  def spawn_link(fun), do: Runtime.spawn(fun, true)

  @doc """
  Sends `msg` to `dest` and returns `msg`; mirrors `Kernel.send/2`. A send to a dead
  managed process is silently dropped; a send to a pid outside the run (the test process,
  say) is a plain send.
  """
  @spec send(pid(), term()) :: term()
  def send(dest, msg), do: Runtime.send(dest, msg)

  @doc """
  Receives the next message, first in first out. Like `receive/1`, it takes only this
  run's messages, not a plain `send` from a process outside the run.
  """
  @spec recv() :: term()
  def recv, do: Runtime.recv()

  @doc "Receives the first message for which `pred` returns a truthy value (selective receive)."
  @spec recv_first((term() -> as_boolean(term()))) :: term()
  def recv_first(pred), do: Runtime.recv_first(pred)

  @doc """
  Returns an integer in `0..n-1` chosen by the strategy, recorded in the schedule and
  replayed: controlled data nondeterminism.
  """
  @spec random(pos_integer()) :: non_neg_integer()
  def random(n), do: Runtime.random(n)

  @doc "An explicit sync point (put one in spin loops). Returns `:ok`."
  @spec yield() :: :ok
  def yield, do: Runtime.yield()

  @doc """
  Links the caller and `pid` (a managed process); mirrors `Process.link/1`. Linking to a
  process that has exited raises `ErlangError` `:noproc` in a caller that does not trap
  exits, and gives a trapping one `{:EXIT, pid, :noproc}` at once, as on OTP 25. The link
  takes effect after the caller's earlier signals to `pid`: if one of them kills it, the
  link returns `true` and the caller gets a `:noproc` exit signal. Across a connection
  declared lost (or to a stopped node) the caller gets a `:noconnection` exit signal at
  once. Returns `true`.
  """
  @spec link(pid()) :: true
  def link(pid), do: Runtime.link(pid)

  @doc """
  Removes the link between the caller and `pid`; mirrors `Process.unlink/1`. Once it
  returns the link has no effect on the caller: its exit signals still travelling are
  dropped.
  """
  @spec unlink(pid()) :: true
  def unlink(pid), do: Runtime.unlink(pid)

  @doc """
  Monitors `pid`; mirrors `Process.monitor/1`. When it exits the caller gets
  `{:DOWN, ref, :process, pid, reason}` (`:noproc` if it had already exited, also by the
  caller's earlier signals to it; `:noconnection` at once across a connection declared
  lost).

  As with `Process.monitor/1`, `pid` may also be a registered name or `{name, node}`
  (names of this run, per simulated node): the monitor is of the process holding the name
  now, and its `:DOWN` names `{name, node}`; a name nobody holds gives an immediate
  `:noproc` `:DOWN`.
  """
  @spec monitor(pid() | atom() | {atom(), node()}) :: reference()
  def monitor(pid), do: Runtime.monitor(pid)

  @doc """
  Turns a monitor off; mirrors `Process.demonitor/2`. No `:DOWN` for it reaches the
  mailbox afterwards; with `[:flush]` one already there is removed too. Returns `true`;
  with `:info` in `opts`, whether the monitor was still active (`false` once its `:DOWN`
  has reached the mailbox), as OTP's `demonitor/2`. Anything else in `opts`, or `opts`
  not a proper list, raises `ArgumentError` before the monitor is touched, as OTP does.
  """
  @spec demonitor(reference(), [:flush | :info]) :: boolean()
  def demonitor(ref, opts \\ []), do: Runtime.demonitor(ref, opts)

  @doc """
  Sets `:trap_exit` and returns the previous value; mirrors `Process.flag/2`. A trapping
  process receives exit signals as `{:EXIT, pid, reason}` messages (except `:kill`).
  """
  @spec flag(:trap_exit, boolean()) :: boolean()
  def flag(flag, value), do: Runtime.flag(flag, value)

  @doc """
  Sends an exit signal to `pid`; mirrors `Process.exit/2`. `:normal` is ignored by a
  process that does not trap exits (unless it is the caller itself); `:kill` cannot be
  trapped and the target dies with `:killed`. Returns `true`.
  """
  @spec exit(pid(), term()) :: true
  def exit(pid, reason), do: Runtime.exit(pid, reason)

  @doc """
  Whether `pid` is alive; mirrors `Process.alive?/1`. As on OTP, the caller's earlier
  signals to `pid` reach it first: right after `exit(pid, :kill)` it is `false`.
  """
  @spec alive?(pid()) :: boolean()
  def alive?(pid), do: Runtime.alive?(pid)

  @doc """
  Registers `pid` under `name` on the caller's (simulated) node; raises `ArgumentError`
  like `Process.register/2` when the name is taken or the process already has one.
  """
  @spec register(atom(), pid()) :: true
  def register(name, pid), do: Runtime.register(name, pid)

  @doc "Removes a registered name; raises `ArgumentError` if it is not registered."
  @spec unregister(atom()) :: true
  def unregister(name), do: Runtime.unregister(name)

  @doc """
  The pid registered as `name` on the caller's node, or `nil`; mirrors `Process.whereis/1`
  (a `name` that is not an atom raises `ArgumentError`).
  """
  @spec whereis(atom()) :: pid() | nil
  def whereis(name), do: Runtime.whereis(name)

  @doc "The names registered on the caller's node."
  @spec registered() :: [atom()]
  def registered, do: Runtime.registered()

  @doc "Virtual time in milliseconds (starts at 0); mirrors `System.monotonic_time(:millisecond)`."
  @spec now() :: non_neg_integer()
  def now, do: Runtime.now()

  @doc """
  Sleeps `ms` virtual milliseconds; mirrors `Process.sleep/1`. Costs no wall time: the
  clock jumps when the timer fires.

  Bad values fail as `Process.sleep/1` fails: a `FunctionClauseError` for anything but
  `:infinity` or a non-negative integer. Above 4_294_967_295 ms (the largest
  `receive … after` value) it follows the running Elixir: `ErlangError` `:timeout_value`
  up to Elixir 1.17, a sleep that long from 1.18 (the virtual clock is 64-bit and
  saturates). `:infinity` blocks for good.
  """
  @spec sleep(timeout()) :: :ok
  def sleep(ms) when is_timeout(ms), do: Runtime.sleep(ms)

  @doc """
  Sends `msg` to `dest` after `ms` virtual milliseconds; mirrors `Process.send_after/3`.
  Returns a timer reference for `cancel_timer/1`.

  As with `Process.send_after/3`, a time that is not a non-negative integer, or whose
  deadline is beyond the clock's range (`Lockstep.now() + ms` above 9_223_372_036_854 ms,
  OTP's limit of about 2^63 ns), raises `ArgumentError`.
  """
  @spec send_after(pid() | atom(), term(), non_neg_integer()) :: reference()
  def send_after(dest, msg, ms), do: Runtime.send_after(dest, msg, ms)

  @doc """
  Cancels a timer; returns the milliseconds that were left, or `false` if it had fired or
  was cancelled already. Mirrors `Process.cancel_timer/1`.
  """
  @spec cancel_timer(reference()) :: non_neg_integer() | false
  def cancel_timer(ref), do: Runtime.cancel_timer(ref)

  @doc """
  The caller's simulated node: `:nonode@nohost` unless it was spawned with `node:` (see
  `Lockstep.Cluster`). Mirrors `Kernel.node/0`.
  """
  @spec node() :: node()
  def node, do: Runtime.node()

  @doc "The current run's controller handle (see `Lockstep.Controller`)."
  @spec controller() :: Lockstep.Controller.t()
  def controller do
    {session, _id, tag} = Runtime.context()
    %Lockstep.Controller{session: session, tag: tag}
  end

  @doc """
  Receives a message like `Kernel.SpecialForms.receive/1`: patterns, guards, pins and an
  optional `after` clause counting virtual milliseconds.

      Lockstep.receive do
        {:reply, ^ref, value} when is_integer(value) -> value
        :stop -> :stopped
      after
        1_000 -> :timeout
      end

  Each attempt is a sync point; a process with nothing matching is blocked until a new
  message reaches it or its timeout fires (in virtual time, see the `:timers` option).

  It takes only the messages of this run (sent through Lockstep, or by instrumented
  code): a reply a process outside the run sends with a plain `send` is not taken, and a
  process waiting for one is reported as blocked, the message listed as `unmanaged` in a
  `:deadlock` report. To talk to processes outside the run, write that code as
  instrumented code (`use Lockstep.Instrumented`, a `ctest` body, or `:instrument`), whose
  `receive` takes their replies.

  The `after` value is checked as Kernel's receive checks it: anything but `:infinity` or
  an integer in `0..4_294_967_295` raises `ErlangError` `:timeout_value`, when nothing in
  the mailbox matches (a matching message is taken whatever the value).
  """
  defmacro receive(clauses) do
    case clauses do
      [do: do_clauses] when is_list(do_clauses) ->
        build_receive(do_clauses, nil, __CALLER__)

      [do: do_clauses, after: [{:->, _, [[timeout], body]}]] when is_list(do_clauses) ->
        build_receive(do_clauses, {timeout, body}, __CALLER__)

      [do: _, after: _] ->
        raise CompileError,
          file: __CALLER__.file,
          line: __CALLER__.line,
          description: "Lockstep.receive takes exactly one `after` clause, like Kernel's receive"

      _ ->
        raise CompileError,
          file: __CALLER__.file,
          line: __CALLER__.line,
          description: "Lockstep.receive expects `do` clauses, like Kernel's receive"
    end
  end

  # Expands to one closure that loops: try a real selective receive over this run's tagged
  # messages with `after 0`; a hit reports the consumed message and runs the clause body
  # in place; a miss either runs the `after` body (the timeout has passed) or announces a
  # retry, which blocks this process until something new reaches its mailbox.
  defp build_receive(clauses, after_clause, caller) do
    ctx = Macro.var(:lockstep_ctx, __MODULE__)
    tag = Macro.var(:lockstep_tag, __MODULE__)
    seq = Macro.var(:lockstep_seq, __MODULE__)
    loop = Macro.var(:lockstep_loop, __MODULE__)
    attempt = Macro.var(:lockstep_attempt, __MODULE__)

    hand = Macro.var(:lockstep_hand, __MODULE__)

    tagged = fn pattern -> quote(do: {^unquote(tag), :msg, unquote(seq), unquote(pattern)}) end
    same = fn pattern -> pattern end

    # The clauses twice: over this run's tagged messages in the mailbox, and over a message
    # handed over with the wake-up (`Lockstep.Runtime.receive_start/2`).
    clauses_over = fn wrap ->
      Enum.map(clauses, fn
        {:->, meta, [[{:when, wmeta, [pattern, guard]}], body]} ->
          {:->, meta, [[{:when, wmeta, [wrap.(pattern), guard]}], consume(ctx, seq, body)]}

        {:->, meta, [[pattern], body]} ->
          {:->, meta, [[wrap.(pattern)], consume(ctx, seq, body)]}

        other ->
          raise CompileError,
            file: caller.file,
            line: caller.line,
            description: "invalid Lockstep.receive clause: #{Macro.to_string(other)}"
      end)
    end

    new_clauses = clauses_over.(tagged)
    hand_clauses = clauses_over.(same)

    patterns =
      clauses
      |> Enum.map(fn {:->, _, [[head], _]} -> Macro.to_string(head) end)
      |> Enum.join(" | ")

    description =
      "receive at #{Path.relative_to_cwd(caller.file)}:#{caller.line} matching " <>
        String.slice(patterns, 0, 160)

    {timeout, on_timeout} =
      case after_clause do
        nil -> {:infinity, quote(do: :unreachable)}
        {timeout, body} -> {timeout, body}
      end

    miss =
      quote do
        case unquote(attempt) do
          :attempt_last ->
            unquote(on_timeout)

          _ ->
            unquote(loop).(
              unquote(loop),
              unquote(ctx),
              Lockstep.Runtime.receive_retry(unquote(ctx), unquote(attempt))
            )
        end
      end

    after_zero = [{:->, [], [[0], miss]}]
    receive_ast = {:receive, [], [[do: new_clauses, after: after_zero]]}

    unhanded =
      quote generated: true do
        unquote(hand) ->
          Lockstep.Runtime.unhand(unquote(ctx), unquote(seq), unquote(hand))
          unquote(miss)
      end

    hand_ast = {:case, [generated: true], [hand, [do: hand_clauses ++ unhanded]]}

    quote do
      unquote(ctx) = Lockstep.Runtime.receive_context(unquote(description))
      {_, _, unquote(tag)} = unquote(ctx)

      unquote(loop) = fn
        unquote(loop), unquote(ctx), {:in_hand, unquote(seq), unquote(hand), unquote(attempt)} ->
          unquote(hand_ast)

        unquote(loop), unquote(ctx), unquote(attempt) ->
          unquote(receive_ast)
      end

      unquote(loop).(
        unquote(loop),
        unquote(ctx),
        Lockstep.Runtime.receive_start(unquote(ctx), unquote(timeout))
      )
    end
  end

  defp consume(ctx, seq, body) do
    quote do
      Lockstep.Runtime.consumed(unquote(ctx), unquote(seq))
      unquote(body)
    end
  end
end
