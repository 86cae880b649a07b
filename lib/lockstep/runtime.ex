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

  def context_or_nil, do: Process.get(@key)

  defp caller_name do
    case Process.info(self(), :current_stacktrace) do
      {:current_stacktrace, [_info, _ctx, _caller, {mod, fun, arity, _} | _]} ->
        Exception.format_mfa(mod, fun, arity)

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
    end
  end

  # Entry points -------------------------------------------------------------------------

  @doc false
  def root_entry(session, tag, fun) do
    receive do
      {^tag, :go, :start} -> run_body(session, 0, tag, fun)
      {^tag, :exit, _} -> :ok
    end
  end

  @doc false
  def child_entry(session, id, tag, fun) do
    receive do
      {^tag, :go, :start} -> run_body(session, id, tag, fun)
      {^tag, :exit, _} -> :ok
    end
  end

  defp run_body(session, id, tag, fun) do
    Process.put(@key, {session, id, tag})

    try do
      fun.()
    catch
      :exit, reason ->
        class = if normal_exit?(reason), do: :normal, else: :abnormal
        Native.exit(session, id, class, {:exit, reason, __STACKTRACE__})

      :error, reason ->
        exception = Exception.normalize(:error, reason, __STACKTRACE__)
        Native.exit(session, id, :abnormal, {:error, exception, __STACKTRACE__})

      :throw, value ->
        Native.exit(session, id, :abnormal, {:throw, value, __STACKTRACE__})
    else
      _ -> Native.exit(session, id, :normal, :normal)
    end
  end

  defp normal_exit?(:normal), do: true
  defp normal_exit?(:shutdown), do: true
  defp normal_exit?({:shutdown, _}), do: true
  defp normal_exit?(_), do: false

  # Operations ----------------------------------------------------------------------------

  def spawn(fun, link?) when is_function(fun, 0) do
    {session, id, tag} = context()
    child = resume(Native.sync_spawn(session, id, link?), tag)
    pid = :erlang.spawn(__MODULE__, :child_entry, [session, child, tag, fun])
    Native.register_child(session, id, child, pid)
    pid
  end

  def spawn(other, _link?) do
    raise ArgumentError,
          "Lockstep.spawn expects a zero-arity function, got: #{inspect(other)}"
  end

  def send(dest, msg) when is_pid(dest) do
    {session, id, tag} = context()

    case resume(Native.sync_send(session, id, dest, msg), tag) do
      {:deliver, seq} -> :erlang.send(dest, {tag, :msg, seq, msg})
      {:hold, seq} -> Native.hold(session, id, seq, msg)
      :external -> :erlang.send(dest, msg)
      :drop -> :ok
    end

    msg
  end

  def send(dest, _msg) when is_atom(dest) or is_tuple(dest) do
    _ = context()

    raise ArgumentError,
          "Lockstep.send/2 to a registered name (#{inspect(dest)}) is not supported yet: " <>
            "registered names arrive with the process-semantics work. Send to a pid for now."
  end

  def send(dest, _msg) do
    raise ArgumentError,
          "Lockstep.send/2 expects a pid, a registered name or {name, node}, got: #{inspect(dest)}"
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
  def receive_loop(description, matcher) do
    {session, id, tag} = context()
    Process.put(@waiting, description)
    attempt(session, id, tag, matcher, false)
  end

  defp attempt(session, id, tag, matcher, retry?) do
    resume(Native.sync_receive(session, id, retry?), tag)

    case matcher.(tag) do
      @nomatch ->
        attempt(session, id, tag, matcher, true)

      {seq, continuation} ->
        Native.consumed(session, id, seq)
        Process.delete(@waiting)
        continuation.()
    end
  end

  def recv do
    receive_loop("Lockstep.recv()", fn tag ->
      receive do
        {^tag, :msg, seq, msg} -> {seq, fn -> msg end}
      after
        0 -> @nomatch
      end
    end)
  end

  def recv_first(pred) when is_function(pred, 1) do
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
