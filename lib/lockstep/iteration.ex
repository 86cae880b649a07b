defmodule Lockstep.Iteration do
  @moduledoc false
  # The owner's side of one iteration: create the session, start the root, wait for the
  # NIF's `{done, :done, reason}` while watching for a process that stops reaching sync
  # points, then tear everything down. Never on the hot path.
  #
  # `done` is a reference made by `run/5` just before it starts the iteration and passed down
  # to the receives that wait for the end: the compiler then lets those receives skip every
  # message that was in the owner's mailbox before it was made, so a test process with
  # thousands of unrelated messages waiting pays nothing for them.

  alias Lockstep.{Janitor, Session}

  @poll_ms 50

  @doc false
  def start(cell, fun, iter_seed, cfg, capture?, done) do
    {session, tag} = new_session(cell, iter_seed, cfg, capture?, done)
    start_root(session, tag, fun, capture?)
    {session, tag}
  end

  @doc false
  # The calling process becomes the session's owner: it gets `{done, :done, reason}`. Its
  # janitor (see Lockstep.Janitor) learns the session before anything runs in it.
  def new_session(cell, iter_seed, cfg, capture?, done) do
    {session, tag} = Session.open(cell, iter_seed, cfg, capture?, done)
    Janitor.watch(session, tag)
    {session, tag}
  end

  @doc false
  # `capture?`: instrumented code notes the call sites of its operations for the report.
  def start_root(session, tag, fun, capture? \\ false) do
    root = Lockstep.Runtime.spawn_root(session, tag, fun, capture?)
    :ok = Session.start(session, root)
    root
  end

  @doc false
  def run(cell, fun, iter_seed, cfg, capture?) do
    done = make_ref()
    {session, tag} = start(cell, fun, iter_seed, cfg, capture?, done)
    result = finish(session, tag, await(session, done, cfg.timeout), capture?, done)
    strict_control(result, Map.get(cfg, :strict_control, false))
  end

  # SPEC §9: with `strict_control: true`, an iteration that would pass while concurrency
  # escaped control fails as `:uncontrolled` (any other failure is reported as it is).
  defp strict_control(%{kind: :pass, uncontrolled: [{name, _} | _]} = result, true),
    do: %{result | kind: :uncontrolled, proc: name, details: result.uncontrolled}

  defp strict_control(result, _strict?), do: result

  @doc false
  # Waits for the end of the iteration. Returns `{:done, reason}` or `{:stuck, pid}`.
  def await(session, done, timeout) do
    receive do
      {^done, :done, reason} -> {:done, reason}
      {^done, :internal_error, message} -> {:internal_error, message}
    after
      0 -> watch(session, done, timeout, -1, now())
    end
  end

  defp watch(session, done, timeout, last_progress, since) do
    receive do
      {^done, :done, reason} ->
        {:done, reason}

      {^done, :internal_error, message} ->
        {:internal_error, message}
    after
      min(@poll_ms, timeout) ->
        %Session.Progress{progress: progress, running: running} = Session.progress(session)
        t = now()

        cond do
          progress != last_progress -> watch(session, done, timeout, progress, t)
          t - since >= timeout -> {:stuck, running}
          true -> watch(session, done, timeout, progress, since)
        end
    end
  end

  defp now, do: System.monotonic_time(:millisecond)

  @doc false
  # Tears the iteration down and describes how it ended.
  def finish(session, tag, waited, capture?, done) do
    {reason, stuck} =
      case waited do
        {:done, reason} ->
          {reason, nil}

        {:stuck, pid} ->
          Session.abort(session)
          {nil, stuck_details(pid)}

        {:internal_error, message} ->
          Session.abort(session)
          {message, :internal_error}
      end

    # With nothing to report, the processes left parked by a passing iteration end
    # themselves (see `await_released/2`). Its own reference: `done`'s receive marker was
    # used up by the wait for the end, and a receive on it would scan the whole mailbox.
    released_ref = make_ref()

    {outcome, uncontrolled, pids, released} =
      Session.teardown_view(session, stuck == nil and not capture? and released_ref)

    uncontrolled =
      cond do
        released > 0 ->
          if await_released(session, released_ref),
            do: Session.uncontrolled(session),
            else: uncontrolled

        # A stuck process is still running user code: only parked processes are looked at.
        stuck == nil and Lockstep.Uncontrolled.check_left(session, pids, tag) ->
          Session.uncontrolled(session)

        true ->
          uncontrolled
      end

    # The full table (names, nodes, what each waits for) only for a report.
    procs =
      if outcome != :pass or stuck != nil or capture? or uncontrolled != [],
        do: Session.procs(session),
        else: []

    details = describe_waits(outcome, procs, tag)

    {outcome, metrics} =
      Janitor.tear_down(session, tag, for({_, pid, _} <- pids, is_pid(pid), do: pid))

    {kind, proc} =
      if stuck == :internal_error, do: {:internal_error, nil}, else: classify(outcome, stuck)

    # SPEC §12: the iteration's histories, checked once nothing can add to them; a passing
    # iteration whose history cannot be explained fails as :linearizability.
    histories = if metrics.histories, do: Lockstep.History.Store.take(tag), else: []

    {kind, details} =
      case kind do
        :pass when histories != [] ->
          case Lockstep.History.check_all(histories, procs) do
            nil -> {kind, details}
            failure -> {:linearizability, failure}
          end

        _ ->
          {kind, details}
      end

    reason =
      if kind in [:exception, :crash], do: outside_reason(session, proc, reason), else: reason

    result = %{
      kind: kind,
      proc: proc,
      reason: if(kind in [:exception, :crash, :internal_error], do: reason),
      metrics: metrics,
      details: if(is_map(stuck), do: stuck, else: details),
      outcome: outcome,
      schedule: nil,
      trace: nil,
      call_sites: %{},
      proc_labels: %{},
      pid_names: %{},
      proc_nodes: %{},
      uncontrolled: uncontrolled,
      session: session
    }

    # A done message can race a :stuck verdict; never leave it in the owner's mailbox (the
    # NIF sends at most one, so after `{:done, _}` there is nothing to look for).
    with {kind, _} when kind != :done <- waited do
      receive do
        {^done, :done, _} -> :ok
      after
        0 -> :ok
      end
    end

    result =
      if kind != :pass or capture? or uncontrolled != [] do
        %{
          result
          | schedule: Session.schedule(session),
            pid_names: pid_names(procs),
            proc_nodes: proc_nodes(procs)
        }
      else
        result
      end

    if capture?,
      do: %{
        result
        | trace: Session.trace(session),
          call_sites: Session.call_sites(session),
          proc_labels: Session.proc_labels(session)
      },
      else: result
  end

  # The processes still alive at the end of a passing iteration are all parked at a sync
  # point: told to end (`Session.teardown_view/2`), each looks for what escaped the run's
  # control itself, as any managed process does at its end, and exits; the NIF tells the
  # owner when the last is gone, and whether any of them noted something. Cheaper than
  # looking at each from here (`process_info` of another process waits for it to answer)
  # and killing and watching each.
  @release_ms 1_000

  defp await_released(session, released_ref) do
    receive do
      {^released_ref, :released, noted?} -> noted?
    after
      # Never expected: each of them is parked. Kill them, as teardown would have.
      @release_ms -> kill_released(session, released_ref)
    end
  end

  defp kill_released(session, released_ref) do
    pids = for %Session.Proc{pid: pid} <- Session.procs(session), is_pid(pid), do: pid
    Enum.each(pids, &Process.exit(&1, :kill))

    for pid <- pids do
      ref = Process.monitor(pid)

      receive do
        {:DOWN, ^ref, :process, _, _} -> :ok
      end
    end

    receive do
      {^released_ref, :released, _noted?} -> :ok
    after
      100 -> :ok
    end

    true
  end

  # A process killed from outside the run by the real link to an unmanaged process that
  # died of a Lockstep call made outside the run: that error is why it failed.
  defp outside_reason(session, proc, reason) do
    case List.keyfind(Session.outside_crashes(session), proc, 0) do
      {^proc, report} -> report
      nil -> reason
    end
  end

  defp pid_names(procs) do
    for %Session.Proc{name: name, pid: pid} <- procs,
        is_pid(pid),
        into: %{},
        do: {pid, name}
  end

  defp proc_nodes(procs) do
    for %Session.Proc{name: name, node: node} <- procs,
        node != :nonode@nohost,
        into: %{},
        do: {name, node}
  end

  defp classify(:pass, _), do: {:pass, nil}
  defp classify(:max_steps, _), do: {:max_steps, nil}
  defp classify({:exception, name}, _), do: {:exception, name}
  defp classify({:crash, name}, _), do: {:crash, name}
  defp classify({:killed, name, _from, _signal}, _), do: {:crash, name}
  defp classify({:deadlock, _}, _), do: {:deadlock, nil}
  defp classify({:blocked_at_end, _}, _), do: {:deadlock, nil}
  defp classify({:diverged, _divergence}, _), do: {:diverged, nil}
  defp classify({:aborted, name}, _stuck), do: {:stuck, name}
  defp classify(nil, _), do: {:stuck, nil}

  defp stuck_details(nil), do: %{pid: nil, stacktrace: []}

  defp stuck_details(pid) do
    {stacktrace, dictionary} =
      case Process.info(pid, [:current_stacktrace, :dictionary]) do
        [current_stacktrace: st, dictionary: dict] -> {st, dict}
        nil -> {[], []}
      end

    # Picked to wait for the outside (SPEC §9): the process outside the run it sent to.
    awaiting =
      if Keyword.get(dictionary, :"$lockstep_awaiting_outside"),
        do: {:outside, Keyword.get(dictionary, :"$lockstep_sent_outside")}

    %{pid: pid, stacktrace: stacktrace, awaiting: awaiting}
  end

  # Under `crash: :strict`: who sent the exit signal that killed the process, and its reason.
  defp describe_waits({:killed, _name, from, signal}, _procs, _tag),
    do: %{killed_by: from, signal: signal}

  defp describe_waits({:blocked_at_end, names}, procs, tag),
    do: describe_waits({:deadlock, names}, procs, tag)

  defp describe_waits({:deadlock, names}, procs, tag) do
    for %Session.Proc{name: name, pid: pid} <- procs, name in names do
      {waiting, mailbox, unmanaged} = wait_info(pid, tag)
      %{name: name, pid: pid, waiting_for: waiting, mailbox: mailbox, unmanaged: unmanaged}
    end
  end

  defp describe_waits(_, _, _), do: nil

  defp wait_info(nil, _tag), do: {"(not started)", [], []}

  # What a blocked process waits for, what Lockstep delivered to it, and messages that
  # reached it around Lockstep (a plain Kernel.send), which Lockstep.receive never sees.
  defp wait_info(pid, tag) do
    case Process.info(pid, [:dictionary, :messages]) do
      [dictionary: dict, messages: messages] ->
        waiting = Keyword.get(dict, Lockstep.Runtime.waiting_key(), "a message")
        mailbox = for {^tag, :msg, _seq, msg} <- messages, do: msg

        unmanaged =
          Enum.reject(messages, fn
            {^tag, _, _, _} -> true
            {^tag, _, _} -> true
            message -> Lockstep.ETS.transfer_copy?(message)
          end)

        {waiting, mailbox, unmanaged}

      nil ->
        {"(exited)", [], []}
    end
  end
end
