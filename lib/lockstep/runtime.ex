defmodule Lockstep.Runtime do
  @moduledoc false
  # The managed-process side of the hot path. A managed process keeps its run context
  # `{session, id, tag}` in its process dictionary. Each sync point is one NIF call that
  # returns the operation's result when the caller may go on, or `:wait`, after which the
  # caller parks here until the NIF (called by whichever process runs next) sends it
  # `{tag, :go, result}` (or `:wait_marked`: the same on a fresh reference, see
  # `park_marked/1`).
  #
  # This module calls Lockstep.Native directly for the sync points and the calls around
  # them (see Lockstep.Session, the gateway everything else goes through, for which);
  # what it asks about the session as a whole goes through Lockstep.Session too.

  alias Lockstep.{Native, Session, Timeout}

  #
  # What a process brings to its next sync point lives under `@pending` (see the NIF's
  # `handoff.rs`): the seq of a message it took since its last NIF call, `{pid, seq, msg}`,
  # a message it sent and still carries, or `{@send, dest, msg, seq | :undefined}`, a send
  # to a pid of the run it has not made yet (deferred: `send/2`'s caller needs no answer,
  # so the next hot call makes it first, in the same engine step it would have had). The hot
  # entries (send, receive, yield, the process's exit) pass it to their NIF, which may hand
  # the carried message to its receiver inside the wake-up; every other entry reaches the
  # engine through `context/0,1`, which settles it first. Either way nothing else of the run
  # runs before it is settled.

  @key :"$lockstep"
  @waiting :"$lockstep_waiting"
  @nomatch :"$lockstep_nomatch"
  @pending :"$lockstep_pending"
  @send :"$lockstep_send"
  # `{@managed, pid}` is `true` for a pid the process knows to be one of this run's (itself,
  # its parent, a process it spawned, or one the NIF answered a send to with that pid): a
  # send to any other pid may leave the run and is made at once.
  @managed :"$lockstep_managed"
  @sent :"$lockstep_sent"
  @sent_wait :"$lockstep_sent_wait"
  @pure :"$lockstep_pure"
  @awaiting_outside :"$lockstep_awaiting_outside"
  @sent_outside :"$lockstep_sent_outside"
  # A lease for this process's next hop, `{key, hop, peer, taken, last}`: the wake-up that
  # handed it a message also said that sending back to `peer` and waiting would be a forced
  # hop, which it may make without the engine (see `relay_hop/5` and the NIF's `relay.rs`;
  # `key` names the lease and the session's word its hops are counted in).
  @relay :"$lockstep_relay"
  @owned_tables :"$lockstep_ets_owned"
  # Present (`true`) in the processes of an iteration that captures its trace: instrumented
  # code then notes its call sites (`site/1`).
  @sites :"$lockstep_sites"
  @labelled :"$lockstep_labelled"
  @library :"$lockstep_library"

  # Functions of this module that are not what the user called; nor is any function of
  # Lockstep.SharedState, the wrappers' helper, which calls this module (named by its atom
  # here: recognising its frames is no call back).
  @internal [:context, :context_or_nil, :caller_name, :impure!, :not_managed!]
  @shared_state :"Elixir.Lockstep.SharedState"
  @renamed %{send_to: "send", link_op: "link"}
  @max_u64 18_446_744_073_709_551_615

  # While a predicate runs inside the receive machinery (`recv_first/1`), the context is
  # replaced by `{@pure, where}`: a sync point there would nest inside the receive's own.
  # The entry is read with `:erlang.get/1` (`Process.get/1` is a remote call more, about
  # 5 ns, twice a hop).
  def context do
    case :erlang.get(@key) do
      {_session, _id, _tag} = ctx -> settle_pending(ctx)
      :undefined -> not_managed!(caller_name())
      {@pure, where} -> impure!(caller_name(), where)
    end
  end

  @doc false
  def context(function) do
    case :erlang.get(@key) do
      {_session, _id, _tag} = ctx -> settle_pending(ctx)
      :undefined -> not_managed!(function)
      {@pure, where} -> impure!(function, where)
    end
  end

  # The context for a hot entry, which passes `take_pending/0` to its NIF itself.
  @compile {:inline, take_pending: 0}
  defp hot_context(function) do
    case :erlang.get(@key) do
      {_session, _id, _tag} = ctx -> ctx
      :undefined -> not_managed!(function)
      {@pure, where} -> impure!(function, where)
    end
  end

  def context_or_nil do
    case Process.get(@key) do
      {@pure, where} -> impure!(caller_name(), where)
      ctx -> ctx
    end
  end

  defp take_pending, do: :erlang.erase(@pending)

  defp settle_pending({session, id, tag} = ctx) do
    case :erlang.erase(@pending) do
      :undefined ->
        :ok

      seq when is_integer(seq) ->
        Native.consumed(session, id, seq)

      {pid, seq, msg} ->
        :erlang.send(pid, {tag, :msg, seq, msg})

      {@send, dest, msg, consumed} ->
        sent(resume(Native.sync_send(session, id, dest, msg, consumed), tag), dest, msg, ctx)
        settle_pending(ctx)
    end

    ctx
  end

  # A send the NIF made or answered (`sync_send`, or a deferred one that did not simply go
  # on): what the caller does with its result.
  defp sent({:deliver, seq, pid}, dest, msg, _ctx) do
    # In `pid`'s mailbox as far as the run can tell; carried to the next sync point.
    Process.put(@pending, {pid, seq, msg})
    if dest == pid, do: :erlang.put({@managed, pid}, true)
    pid
  end

  defp sent({:hold, seq, pid}, dest, msg, {session, id, _tag}) do
    Native.hold(session, id, seq, msg)
    if dest == pid, do: :erlang.put({@managed, pid}, true)
    pid
  end

  defp sent(:external, dest, msg, _ctx) do
    # whom a receive that finds nothing may be waiting on (for the :stuck report); a
    # name only the VM has (Logger's) is external too, and its holder is named
    :erlang.put(@sent_outside, outside_holder(dest))
    :erlang.send(dest, msg)
    nil
  end

  defp sent(:drop, _dest, _msg, _ctx), do: nil

  # Never `:undefined`: the receives read the entry with `:erlang.get/1`.
  defp outside_holder(dest) when is_atom(dest) do
    case :erlang.whereis(dest) do
      :undefined -> dest
      pid -> pid
    end
  end

  defp outside_holder(dest), do: dest

  # A hot NIF's answer when the caller brought a deferred send (see `@pending`): the send
  # did not simply go on, so it is settled here, as an ordinary one, and the call is made
  # again (`:again`); any other answer is the call's own.
  @compile {:inline, deferred: 3}
  defp deferred({@sent, result, dest, msg}, _tag, ctx) do
    sent(result, dest, msg, ctx)
    :again
  end

  defp deferred({@sent_wait, park, dest, msg}, tag, ctx) do
    sent(resume(park, tag), dest, msg, ctx)
    :again
  end

  defp deferred(answer, _tag, _ctx), do: answer

  # The caller has no run context. If it was started by, or is linked to, a managed process
  # (Kernel.spawn_link, Task.async: real processes outside the run), the error says so; a
  # linked one also notes the error for the run, since the real link is about to kill the
  # managed process and the report should say why, not "killed from outside the run".
  defp not_managed!(function) do
    error = %Lockstep.NotManagedError{function: function}

    case managed_relative() do
      nil ->
        raise error

      {pid, {session, id, _tag}, linked?} ->
        error = %{error | reason: :unmanaged, process: self(), context_owner: pid}
        stacktrace = user_stacktrace()

        if linked? do
          Session.note_outside_crash(session, id, {:error, error, stacktrace})
          # The real link would kill `pid` when this process dies of the error, but a managed
          # process traps exits for real (see `external_signal/1`) and, in code Lockstep does
          # not control, would never look: end it as the link would have.
          Process.exit(pid, :kill)
        end

        :erlang.raise(:error, error, stacktrace)
    end
  end

  # The caller's stacktrace from the Lockstep function it called on.
  defp user_stacktrace do
    {:current_stacktrace, frames} = Process.info(self(), :current_stacktrace)

    Enum.drop_while(frames, fn
      {Process, :info, _, _} -> true
      {__MODULE__, fun, _, _} -> fun in @internal or fun == :user_stacktrace
      _ -> false
    end)
  end

  # The first local process among the caller's links, parent (OTP 25's process_info
  # `:parent`), `$callers` and `$ancestors` whose dictionary holds a run context:
  # `{pid, context, linked?}`.
  defp managed_relative do
    [links: links, parent: parent] = Process.info(self(), [:links, :parent])
    callers = [parent | Process.get(:"$callers", [])] ++ Process.get(:"$ancestors", [])

    Enum.find_value(Enum.uniq(links ++ callers), fn
      pid when is_pid(pid) and node(pid) == :erlang.node() ->
        with {:dictionary, dict} <- Process.info(pid, :dictionary),
             {_session, _id, _tag} = ctx <- Keyword.get(dict, @key) do
          {pid, ctx, pid in links}
        else
          _ -> nil
        end

      _ ->
        nil
    end)
  end

  defp impure!(function, where) do
    raise ArgumentError,
          "#{function} was called inside #{where}. The predicate runs while Lockstep " <>
            "scans the mailbox (possibly many times, on messages it does not take), so it " <>
            "must be pure: no sends, receives, spawns, timers, shared-state wrappers or " <>
            "other Lockstep calls, which are sync points. Only test the message in the " <>
            "predicate, and act on it after Lockstep.recv_first/1 returns."
  end

  # The Lockstep function the user called: the first frame in a Lockstep module that is
  # not context plumbing. Public functions of `Lockstep` delegate (often as tail calls, so
  # their own frame is gone) to the function of the same name here.
  defp caller_name do
    case Process.info(self(), :current_stacktrace) do
      {:current_stacktrace, frames} ->
        Enum.find_value(frames, "a Lockstep function", &frame_name/1)

      _ ->
        "a Lockstep function"
    end
  end

  defp frame_name({__MODULE__, fun, _arity, _}) when fun in @internal, do: nil
  defp frame_name({@shared_state, _fun, _arity, _}), do: nil
  defp frame_name({__MODULE__, fun, _arity, _}), do: "Lockstep.#{Map.get(@renamed, fun, fun)}"

  defp frame_name({module, fun, arity, _}) when is_atom(module) do
    case Module.split(module) do
      ["Lockstep", _ | _] -> "#{inspect(module)}.#{fun}/#{arity}"
      _ -> nil
    end
  rescue
    ArgumentError -> nil
  end

  @compile {:inline, resume: 2}
  defp resume(:wait, tag), do: park(tag)
  defp resume(:wait_marked, tag), do: park_marked(tag)
  defp resume(result, _tag), do: result

  @doc false
  def park(tag) do
    receive do
      {^tag, :go, result} ->
        result

      {^tag, :exit, _reason} ->
        die_parked()

      {:EXIT, _from, reason} ->
        external_signal(reason)
        park(tag)
    end
  end

  # The engine already recorded this process as killed by an exit signal, or the iteration
  # is over (Lockstep.Iteration releases the processes left parked): die at once, without
  # running any more user code — after one look for what escaped the run's control, as at
  # any end of a managed process.
  defp die_parked do
    {session, id, tag} = Process.get(@key)
    Lockstep.Uncontrolled.check_self(session, id, tag)
    drop_owned_tables()
    Process.exit(self(), :kill)
  end

  # A process with a backlog of the run's messages in its mailbox (the NIF counts them and
  # answers `:wait_marked` instead of `:wait`) parks on a reference made here, which the NIF
  # puts in its wake-up in place of the tag: OTP 25 starts a receive whose every clause
  # matches a reference made just before it after the messages already queued, so each
  # wake-up costs the same however long the backlog (a plain park scans it all, every
  # time). Only such a receive is optimised, so an exit signal from outside is looked for
  # after `@marked_poll_ms` of waiting, with the scan of the plain park.
  @marked_poll_ms 100

  defp park_marked(tag) do
    {session, id, _tag} = Process.get(@key)
    wake_ref = make_ref()

    case Native.mark_park(session, id, wake_ref) do
      :ok -> await_marked(wake_ref, tag)
      # woken before the reference reached the NIF: the wake-up carries the tag
      :woken -> park(tag)
    end
  end

  defp await_marked(wake_ref, tag) do
    receive do
      {^wake_ref, :go, result} -> result
      {^wake_ref, :exit, _reason} -> die_parked()
    after
      @marked_poll_ms -> await_marked_slowly(wake_ref, tag)
    end
  end

  defp await_marked_slowly(wake_ref, tag) do
    receive do
      {^wake_ref, :go, result} ->
        result

      {^wake_ref, :exit, _reason} ->
        die_parked()

      {^tag, :exit, _reason} ->
        die_parked()

      {:EXIT, _from, reason} ->
        external_signal(reason)
        await_marked_slowly(wake_ref, tag)
    end
  end

  # Exit signals from outside the run. A managed BEAM process traps exits for real (the
  # simulated trap flag is the engine's), so that an exit signal sent by a process outside
  # the run (`Process.exit(pid, :shutdown)`) reaches it as a message while it waits at a
  # sync point: it tells the engine the real reason, which its simulated links and
  # monitors then see, and dies of it, as a process that does not trap exits does. (A
  # process running user code meets the signal at its next wait, or when its body ends: a
  # signal's delivery time is not bounded in OTP either; a receive that may block looks
  # first.) `:normal` is ignored, as by a
  # process that does not trap exits; `:kill` cannot be trapped and is noticed by the NIF's
  # process monitor, with reason `:killed`.
  defp external_signal(:normal), do: :ok

  defp external_signal(reason) do
    # what it sent or took before is settled first: it happened before the signal
    {session, id, _tag} = settle_pending(Process.get(@key))
    drop_owned_tables()
    Native.external_exit(session, id, reason)
    Process.flag(:trap_exit, false)
    :erlang.exit(self(), reason)

    # An exit signal to oneself takes effect before exit/2 returns; never go on.
    receive do
    after
      :infinity -> :ok
    end
  end

  # Before a receive that may block: a signal that came while this process ran user code
  # takes effect now, so the engine never counts a dying process as waiting (and, say,
  # declares a deadlock it would have broken).
  #
  # Looking costs a scan of the mailbox, so a process with a long one (a server with a
  # backlog of requests) does not look here: it meets the signal when it parks, as it
  # would any later, which only matters if nothing else of the run could happen meanwhile.
  @signal_scan_limit 32

  defp take_external_signal do
    {:message_queue_len, queued} = :erlang.process_info(self(), :message_queue_len)

    with true <- queued > 0 and queued <= @signal_scan_limit,
         reason when reason != nil <- pending_external_signal() do
      external_signal(reason)
    end
  end

  defp pending_external_signal do
    receive do
      {:EXIT, _from, reason} when reason != :normal -> reason
    after
      0 -> nil
    end
  end

  # Entry points -------------------------------------------------------------------------

  # A process waiting to start that the NIF does not know yet checks now and then that its
  # iteration is still on: if the owner (or its parent) died between spawning it and
  # registering its pid with the NIF, no one would ever tell it to start or to exit.
  @orphan_check_ms 1_000

  @doc false
  # Every managed process of an iteration is bound to one scheduler, the one its owner (the
  # process that runs the iteration) is on: the run's processes hand the turn to each other,
  # so they only ever run one at a time anyway, and keeping them on one run queue avoids the
  # migrations that made long multi-process iterations swing between 0.8 and 2.3 µs per
  # step (one scheduler: 0.56), and the cross-scheduler wake-ups that would cost short
  # iterations several times their work. Concurrent runs and `workers:` sit on the
  # schedulers their owners are on. `{:scheduler, n}` is an undocumented `spawn_opt` option
  # of OTP 25; without it the process is spawned unbound.
  def spawn_root(session, tag, fun, capture? \\ false) do
    sites = if capture?, do: true, else: :undefined
    spawn_bound(:root_entry, [session, tag, fun, sites], :erlang.system_info(:scheduler_id))
  end

  defp spawn_bound(entry, args, scheduler) do
    :erlang.spawn_opt(__MODULE__, entry, args, [{:scheduler, scheduler}])
  rescue
    ArgumentError -> :erlang.spawn(__MODULE__, entry, args)
  end

  @doc false
  def root_entry(session, tag, fun, sites), do: entry(session, 0, tag, fun, sites)

  @doc false
  # `parent`: the managed process that spawned it.
  def child_entry(session, id, tag, fun, sites, parent) do
    :erlang.put({@managed, parent}, true)
    entry(session, id, tag, fun, sites)
  end

  defp entry(session, id, tag, fun, sites) do
    Process.flag(:trap_exit, true)
    Process.put(@key, {session, id, tag})
    # Sends to itself (and to its parent) are the run's: they may be deferred (see
    # `send_later/2`). Only the process the context belongs to has these entries, so a
    # context copied into another process never defers, and its NIF call raises.
    :erlang.put({@managed, self()}, true)
    if sites == true, do: Process.put(@sites, true)
    await_start(session, id, tag, fun)
  end

  # `wait`: 0 on the first look; then `:infinity` once the NIF knows this process (it is
  # then told to start or to exit whatever happens to its run: no timer to set and cancel
  # for each child that waits for its turn), else the orphan check's period.
  defp await_start(session, id, tag, fun, wait \\ 0) do
    receive do
      {^tag, :go, :start} ->
        run_body(session, id, fun)

      {^tag, :exit, _} ->
        # Never started (killed first, or released at the end): nothing of it ran, but
        # messages sent around Lockstep may have reached it.
        Lockstep.Uncontrolled.check_self(session, id, tag)

      {:EXIT, _from, reason} ->
        external_signal(reason)
        await_start(session, id, tag, fun, wait)
    after
      wait ->
        cond do
          wait == 0 and Native.registered(session, id) ->
            await_start(session, id, tag, fun, :infinity)

          wait == 0 or Session.outcome(session) == nil ->
            await_start(session, id, tag, fun, @orphan_check_ms)

          true ->
            :ok
        end
    end
  end

  defp run_body(session, id, fun) do
    # The report reason keeps the class and stacktrace; linked and monitoring processes
    # see the OTP exit reason.
    try do
      fun.()
    catch
      :exit, reason ->
        class = if normal_exit?(reason), do: :normal, else: :abnormal
        finish(session, id, class, {:exit, reason, __STACKTRACE__}, reason)

      :error, reason ->
        exception = Exception.normalize(:error, reason, __STACKTRACE__)
        report = {:error, exception, __STACKTRACE__}
        finish(session, id, :abnormal, report, {exception, __STACKTRACE__})

      :throw, value ->
        report = {:throw, value, __STACKTRACE__}
        finish(session, id, :abnormal, report, {{:nocatch, value}, __STACKTRACE__})
    else
      _ -> finish(session, id, :normal, :normal, :normal)
    end
  end

  # An exit signal from outside that arrived while the body ran took effect first.
  # Its end is also where a process looks, once, for what escaped the run's control.
  defp finish(session, id, class, report, reason) do
    case pending_external_signal() do
      nil ->
        {^session, ^id, tag} = ctx = Process.get(@key)
        # A send still deferred is made before the tables go (others may run in its step).
        if :erlang.get(@owned_tables) != :undefined, do: settle_pending(ctx)
        Lockstep.Uncontrolled.check_self(session, id, tag)
        drop_owned_tables()
        exit_call(session, id, class, report, reason, ctx)

      signal ->
        external_signal(signal)
    end
  end

  defp exit_call(session, id, class, report, reason, {_, _, tag} = ctx) do
    case deferred(Native.exit(session, id, class, report, reason, take_pending()), tag, ctx) do
      :again -> exit_call(session, id, class, report, reason, ctx)
      # `:ok`, or `:wait`: the deferred send's step ended the iteration (`max_steps`)
      _over -> :ok
    end
  end

  @doc false
  # `tid`, created by the caller through Lockstep.ETS, dies with it (see below).
  def own_table(tid) do
    Process.put(@owned_tables, [tid | Process.get(@owned_tables, [])])
    :ok
  end

  # OTP deletes a process's ETS tables when it dies. The BEAM does that only once this
  # process has really ended, after the NIF has already let the next process run, so the
  # others could still see the table for a while: the tables it created are deleted here,
  # at its exit in the schedule (a table it gave away, or one with an heir, is left to the
  # BEAM, which gives it to the heir with a real 'ETS-TRANSFER' message). A process killed
  # by an exit signal deletes them when it gets the order to die, which another process of
  # the run may overtake.
  defp drop_owned_tables do
    case :erlang.erase(@owned_tables) do
      :undefined ->
        :ok

      tids ->
        me = self()

        for tid <- tids, :ets.info(tid, :owner) == me, :ets.info(tid, :heir) == :none do
          :ets.delete(tid)
        end

        :ok
    end
  end

  defp normal_exit?(:normal), do: true
  defp normal_exit?(:shutdown), do: true
  defp normal_exit?({:shutdown, _}), do: true
  defp normal_exit?(_), do: false

  # Operations ----------------------------------------------------------------------------

  # `monitor` is nil, or the ref of a monitor of the child set in the spawn's own step
  # (spawn_monitor: the child cannot exit before it is watched).
  def spawn(fun, link?, node \\ nil, monitor \\ nil)

  def spawn(fun, link?, node, monitor) when is_function(fun, 0) do
    {session, id, tag} = context()

    child =
      case resume(Native.sync_spawn(session, id, link?, node, monitor), tag) do
        :badnode -> raise ArgumentError, bad_node(node)
        child -> child
      end

    pid =
      spawn_bound(
        :child_entry,
        [session, child, tag, fun, :erlang.get(@sites), self()],
        :erlang.system_info(:scheduler_id)
      )

    Native.register_child(session, id, child, pid)
    :erlang.put({@managed, pid}, true)
    pid
  end

  def spawn(other, _link?, _node, _monitor) do
    raise ArgumentError,
          "Lockstep.spawn expects a zero-arity function, got: #{inspect(other)}"
  end

  def send(dest, msg) when is_pid(dest) do
    send_later(dest, msg)
    msg
  end

  def send(dest, msg) when is_atom(dest) or is_tuple(dest) do
    send_to(dest, msg)
    msg
  end

  def send(dest, _msg), do: raise(ArgumentError, bad_destination(dest))

  @doc false
  # Sends and returns the managed pid the message went to (nil: outside the run, or lost).
  def send_to(dest, msg), do: send_or(dest, msg, &send_error!/2)

  defp send_error!(:unregistered, dest), do: raise(ArgumentError, unregistered_message(dest))
  defp send_error!(:badarg, dest), do: raise(ArgumentError, bad_destination(dest))

  @doc false
  # `send_to/2` that calls `on_error.(:unregistered | :badarg, dest)` for a name nobody
  # holds or a destination that is none (the instrumented `send` raises OTP's badarg).
  def send_or(dest, msg, on_error) do
    {session, id, tag} = ctx = hot_context("Lockstep.send")

    case deferred(Native.sync_send(session, id, dest, msg, take_pending()), tag, ctx) do
      :again -> send_or(dest, msg, on_error)
      answer -> send_result(resume(answer, tag), dest, msg, ctx, on_error)
    end
  end

  @doc false
  # Whether `pid` is a process of the caller's run, started or not, and alive in it:
  # `:alive`, `:exited` or `:outside` (no sync point).
  def run_process(pid) when is_pid(pid) do
    {session, _id, _tag} = hot_context("Lockstep.ETS.give_away")
    Native.managed_pid(session, pid)
  end

  # (A name only a process of the VM holds is sent to for real: the NIF answers `:external`
  # for it.)
  defp send_result(:unregistered, dest, _msg, _ctx, on_error), do: on_error.(:unregistered, dest)
  defp send_result(:badarg, dest, _msg, _ctx, on_error), do: on_error.(:badarg, dest)
  defp send_result(result, dest, msg, ctx, _on_error), do: sent(result, dest, msg, ctx)

  @doc false
  # A send to a pid whose answer the caller does not need (`send/2`), which the caller's
  # next hot call makes (see `@pending`) when the pid is known to be the run's (one outside
  # is sent to at once, for real) and nothing is carried already.
  def send_later(dest, msg), do: send_later(dest, msg, nil)

  @doc false
  # `send_later/2` to a pid or a reference (an alias), `on_error` as in `send_or/3` for a
  # send made at once, `nil` to raise as `send/2` does (the capture is made only on that
  # path: OTP 25 allocates a fun at every `&f/2` it runs).
  def send_later(dest, msg, on_error) do
    {_session, _id, _tag} = hot_context("Lockstep.send")

    case :erlang.get(@pending) do
      :undefined -> send_later(dest, msg, :undefined, on_error)
      seq when is_integer(seq) -> send_later(dest, msg, seq, on_error)
      _ -> send_or(dest, msg, on_error || (&send_error!/2))
    end

    :ok
  end

  # The peer of a lease this process holds is the run's (and its look-up is one atom key,
  # where `{@managed, dest}` hashes a pid).
  defp send_later(dest, msg, consumed, on_error) when is_pid(dest) do
    if lease_peer?(dest) or :erlang.get({@managed, dest}) == true,
      do: :erlang.put(@pending, {@send, dest, msg, consumed}),
      else: send_or(dest, msg, on_error || (&send_error!/2))
  end

  # A reply alias named by a call from this run (see `learn_alias/1`) is replied to once.
  defp send_later(dest, msg, consumed, on_error) when is_reference(dest) do
    case :erlang.erase({@managed, dest}) do
      true -> :erlang.put(@pending, {@send, dest, msg, consumed})
      :undefined -> send_or(dest, msg, on_error || (&send_error!/2))
    end
  end

  defp send_later(dest, msg, _consumed, on_error),
    do: send_or(dest, msg, on_error || (&send_error!/2))

  # A `GenServer.call`/`:gen.call` request taken from this run's mailbox names the caller's
  # reply alias, which the caller (a process of this run) made for this call: the reply to
  # it is a send within the run, which the next hot call can make (see `@pending`).
  @compile {:inline, learn_alias: 1}
  defp learn_alias({:"$gen_call", {pid, [:alias | ref]}, _request})
       when is_pid(pid) and is_reference(ref),
       do: :erlang.put({@managed, ref}, true)

  defp learn_alias(_msg), do: :ok

  defp bad_destination(dest) do
    "Lockstep.send/2 expects a pid, a registered name or {name, node}, got: #{inspect(dest)}"
  end

  defp unregistered_message(dest) do
    "Lockstep.send/2: no process is registered as #{inspect(dest)} (like Kernel.send/2, " <>
      "sending to an unregistered name raises). Register the name before sending, or " <>
      "send to a pid."
  end

  def yield do
    {session, id, tag} = ctx = hot_context("Lockstep.yield")

    case deferred(Native.yield(session, id, take_pending()), tag, ctx) do
      :again -> yield()
      result -> resume(result, tag)
    end
  end

  def random(n) when is_integer(n) and n > 0 and n <= @max_u64 do
    {session, id, tag} = context()
    resume(Native.sync_random(session, id, n), tag)
  end

  def random(n) do
    raise ArgumentError,
          "Lockstep.random/1 expects a positive integer in 1..#{@max_u64} (the engine draws " <>
            "in 64 bits), got: #{inspect(n)}"
  end

  @doc false
  # Drives a receive: announce it (a sync point), and each time this process is picked try
  # `matcher` against the real mailbox. A miss tells the engine to block this process until
  # a new message reaches it. `matcher` returns `{seq, continuation}` or `@nomatch`.
  # The pieces `Lockstep.receive` expands to. The description stays in the process
  # dictionary for deadlock reports; a later receive overwrites it.
  def receive_context(description) do
    ctx = hot_context("Lockstep.receive")
    # A receive in a loop finds its own description there: a look-up costs less than the
    # write (the literal is the same term, so the comparison is one word).
    if :erlang.get(@waiting) !== description, do: :erlang.put(@waiting, description)
    ctx
  end

  # An attempt's result is `:attempt`, `:attempt_last` (the timeout has passed: one last
  # try, then the `after`) or `{:in_hand, seq, msg, attempt}`: the one message this receive
  # has not tried, handed over with the wake-up instead of through the mailbox. A bad
  # `after` value is announced as `after 0` (one look at the mailbox as it is) and raised
  # at the miss, when the process would wait: OTP takes a message that matches at once
  # whatever the timeout. The marker `{:bad_timeout, value}` carries it to the miss.
  def receive_start(ctx, timeout), do: receive_start(ctx, timeout, false)

  # `outside?`: the receive also takes messages from outside the run (instrumented code).
  # A process holding a lease looks for an exit signal from outside only if its hop is not
  # relayed (`relay_hop/5`): a relayed one meets it in its park, right after the hop, as
  # if the signal had come a moment later (its time is not the run's to fix). That look is
  # a `process_info/2` call, about 20 ns, a twentieth of a hop.
  defp receive_start({session, id, _tag} = ctx, :infinity, outside?) do
    if :erlang.get(@relay) == :undefined, do: take_external_signal()
    sync_receive(session, id, false, nil, ctx, outside?)
  end

  defp receive_start({session, id, _tag} = ctx, timeout, outside?) do
    take_external_signal()

    case Timeout.receive_timeout(timeout) do
      {:bad, value} ->
        case sync_receive(session, id, false, 0, ctx, outside?) do
          {:in_hand, seq, msg, _attempt} -> unhand(ctx, seq, msg)
          _attempt -> :ok
        end

        {:bad_timeout, value}

      ms ->
        sync_receive(session, id, false, ms, ctx, outside?)
    end
  end

  # A first attempt without timeout, by a process holding a lease: perhaps a relayed hop.
  # The lease stays until the attempt's result replaces or erases it (`relayed/1`).
  defp sync_receive(session, id, false, nil, ctx, outside?) do
    case :erlang.get(@relay) do
      :undefined -> sync_receive_nif(session, id, false, nil, ctx, outside?)
      lease -> relay_hop(session, id, lease, ctx, outside?)
    end
  end

  defp sync_receive(session, id, retry?, ms, ctx, outside?),
    do: sync_receive_nif(session, id, retry?, ms, ctx, outside?)

  defp sync_receive_nif(session, id, retry?, ms, ctx, outside?),
    do: sync_receive_nif(session, id, retry?, ms, ctx, outside?, take_pending())

  # `pending`: what `take_pending/0` took.
  defp sync_receive_nif(session, id, retry?, ms, {_, _, tag} = ctx, outside?, pending) do
    case deferred(Native.sync_receive(session, id, retry?, ms, pending), tag, ctx) do
      :again ->
        # The deferred send went outside the run: this receive may await the reply.
        if outside? and :erlang.get(@sent_outside) != :undefined,
          do: Native.await_outside(session, id)

        sync_receive(session, id, retry?, ms, ctx, outside?)

      result ->
        relayed(resume(result, tag))
    end
  end

  # The hop the lease is for is exactly what this process brings: it took message `taken`,
  # sent (deferred) one message to `peer`, and now waits with no timeout. If the lease is
  # still out (`Native.relay_hop/5` counts the hop, or says no once any engine call ended
  # it), the engine would make both of the hop's decisions forced: the same NIF call wakes
  # `peer` with the message in hand, and a lease for the hop back (counting and waking in
  # one call: no kill can land between them), and this process parks — the engine replays
  # the hop at its next call. Anything else goes to the NIF as usual.
  defp relay_hop(session, id, {key, hop, peer, taken, last}, {_, _, tag} = ctx, outside?) do
    case :erlang.get(@pending) do
      {@send, ^peer, msg, ^taken} = pending ->
        :erlang.erase(@pending)
        sent = taken + 1

        # Flat, so that the wake-up copied into `peer`'s heap is small: `relayed/1` there
        # builds the result and the lease from it.
        wake =
          if hop < last,
            do: {@relay, sent, msg, key, hop + 1, self(), last},
            else: {:in_hand, sent, msg, :attempt}

        if Native.relay_hop(session, key, hop, peer, {tag, :go, wake}) do
          relayed(park(tag))
        else
          :erlang.put(@pending, pending)
          unrelayed(session, id, ctx, outside?)
        end

      _other ->
        unrelayed(session, id, ctx, outside?)
    end
  end

  # The attempt of a lease holder whose hop is not relayed: the look for an exit signal
  # that `receive_start/3` left to the hop, then the NIF.
  defp unrelayed(session, id, ctx, outside?) do
    take_external_signal()
    sync_receive_nif(session, id, false, nil, ctx, outside?)
  end

  @compile {:inline, lease_peer?: 1}
  defp lease_peer?(pid) do
    case :erlang.get(@relay) do
      {_key, _hop, ^pid, _taken, _last} -> true
      _ -> false
    end
  end

  # A receive's result: a lease it carries replaces the one held, if any (a relayed hop's
  # wake-up carries the next, so the entry is written once per hop); a result without one
  # ends any lease held, which no later hop may use.
  @compile {:inline, relayed: 1}
  defp relayed({@relay, result, lease}) do
    :erlang.put(@relay, lease)
    result
  end

  # A relayed hop's wake-up (`relay_hop/5`): message `seq` in hand, and the lease.
  defp relayed({@relay, seq, msg, key, hop, peer, last}) do
    :erlang.put(@relay, {key, hop, peer, seq, last})
    {:in_hand, seq, msg, :attempt}
  end

  defp relayed(result) do
    :erlang.erase(@relay)
    result
  end

  def receive_retry(_ctx, {:bad_timeout, value}), do: Timeout.bad_after!(value)

  # Picked to wait for the outside, in a receive that only takes this run's messages
  # (`Lockstep.receive`, `recv/0`, `recv_first/1`): nothing it can take will come. It holds
  # the turn until the owner reports it `:stuck`, saying whom it waits on.
  def receive_retry({_session, _id, tag}, :await_outside) do
    Process.put(@awaiting_outside, true)

    receive do
      {^tag, :exit, _reason} -> Process.exit(self(), :kill)
    end
  end

  def receive_retry(ctx, _attempt), do: receive_retry(ctx)

  def receive_retry({session, id, _tag} = ctx) do
    take_external_signal()
    sync_receive(session, id, true, nil, ctx, false)
  end

  # Taking a message is reported with the next sync point.
  def consumed(_ctx, seq), do: :erlang.put(@pending, seq)

  # An OTP behaviour's process, at its first instrumented operation of a capturing
  # iteration, notes the module it runs for the report ("P.1 (MyApp.Account)"): proc_lib
  # has put its initial call in the dictionary before any of its code ran.
  defp label_once(session, id) do
    if :erlang.get(@labelled) == :undefined do
      :erlang.put(@labelled, true)

      case behaviour_module(:erlang.get(:"$initial_call")) do
        nil -> :ok
        module -> Native.note_label(session, id, inspect(module))
      end
    end
  end

  # `{Mod, :init, 1}` for gen_server/gen_statem/gen_event processes, `{:supervisor, Mod,
  # 1}` for supervisors; Elixir's Agent and list-of-children Supervisor run Agent.Server and
  # Supervisor.Default, which say less than "Agent" and "Supervisor".
  defp behaviour_module({:supervisor, Supervisor.Default, 1}), do: Supervisor
  defp behaviour_module({:supervisor, module, 1}) when is_atom(module), do: module
  defp behaviour_module({Agent.Server, :init, 1}), do: Agent
  defp behaviour_module({module, :init, 1}) when is_atom(module), do: module
  defp behaviour_module(_), do: nil

  @doc false
  # Instrumented code in an iteration that captures its trace, before each operation: the
  # events the operation records are shown at `site`, `"lib/my_app/server.ex:12"` (see the
  # NIF's `Sites`). A message a receive took before is reported first, so that its event
  # keeps the receive's site; a message the caller carries stays for its sync point.
  def site(site) do
    case :erlang.get(@key) do
      {session, id, tag} = ctx ->
        consumed =
          case :erlang.get(@pending) do
            seq when is_integer(seq) ->
              :erlang.erase(@pending)
              seq

            # A deferred send is made now, under the site of the send (it may leave a
            # message to carry, which stays for the next sync point).
            {@send, dest, msg, consumed} ->
              :erlang.erase(@pending)
              answer = resume(Native.sync_send(session, id, dest, msg, consumed), tag)
              sent(answer, dest, msg, ctx)
              nil

            _ ->
              nil
          end

        Native.note_site(session, id, consumed, site)
        label_once(session, id)

      # not managed, or inside a predicate of the receive machinery (the operation raises)
      _ ->
        :ok
    end
  end

  @doc false
  # `site/1` for an operation inside OTP's or Elixir's code (`gen.erl:256`): the report
  # shows it at the nearest caller in the user's code (the `GenServer.call` in
  # `lib/my_app/account.ex`), or at the library's line when no user code is on the stack
  # (a server's own loop). Only capturing iterations get here.
  def library_site(site) do
    {:current_stacktrace, frames} = Process.info(self(), :current_stacktrace)
    # The look-ups below use the code and file servers: while they run, this process is
    # not managed, so the instrumented OTP under them runs the original calls.
    context = :erlang.erase(@key)

    user =
      try do
        user_site(frames)
      after
        :erlang.put(@key, context)
      end

    site(user || site)
  end

  defp user_site(frames) do
    Enum.find_value(frames, fn {module, _f, _a, location} ->
      with false <- library_frame?(module),
           file when file != nil <- location[:file],
           line when is_integer(line) and line > 0 <- location[:line] do
        "#{Path.relative_to_cwd(to_string(file))}:#{line}"
      else
        _ -> nil
      end
    end)
  end

  # Cached per process: a capturing iteration asks for the same few modules at every
  # operation.
  defp library_frame?(module) do
    case :erlang.get({@library, module}) do
      :undefined ->
        library? = Lockstep.Instrument.library?(module) or Lockstep.Instrument.ours?(module)
        :erlang.put({@library, module}, library?)
        library?

      library? ->
        library?
    end
  end

  # A message handed over that no clause takes: into the mailbox, where it would have been.
  # It is the newest message of the run to this process, so it goes last.
  def unhand({_session, _id, tag}, seq, msg), do: :erlang.send(self(), {tag, :msg, seq, msg})

  # `recv/0` and `recv_first/1` on the same entries as the macro: `matcher` tries the
  # mailbox and returns `{seq, continuation}` or `@nomatch`.
  def receive_loop(description, matcher, timeout \\ :infinity, on_timeout \\ nil) do
    ctx = receive_context(description)
    attempt(ctx, matcher, receive_start(ctx, timeout), on_timeout)
  end

  defp attempt({_session, _id, tag} = ctx, matcher, attempt, on_timeout) do
    attempt =
      case attempt do
        {:in_hand, seq, msg, attempt} ->
          unhand(ctx, seq, msg)
          attempt

        attempt ->
          attempt
      end

    case matcher.(tag) do
      @nomatch when attempt == :attempt_last ->
        on_timeout.()

      @nomatch ->
        attempt(ctx, matcher, receive_retry(ctx, attempt), on_timeout)

      {seq, continuation} ->
        consumed(ctx, seq)
        continuation.()
    end
  end

  @doc false
  # The receive of instrumented code (Lockstep.Instrument.Rewrite), on the entries of the
  # macro, with one generated fun of two modes: `matcher.(:scan, tag, wait)` is a selective
  # receive `after wait` over this run's tagged messages and messages from outside the run,
  # returning `{seq, message}`, `{:external, message}` or `@nomatch`;
  # `matcher.(:test, message, nil)` says whether a message handed over with the wake-up
  # matches a clause. Returns `{:"$lockstep_msg", message}`, which the generated code
  # matches against the original clauses, or `:"$lockstep_timeout"`.
  def instrumented_receive(matcher, timeout, description) do
    ctx = receive_context(description)

    # It sent outside the run: this receive may be waiting for the reply (told to the
    # engine after any send still deferred, which comes first; a deferred send that turns
    # out to leave the run is told of by `sync_receive/6`).
    if :erlang.get(@sent_outside) != :undefined do
      {session, id, _tag} = settle_pending(ctx)
      Native.await_outside(session, id)
    end

    instrumented_attempt(ctx, matcher, receive_start(ctx, timeout, true))
  end

  defp instrumented_attempt(ctx, matcher, {:in_hand, seq, msg, attempt}) do
    if matcher.(:test, msg, nil) do
      consumed(ctx, seq)
      learn_alias(msg)
      {:"$lockstep_msg", msg}
    else
      unhand(ctx, seq, msg)
      instrumented_scan(ctx, matcher, attempt)
    end
  end

  # Nothing else of the run can happen, and this process sent to a process outside the run:
  # it holds the turn and waits, in wall time, for a message from outside that a clause
  # takes. If none comes within the run's `:timeout`, the owner reports it `:stuck`.
  defp instrumented_attempt({_session, _id, tag} = ctx, matcher, :await_outside) do
    Process.put(@awaiting_outside, true)
    {:external, msg} = matcher.(:scan, tag, :infinity)
    Process.delete(@awaiting_outside)
    external(ctx, msg)
  end

  defp instrumented_attempt(ctx, matcher, attempt),
    do: instrumented_scan(ctx, matcher, attempt)

  defp instrumented_scan({_session, _id, tag} = ctx, matcher, attempt) do
    case matcher.(:scan, tag, 0) do
      {:external, msg} ->
        external(ctx, msg)

      {seq, msg} ->
        consumed(ctx, seq)
        learn_alias(msg)
        {:"$lockstep_msg", msg}

      @nomatch when attempt == :attempt_last ->
        :"$lockstep_timeout"

      @nomatch ->
        instrumented_attempt(ctx, matcher, receive_retry(ctx, attempt))
    end
  end

  # A message from outside the run was taken: what was carried or taken before is settled
  # first, then the engine records it (not a sync point).
  defp external({session, id, _tag} = ctx, msg) do
    settle_pending(ctx)
    Process.delete(@sent_outside)
    Native.external_received(session, id)
    {:"$lockstep_msg", msg}
  end

  # Links, monitors, exit signals ----------------------------------------------------------

  def link(pid), do: link_op(pid, true, "link/1")
  def unlink(pid), do: link_op(pid, false, "unlink/1")

  defp link_op(pid, on?, what) when is_pid(pid) do
    case link_result(pid, on?) do
      :ok -> true
      # OTP 25: linking to a process that no longer exists raises in a non-trapping caller.
      :noproc -> :erlang.error(:noproc)
      :unmanaged -> raise ArgumentError, unmanaged(what, pid)
    end
  end

  defp link_op(other, _on?, what),
    do: raise(ArgumentError, "Lockstep.#{what} expects a pid, got: #{inspect(other)}")

  @doc false
  # link (`on?`) or unlink: `:ok`, `:noproc` (link/1 to a dead process from a caller that
  # does not trap exits) or `:unmanaged` (a pid outside the run: no sync point).
  def link_result(pid, on?) do
    {session, id, tag} = context()
    resume(Native.sync_link(session, id, pid, on?), tag)
  end

  defp unmanaged(what, pid) do
    "Lockstep.#{what}: #{inspect(pid)} is not a process of this run. Links, monitors and " <>
      "exit signals are simulated between managed processes only (spawn it with " <>
      "Lockstep.spawn/1)."
  end

  # As Process.monitor/1: a pid, a registered name or `{name, node}`; a name nobody holds
  # gives an immediate `:noproc` `:DOWN` naming `{name, node}`.
  def monitor(target)
      when is_pid(target) or is_atom(target) or
             (is_tuple(target) and tuple_size(target) == 2 and is_atom(elem(target, 0)) and
                is_atom(elem(target, 1))) do
    case monitor_target(target) do
      ref when is_reference(ref) ->
        ref

      :unmanaged ->
        raise ArgumentError, unmanaged("monitor/1", target)

      :badnode ->
        raise ArgumentError,
              "Lockstep.monitor/1: #{inspect(elem(target, 1))} in #{inspect(target)} is not a " <>
                "node of this run (start it with Lockstep.Cluster.start_nodes/1)"
    end
  end

  def monitor(other) do
    raise ArgumentError,
          "Lockstep.monitor/1 expects a pid, a registered name or {name, node}, got: " <>
            inspect(other)
  end

  @doc false
  # monitor(:process, target) for a pid, a registered name or `{name, node}`: the ref, or
  # `:unmanaged` (a pid outside the run) or `:badnode` (a node this run has not started),
  # both without a sync point.
  def monitor_target(target) do
    {session, id, tag} = context()
    ref = make_ref()

    case resume(Native.sync_monitor(session, id, target, ref), tag) do
      :ok -> ref
      other -> other
    end
  end

  # With `:info` in `opts` the answer is whether the monitor was still active (OTP's
  # demonitor/2), else `true`.
  # `length/1` fails the guard for an improper list (`[:flush | :info]`), which
  # :erlang.demonitor/2 refuses too: the clause below names it.
  def demonitor(ref, opts) when is_reference(ref) and is_list(opts) and length(opts) >= 0 do
    # As :erlang.demonitor/2, an unknown option is refused, before anything is done.
    case Enum.reject(opts, &(&1 in [:flush, :info])) do
      [] ->
        :ok

      bad ->
        raise ArgumentError,
              "Lockstep.demonitor/2 accepts the options :flush and :info, got: #{inspect(bad)}"
    end

    {session, id, tag} = context()
    active? = resume(Native.sync_demonitor(session, id, ref), tag)

    if :flush in opts do
      flush_down(session, id, tag, ref)
    end

    if :info in opts, do: active?, else: true
  end

  def demonitor(ref, opts) do
    raise ArgumentError,
          "Lockstep.demonitor/2 expects a monitor reference and a proper list of options, " <>
            "got: " <>
            "#{inspect(ref)}, #{inspect(opts)}"
  end

  defp flush_down(session, id, tag, ref) do
    receive do
      {^tag, :msg, seq, {:DOWN, ^ref, _, _, _}} ->
        Native.consumed(session, id, seq)
        flush_down(session, id, tag, ref)
    after
      0 -> :ok
    end
  end

  def flag(:trap_exit, value) when is_boolean(value) do
    {session, id, tag} = context()
    resume(Native.sync_trap_exit(session, id, value), tag)
  end

  def flag(flag, value) do
    raise ArgumentError,
          "Lockstep.flag/2 simulates only :trap_exit with a boolean, got: " <>
            "#{inspect(flag)}, #{inspect(value)}"
  end

  def exit(pid, reason) when is_pid(pid) do
    case exit_result(pid, reason) do
      :ok -> true
      :unmanaged -> raise ArgumentError, unmanaged("exit/2", pid)
    end
  end

  def exit(other, _reason),
    do: raise(ArgumentError, "Lockstep.exit/2 expects a pid, got: #{inspect(other)}")

  @doc false
  # exit/2: `:ok`, or `:unmanaged` (a pid outside the run: no sync point).
  def exit_result(pid, reason) do
    {session, id, tag} = context()
    resume(Native.sync_exit_signal(session, id, pid, reason), tag)
  end

  def alive?(pid) when is_pid(pid) do
    {session, id, tag} = context()

    case resume(Native.sync_alive(session, id, pid), tag) do
      :unmanaged -> Process.alive?(pid)
      alive? -> alive?
    end
  end

  def alive?(other),
    do: raise(ArgumentError, "Lockstep.alive?/1 expects a pid, got: #{inspect(other)}")

  # Registered names ----------------------------------------------------------------------

  def register(name, pid) when is_atom(name) and name not in [nil, :undefined] and is_pid(pid) do
    case register_result(name, pid) do
      true ->
        true

      false ->
        raise ArgumentError,
              "Lockstep.register/2 failed for #{inspect(name)} and #{inspect(pid)}: the name " <>
                "is taken, the process already has a name, or it is not alive (as " <>
                ":erlang.register/2 refuses)"

      :unmanaged ->
        raise ArgumentError, unmanaged("register/2", pid)
    end
  end

  def register(name, pid) do
    raise ArgumentError,
          "Lockstep.register/2 expects an atom name (not nil or :undefined) and a pid, got: " <>
            "#{inspect(name)}, #{inspect(pid)}"
  end

  @doc false
  # register/2: `true`, `false` (refused, as :erlang.register/2 refuses) or `:unmanaged`.
  def register_result(name, pid) do
    {session, id, tag} = context()
    resume(Native.sync_name(session, id, {:register, name, pid}), tag)
  end

  def unregister(name) when is_atom(name) do
    if unregister_result(name) do
      true
    else
      raise ArgumentError, "Lockstep.unregister/1: #{inspect(name)} is not registered"
    end
  end

  # :erlang.unregister/1 raises ArgumentError for a name that is not an atom.
  def unregister(name) do
    raise ArgumentError, "Lockstep.unregister/1 expects an atom name, got: #{inspect(name)}"
  end

  @doc false
  # unregister/1: whether the name was registered (on the caller's node).
  def unregister_result(name) do
    {session, id, tag} = context()
    resume(Native.sync_name(session, id, {:unregister, name}), tag)
  end

  def whereis(name) when is_atom(name) do
    {session, id, tag} = context()
    resume(Native.sync_name(session, id, {:whereis, name}), tag)
  end

  # Process.whereis/1 raises ArgumentError for a name that is not an atom.
  def whereis(name) do
    raise ArgumentError, "Lockstep.whereis/1 expects an atom name, got: #{inspect(name)}"
  end

  def registered do
    {session, id, tag} = context()
    resume(Native.sync_name(session, id, :registered), tag)
  end

  # Aliases -------------------------------------------------------------------------------

  @doc false
  # An alias of the caller, as OTP's alias/0: a destination that can be turned off so that
  # a late reply is dropped instead of reaching the mailbox. Not a sync point.
  def alias do
    {session, id, _tag} = context()
    n = next_alias()
    Native.alias(session, id, n, :on)
    {:"$lockstep_alias", self(), n}
  end

  @doc false
  def unalias({:"$lockstep_alias", pid, n}) when pid == self() do
    {session, id, _tag} = context()
    Native.alias(session, id, n, :off)
    true
  end

  # Reference aliases (the instrumented alias/0,1 and monitor/3's `alias` option): sends to
  # `ref` reach the caller while the alias is active. `reply?`: spent by its first message;
  # `mref`: the caller's monitor it lives and dies with (nil: none). The number the engine
  # knows it by is kept under `{@alias_ref, ref}` for unalias/1, which only the owner calls.
  @alias_ref :"$lockstep_alias_ref"

  @doc false
  def alias_ref(ref, reply?, mref) when is_reference(ref) and is_boolean(reply?) do
    {session, id, _tag} = context()
    n = next_alias()
    Native.alias(session, id, n, {:ref, ref, reply?, mref})
    Process.put({@alias_ref, ref}, n)
    ref
  end

  @doc false
  # `{:ok, was_active?}` for a reference alias the caller made in this run, else `:unknown`.
  def unalias_ref(ref) do
    {session, id, _tag} = context()

    case Process.delete({@alias_ref, ref}) do
      nil -> :unknown
      n -> {:ok, Native.alias(session, id, n, :off)}
    end
  end

  defp next_alias do
    n = Process.get(:"$lockstep_alias_count", 0) + 1
    Process.put(:"$lockstep_alias_count", n)
    n
  end

  # Virtual time --------------------------------------------------------------------------

  def now do
    {session, id, tag} = context()
    resume(Native.sync_time(session, id, :now), tag)
  end

  # `Lockstep.sleep/1` has `Process.sleep/1`'s guard, and `:infinity` waits forever
  # (leaving the mailbox alone). Above the largest `after` value it does what the running
  # Elixir's `Process.sleep/1` does: raise `:timeout_value` (1.17 and before), or sleep
  # that long (1.18 and later; the virtual clock is 64-bit and saturates).
  def sleep(:infinity) do
    context("Lockstep.sleep/1")
    receive_loop("Lockstep.sleep(:infinity)", fn _tag -> @nomatch end)
  end

  def sleep(ms) do
    {session, id, tag} = context("Lockstep.sleep/1")

    case Timeout.receive_timeout(ms) do
      {:bad, value} -> long_sleep(session, id, tag, value)
      ms -> resume(Native.sync_time(session, id, {:sleep, ms}), tag)
    end

    :ok
  end

  if Version.compare(System.version(), "1.18.0-dev") == :lt do
    defp long_sleep(_session, _id, _tag, ms), do: Timeout.bad_after!(ms)
  else
    defp long_sleep(session, id, tag, ms) when ms > @max_u64 do
      resume(Native.sync_time(session, id, {:sleep, @max_u64}), tag)
      long_sleep(session, id, tag, ms - @max_u64)
    end

    defp long_sleep(session, id, tag, ms) when is_integer(ms) and ms >= 0,
      do: resume(Native.sync_time(session, id, {:sleep, ms}), tag)

    defp long_sleep(_session, _id, _tag, ms), do: Timeout.bad_after!(ms)
  end

  def send_after(dest, msg, ms) when is_pid(dest) or is_atom(dest) do
    context()

    # The deadline bound needs the clock, read (no sync point) only for a large value.
    unless is_integer(ms) and ms >= 0 and ms <= 4_294_967_295 do
      Timeout.timer_time!(ms, clock(), [dest, msg, ms])
    end

    case timer(:send_after, dest, msg, ms) do
      :badarg -> raise ArgumentError, bad_destination(dest)
      ref -> ref
    end
  end

  def send_after(dest, _msg, _ms) do
    raise ArgumentError,
          "Lockstep.send_after/3 expects a pid or a registered name as destination, got: " <>
            inspect(dest)
  end

  @doc false
  # The one entry behind every timer that sends a message: `erlang:send_after/3`
  # (`kind` `:send_after`: the message is `msg`) and `erlang:start_timer/3`
  # (`:start_timer`: the message is `{:timeout, ref, msg}`, built here, so the engine
  # never tells the two apart). `ms` is the delay from now, already checked by the caller.
  # Returns the timer ref, or `:badarg` when `dest` is no destination at all.
  def timer(kind, dest, msg, ms) do
    {session, id, tag} = context()
    ref = make_ref()
    payload = if kind == :start_timer, do: {:timeout, ref, msg}, else: msg

    case resume(Native.sync_send_after(session, id, dest, payload, ms, ref), tag) do
      :ok -> ref
      :badarg -> :badarg
    end
  end

  @doc false
  # The virtual clock in ms without a sync point: to check a timer's deadline, which OTP
  # does before anything happens.
  def clock do
    {session, _id, _tag} = context()
    Session.now(session)
  end

  def cancel_timer(ref) when is_reference(ref), do: cancel_timer(ref, false, true)

  def cancel_timer(other),
    do:
      raise(
        ArgumentError,
        "Lockstep.cancel_timer/1 expects a timer reference, got: #{inspect(other)}"
      )

  @doc false
  # `erlang:cancel_timer(ref, [{:async, async?}, {:info, info?}])`, arguments checked by
  # the caller: the ms left or `false` (`info?` and not `async?`), else `:ok`; with both,
  # the answer comes as the message `{:cancel_timer, ref, result}`, which the engine
  # counts in the mailbox when the call returns and which this process puts there.
  def cancel_timer(ref, async?, info?) do
    {session, id, tag} = context()

    case resume(Native.sync_cancel_timer(session, id, ref, async? and info?), tag) do
      {:notice, seq, result} -> notice(tag, seq, {:cancel_timer, ref, result})
      result when info? and not async? -> result
      _result -> :ok
    end
  end

  @doc false
  # `erlang:read_timer(ref, [{:async, async?}])`: the ms left or `false`; with `async?`,
  # `:ok` and the message `{:read_timer, ref, result}`.
  def read_timer(ref, async? \\ false) do
    {session, id, tag} = context()

    case resume(Native.sync_read_timer(session, id, ref, async?), tag) do
      {:notice, seq, result} -> notice(tag, seq, {:read_timer, ref, result})
      result -> result
    end
  end

  defp notice(tag, seq, msg) do
    :erlang.send(self(), {tag, :msg, seq, msg})
    :ok
  end

  # Randomness ----------------------------------------------------------------------------

  @doc false
  # Seeds the caller's `:rand` state (the default algorithm, exsss) from the iteration
  # seed and its spawn-tree name (SPEC §9), so its draws replay exactly. Done on the first
  # `:rand` draw of instrumented code (Lockstep.Instrument.Ops.Time), not at spawn: seeding
  # costs about 2 µs (measured: `:rand.seed(:exsss, n)`), and most processes never draw.
  def seed_rand do
    {session, id, _tag} = context()
    :rand.seed(:exsss, Native.rand_seed(session, id))
  end

  # Cluster -------------------------------------------------------------------------------

  def node do
    {session, id, _tag} = context()
    Native.node_name(session, id)
  end

  @doc false
  def cluster(op) do
    case cluster_result(op) do
      :badnode -> raise ArgumentError, bad_node(op)
      :unmanaged -> raise ArgumentError, unmanaged("Cluster", elem(op, 1))
      :badarg -> raise ArgumentError, "invalid cluster operation: #{inspect(op)}"
      result -> result
    end
  end

  @doc false
  # A cluster operation's plain answer, `:badnode`, `:unmanaged` and `:badarg` included.
  def cluster_result(op) do
    {session, id, tag} = context()
    resume(Native.sync_cluster(session, id, op), tag)
  end

  defp bad_node(what) do
    "#{inspect(what)} names a node this run has not started; start simulated nodes with " <>
      "Lockstep.Cluster.start_nodes/1 first (:nonode@nohost, the root's node, always exists)"
  end

  @doc false
  # Named ETS tables of the caller's simulated node (not sync points).
  def ets_register(name, tid) do
    {session, id, _tag} = context()
    Native.ets_names(session, id, {:register, name, tid})
  end

  def ets_lookup(name) do
    {session, id, _tag} = context()
    Native.ets_names(session, id, {:whereis, name})
  end

  def ets_unregister(name) do
    {session, id, _tag} = context()
    Native.ets_names(session, id, {:unregister, name})
  end

  # `[{name, tid}]`: every named table of the caller's node.
  def ets_named do
    {session, id, _tag} = context()
    Native.ets_names(session, id, :all)
  end

  # Shared state --------------------------------------------------------------------------

  @doc false
  # A generic sync point before a shared-state operation; `kind` names it in the trace.
  def nif_sync(kind, object) do
    {session, id, tag} = context()
    resume(Native.sync_nif(session, id, kind, object), tag)
    :ok
  end

  def recv do
    context("Lockstep.recv/0")

    receive_loop("Lockstep.recv()", fn tag ->
      receive do
        {^tag, :msg, seq, msg} -> {seq, fn -> msg end}
      after
        0 -> @nomatch
      end
    end)
  end

  def recv_first(pred) when is_function(pred, 1) do
    ctx = context("Lockstep.recv_first/1")

    receive_loop("Lockstep.recv_first(#{inspect(pred)})", fn tag ->
      {:messages, messages} = Process.info(self(), :messages)
      Process.put(@key, {@pure, "the predicate given to Lockstep.recv_first/1"})

      found =
        try do
          Enum.find_value(messages, fn
            {^tag, :msg, seq, msg} -> if pred.(msg), do: seq
            _ -> nil
          end)
        after
          Process.put(@key, ctx)
        end

      case found do
        nil ->
          @nomatch

        seq ->
          receive do
            {^tag, :msg, ^seq, msg} -> {seq, fn -> msg end}
          end
      end
    end)
  end

  def recv_first(other) do
    raise ArgumentError,
          "Lockstep.recv_first/1 expects a one-argument predicate, got: #{inspect(other)}"
  end

  @doc false
  def nomatch, do: @nomatch

  @doc false
  def waiting_key, do: @waiting
end
