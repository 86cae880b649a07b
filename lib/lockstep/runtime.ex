defmodule Lockstep.Runtime do
  @moduledoc false
  # The managed-process side of the hot path. A managed process keeps its run context
  # `{session, id, tag}` in its process dictionary. Each sync point is one NIF call that
  # returns the operation's result when the caller may go on, or `:wait`, after which the
  # caller parks here until the NIF (called by whichever process runs next) sends it
  # `{tag, :go, result}`.

  alias Lockstep.Native

  @key :"$lockstep"
  @waiting :"$lockstep_waiting"
  @nomatch :"$lockstep_nomatch"

  def context do
    case Process.get(@key) do
      nil -> raise Lockstep.NotManagedError, function: caller_name()
      ctx -> ctx
    end
  end

  @doc false
  def context(function) do
    case Process.get(@key) do
      nil -> raise Lockstep.NotManagedError, function: function
      ctx -> ctx
    end
  end

  def context_or_nil, do: Process.get(@key)

  # The Lockstep function the user called: public functions delegate (often as tail
  # calls, so their own frame is gone) to the function of the same name here.
  defp caller_name do
    case Process.info(self(), :current_stacktrace) do
      {:current_stacktrace, frames} ->
        Enum.find_value(frames, "a Lockstep function", fn
          {__MODULE__, fun, _arity, _} when fun not in [:context, :caller_name] ->
            "Lockstep.#{fun}"

          _ ->
            nil
        end)

      _ ->
        "a Lockstep function"
    end
  end

  @compile {:inline, resume: 2}
  defp resume(:wait, tag), do: park(tag)
  defp resume(result, _tag), do: result

  @doc false
  def park(tag) do
    receive do
      {^tag, :go, result} ->
        result

      {^tag, :exit, _reason} ->
        # The engine already recorded this process as killed by an exit signal (or the run
        # was torn down): die at once, without running any more user code.
        Process.exit(self(), :kill)

      {:EXIT, _from, reason} ->
        external_signal(reason)
        park(tag)
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
    {session, id, _tag} = Process.get(@key)
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
  defp take_external_signal do
    case pending_external_signal() do
      nil -> :ok
      reason -> external_signal(reason)
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

  @doc false
  def root_entry(session, tag, fun), do: entry(session, 0, tag, fun)

  @doc false
  def child_entry(session, id, tag, fun), do: entry(session, id, tag, fun)

  defp entry(session, id, tag, fun) do
    Process.flag(:trap_exit, true)
    Process.put(@key, {session, id, tag})
    await_start(session, id, tag, fun)
  end

  defp await_start(session, id, tag, fun) do
    receive do
      {^tag, :go, :start} ->
        run_body(session, id, fun)

      {^tag, :exit, _} ->
        :ok

      {:EXIT, _from, reason} ->
        external_signal(reason)
        await_start(session, id, tag, fun)
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
  defp finish(session, id, class, report, reason) do
    case pending_external_signal() do
      nil -> Native.exit(session, id, class, report, reason)
      signal -> external_signal(signal)
    end
  end

  defp normal_exit?(:normal), do: true
  defp normal_exit?(:shutdown), do: true
  defp normal_exit?({:shutdown, _}), do: true
  defp normal_exit?(_), do: false

  # Operations ----------------------------------------------------------------------------

  def spawn(fun, link?, node \\ nil)

  def spawn(fun, link?, node) when is_function(fun, 0) do
    {session, id, tag} = context()

    child =
      case resume(Native.sync_spawn(session, id, link?, node), tag) do
        :badnode -> raise ArgumentError, bad_node(node)
        child -> child
      end

    pid = :erlang.spawn(__MODULE__, :child_entry, [session, child, tag, fun])
    Native.register_child(session, id, child, pid)
    pid
  end

  def spawn(other, _link?, _node) do
    raise ArgumentError,
          "Lockstep.spawn expects a zero-arity function, got: #{inspect(other)}"
  end

  def send(dest, msg) when is_pid(dest) or is_atom(dest) or is_tuple(dest) do
    send_to(dest, msg)
    msg
  end

  def send(dest, _msg), do: raise(ArgumentError, bad_destination(dest))

  @doc false
  # Sends and returns the managed pid the message went to (nil: outside the run, or lost).
  def send_to(dest, msg) do
    {session, id, tag} = context()

    case resume(Native.sync_send(session, id, dest, msg), tag) do
      {:deliver, seq, pid} ->
        :erlang.send(pid, {tag, :msg, seq, msg})
        pid

      {:hold, seq, pid} ->
        Native.hold(session, id, seq, msg)
        pid

      :external ->
        :erlang.send(dest, msg)
        nil

      :drop ->
        nil

      :unregistered ->
        raise ArgumentError, unregistered_message(dest)

      :badarg ->
        raise ArgumentError, bad_destination(dest)
    end
  end

  defp bad_destination(dest) do
    "Lockstep.send/2 expects a pid, a registered name or {name, node}, got: #{inspect(dest)}"
  end

  defp unregistered_message(dest) do
    "Lockstep.send/2: no process is registered as #{inspect(dest)} (like Kernel.send/2, " <>
      "sending to an unregistered name raises). Register the name before sending, or " <>
      "send to a pid."
  end

  def yield do
    {session, id, tag} = context()
    resume(Native.yield(session, id), tag)
  end

  def random(n) when is_integer(n) and n > 0 do
    {session, id, tag} = context()
    resume(Native.sync_random(session, id, n), tag)
  end

  def random(n) do
    raise ArgumentError, "Lockstep.random/1 expects a positive integer, got: #{inspect(n)}"
  end

  @doc false
  # Drives a receive: announce it (a sync point), and each time this process is picked try
  # `matcher` against the real mailbox. A miss tells the engine to block this process until
  # a new message reaches it. `matcher` returns `{seq, continuation}` or `@nomatch`.
  # The pieces `Lockstep.receive` expands to. The description stays in the process
  # dictionary for deadlock reports; a later receive overwrites it.
  def receive_context(description) do
    ctx = context("Lockstep.receive")
    Process.put(@waiting, description)
    ctx
  end

  def receive_start({session, id, tag}, timeout) do
    take_external_signal()
    resume(Native.sync_receive(session, id, false, timeout(timeout)), tag)
  end

  def receive_retry({session, id, tag}) do
    take_external_signal()
    resume(Native.sync_receive(session, id, true, nil), tag)
  end

  def consumed({session, id, _tag}, seq), do: Native.consumed(session, id, seq)

  def receive_loop(description, matcher, timeout \\ nil, on_timeout \\ nil) do
    {session, id, tag} = context("Lockstep.receive")
    Process.put(@waiting, description)
    attempt(session, id, tag, matcher, false, timeout(timeout), on_timeout)
  end

  defp timeout(nil), do: nil
  defp timeout(:infinity), do: nil
  defp timeout(ms) when is_integer(ms) and ms >= 0, do: ms

  defp timeout(other) do
    raise ArgumentError,
          "Lockstep.receive `after` expects a non-negative integer (virtual ms) or " <>
            ":infinity, got: #{inspect(other)}"
  end

  defp attempt(session, id, tag, matcher, retry?, timeout, on_timeout) do
    take_external_signal()
    result = resume(Native.sync_receive(session, id, retry?, timeout), tag)

    case matcher.(tag) do
      @nomatch when result == :attempt_last ->
        Process.delete(@waiting)
        on_timeout.()

      @nomatch ->
        attempt(session, id, tag, matcher, true, timeout, on_timeout)

      {seq, continuation} ->
        Native.consumed(session, id, seq)
        Process.delete(@waiting)
        continuation.()
    end
  end

  # Links, monitors, exit signals ----------------------------------------------------------

  def link(pid), do: link_op(pid, true, "link/1")
  def unlink(pid), do: link_op(pid, false, "unlink/1")

  defp link_op(pid, on?, what) when is_pid(pid) do
    {session, id, tag} = context()

    case resume(Native.sync_link(session, id, pid, on?), tag) do
      :ok -> true
      # OTP 25: linking to a process that no longer exists raises in a non-trapping caller.
      :noproc -> :erlang.error(:noproc)
      :unmanaged -> raise ArgumentError, unmanaged(what, pid)
    end
  end

  defp link_op(other, _on?, what),
    do: raise(ArgumentError, "Lockstep.#{what} expects a pid, got: #{inspect(other)}")

  defp unmanaged(what, pid) do
    "Lockstep.#{what}: #{inspect(pid)} is not a process of this run. Links, monitors and " <>
      "exit signals are simulated between managed processes only (spawn it with " <>
      "Lockstep.spawn/1)."
  end

  def monitor(pid) when is_pid(pid) do
    {session, id, tag} = context()
    ref = make_ref()

    case resume(Native.sync_monitor(session, id, pid, ref), tag) do
      :ok -> ref
      :unmanaged -> raise ArgumentError, unmanaged("monitor/1", pid)
    end
  end

  def monitor(other),
    do: raise(ArgumentError, "Lockstep.monitor/1 expects a pid, got: #{inspect(other)}")

  def demonitor(ref, opts) when is_reference(ref) and is_list(opts) do
    {session, id, tag} = context()
    resume(Native.sync_demonitor(session, id, ref), tag)

    if :flush in opts do
      flush_down(session, id, tag, ref)
    end

    true
  end

  def demonitor(ref, opts) do
    raise ArgumentError,
          "Lockstep.demonitor/2 expects a monitor reference and a list of options, got: " <>
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
    {session, id, tag} = context()

    case resume(Native.sync_exit_signal(session, id, pid, reason), tag) do
      :ok -> true
      :unmanaged -> raise ArgumentError, unmanaged("exit/2", pid)
    end
  end

  def exit(other, _reason),
    do: raise(ArgumentError, "Lockstep.exit/2 expects a pid, got: #{inspect(other)}")

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
    {session, id, tag} = context()

    case resume(Native.sync_name(session, id, {:register, name, pid}), tag) do
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

  def unregister(name) when is_atom(name) do
    {session, id, tag} = context()

    if resume(Native.sync_name(session, id, {:unregister, name}), tag) do
      true
    else
      raise ArgumentError, "Lockstep.unregister/1: #{inspect(name)} is not registered"
    end
  end

  def whereis(name) when is_atom(name) do
    {session, id, tag} = context()
    resume(Native.sync_name(session, id, {:whereis, name}), tag)
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
    n = Process.get(:"$lockstep_alias_count", 0) + 1
    Process.put(:"$lockstep_alias_count", n)
    Native.alias(session, id, n, true)
    {:"$lockstep_alias", self(), n}
  end

  @doc false
  def unalias({:"$lockstep_alias", pid, n}) when pid == self() do
    {session, id, _tag} = context()
    Native.alias(session, id, n, false)
    true
  end

  # Virtual time --------------------------------------------------------------------------

  def now do
    {session, id, tag} = context()
    resume(Native.sync_time(session, id, :now), tag)
  end

  def sleep(ms) when is_integer(ms) and ms >= 0 do
    {session, id, tag} = context()
    resume(Native.sync_time(session, id, {:sleep, ms}), tag)
    :ok
  end

  def sleep(other) do
    raise ArgumentError,
          "Lockstep.sleep/1 expects a non-negative integer (virtual ms), got: #{inspect(other)}"
  end

  def send_after(dest, msg, ms)
      when (is_pid(dest) or is_atom(dest)) and is_integer(ms) and ms >= 0 do
    {session, id, tag} = context()
    ref = make_ref()

    case resume(Native.sync_send_after(session, id, dest, msg, ms, ref), tag) do
      :ok -> ref
      :badarg -> raise ArgumentError, bad_destination(dest)
    end
  end

  def send_after(dest, _msg, ms) do
    raise ArgumentError,
          "Lockstep.send_after/3 expects a pid or a name and a non-negative integer (virtual " <>
            "ms), got: #{inspect(dest)}, #{inspect(ms)}"
  end

  def cancel_timer(ref) when is_reference(ref) do
    {session, id, tag} = context()
    resume(Native.sync_cancel_timer(session, id, ref), tag)
  end

  def cancel_timer(other),
    do:
      raise(
        ArgumentError,
        "Lockstep.cancel_timer/1 expects a timer reference, got: #{inspect(other)}"
      )

  # Cluster -------------------------------------------------------------------------------

  def node do
    {session, id, _tag} = context()
    Native.node_name(session, id)
  end

  @doc false
  def cluster(op) do
    {session, id, tag} = context()

    case resume(Native.sync_cluster(session, id, op), tag) do
      :badnode -> raise ArgumentError, bad_node(op)
      :unmanaged -> raise ArgumentError, unmanaged("Cluster", elem(op, 1))
      :badarg -> raise ArgumentError, "invalid cluster operation: #{inspect(op)}"
      result -> result
    end
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
    context("Lockstep.recv_first/1")

    receive_loop("Lockstep.recv_first(#{inspect(pred)})", fn tag ->
      {:messages, messages} = Process.info(self(), :messages)

      found =
        Enum.find_value(messages, fn
          {^tag, :msg, seq, msg} -> if pred.(msg), do: seq
          _ -> nil
        end)

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
