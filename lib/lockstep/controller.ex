defmodule Lockstep.Controller do
  @moduledoc """
  The controller API: one controlled iteration, driven by hand.

  `Lockstep.run/2` is built from the same pieces and is what tests normally use. The
  controller is for tools and for tests of Lockstep itself: start a controller (it owns one
  session of the Rust scheduler), start a root process, let managed processes make their
  sync points through it, then wait for the iteration to end and inspect its status and
  trace.

      {:ok, ctl} = Lockstep.Controller.start_link(strategy: :random, seed: 7)
      root = Lockstep.Controller.spawn_root(ctl, fn -> ... end)
      %{kind: :pass} = Lockstep.Controller.await_done(ctl)
      Lockstep.Controller.trace(ctl)

  Invariant: at most one managed process runs between sync points. A freshly spawned
  child is unmanaged until its first `hello/2`, which Lockstep's spawn performs for it as
  the first thing the child does when the strategy first picks it.

  Sync points are not routed through the controller process: a managed process calls the
  scheduler NIF directly and parks in a plain `receive` while others run. The controller
  process only sets up, answers `status/1`, `trace/1` and `await_done/2`, and tears the
  iteration down. The functions that act *as* a managed process (`request_spawn/3`,
  `send_msg/4`, `recv_msg/2`, `recv_match/3`) must be called by that process itself.

  `docs/controller-api.md` restates each function's contract.
  """

  use GenServer

  alias Lockstep.{Iteration, Native, Runtime}

  defstruct [:session, :tag, :owner]

  @typedoc "A controller: the owner pid from `start_link/1`, or the handle from `Lockstep.controller/0`."
  @type t :: %__MODULE__{session: reference(), tag: integer(), owner: pid() | nil} | pid()

  @doc """
  Starts a controller owning one fresh session. Options: `:strategy` (`:random`, `:pct` or
  `{:pct, bug_depth: d}`), `:seed` (the iteration seed), `:max_steps`, `:delivery`,
  `:crash`, `:timeout`, and `:capture` (record payloads in the trace; default `true`).
  Returns `{:ok, pid}`; the pid is the controller handle.
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []), do: GenServer.start_link(__MODULE__, opts)

  @doc "A child spec so a controller can live under a supervisor."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}, restart: :temporary}
  end

  @doc "Starts `fun` as the root process `P` of the controller's iteration; returns its pid."
  @spec spawn_root(t(), (-> any())) :: pid()
  def spawn_root(ctl, fun) when is_function(fun, 0), do: call(ctl, {:spawn_root, fun})

  def spawn_root(_ctl, fun),
    do: raise(ArgumentError, "spawn_root expects a zero-arity function, got: #{inspect(fun)}")

  @doc """
  Confirms that `pid` (the caller) is a started managed process of this controller's run.
  Lockstep's spawn says hello on the child's behalf when the child is first scheduled;
  returns `:ok`, or raises `Lockstep.NotManagedError` for a process outside the run.
  """
  @spec hello(t(), pid()) :: :ok
  def hello(ctl, pid) do
    as_managed!(ctl, pid)
    :ok
  end

  @doc "Spawns a managed child of `parent` (the caller); a sync point. Returns the child's pid."
  @spec request_spawn(t(), pid(), (-> any())) :: pid()
  def request_spawn(ctl, parent, fun) do
    as_managed!(ctl, parent)
    Runtime.spawn(fun, false)
  end

  @doc "Like `request_spawn/3`, linking parent and child."
  @spec request_spawn_link(t(), pid(), (-> any())) :: pid()
  def request_spawn_link(ctl, parent, fun) do
    as_managed!(ctl, parent)
    Runtime.spawn(fun, true)
  end

  @doc "Sends `msg` from `from` (the caller) to `to`; a sync point. Returns `msg`."
  @spec send_msg(t(), pid(), pid(), term()) :: term()
  def send_msg(ctl, from, to, msg) do
    as_managed!(ctl, from)
    Runtime.send(to, msg)
  end

  @doc "Receives the next message of `pid` (the caller), first in first out; a sync point."
  @spec recv_msg(t(), pid()) :: term()
  def recv_msg(ctl, pid) do
    as_managed!(ctl, pid)
    Runtime.recv()
  end

  @doc "Receives the first message of `pid` (the caller) for which `pred` is truthy."
  @spec recv_match(t(), pid(), (term() -> as_boolean(term()))) :: term()
  def recv_match(ctl, pid, pred) do
    as_managed!(ctl, pid)
    Runtime.recv_first(pred)
  end

  @doc """
  Whether `pid` is a managed process of this run that has not exited. Not a sync point
  (`Lockstep.alive?/1`, the runtime mirror of `Process.alive?/1`, is).
  """
  @spec alive?(t(), pid()) :: boolean()
  def alive?(ctl, pid) do
    %{session: session} = handle(ctl)

    Enum.any?(Native.procs(session), fn {_id, _name, p, state, _pending, _node} ->
      p == pid and state != :exited
    end)
  end

  @doc """
  A snapshot of the iteration: `%{step:, now:, outcome:, procs: [%{name:, pid:, node:,
  state:, pending:}]}`. `state` is `:ready`, `:running`, `:blocked` or `:exited`; `pending`
  is the operation a parked process will perform when picked; `now` is virtual time (ms).
  """
  @spec status(t()) :: map()
  def status(ctl) do
    %{session: session} = handle(ctl)
    {_progress, step, _running, now} = Native.progress(session)

    procs =
      for {_id, name, pid, state, pending, node} <- Native.procs(session) do
        %{name: name, pid: pid, node: node, state: state, pending: pending}
      end

    %{step: step, now: now, outcome: Native.outcome(session), procs: procs}
  end

  @doc """
  The iteration's events so far as `{step, event}` (see `Lockstep.BugFound` for their
  shapes); payloads are included when the controller captures them.
  """
  @spec trace(t()) :: [{pos_integer(), tuple()}]
  def trace(ctl) do
    %{session: session} = handle(ctl)
    Native.trace(session)
  end

  @doc """
  Waits until the iteration ends and returns `%{kind:, process:, reason:, details:, steps:,
  schedule:, trace:}` with `kind` one of `:pass`, `:exception`, `:crash`, `:deadlock`,
  `:stuck`, `:max_steps`. Every managed process is dead when it returns.
  """
  @spec await_done(t(), timeout()) :: map()
  def await_done(ctl, timeout \\ :infinity), do: call(ctl, :await_done, timeout)

  # Handles ---------------------------------------------------------------------------------

  defp handle(%__MODULE__{} = ctl), do: ctl
  defp handle(pid) when is_pid(pid), do: GenServer.call(pid, :handle)

  defp call(ctl, msg, timeout \\ :infinity)

  defp call(%__MODULE__{owner: owner}, msg, timeout) when is_pid(owner),
    do: GenServer.call(owner, msg, timeout)

  defp call(pid, msg, timeout) when is_pid(pid), do: GenServer.call(pid, msg, timeout)

  defp call(%__MODULE__{}, _msg, _timeout) do
    raise ArgumentError,
          "this controller handle comes from Lockstep.controller/0 inside Lockstep.run/2, " <>
            "whose iteration is owned by the run itself; spawn_root and await_done only work " <>
            "on a controller started with Lockstep.Controller.start_link/1"
  end

  defp as_managed!(ctl, pid) do
    {session, _id, _tag} = Runtime.context()

    if pid != self() do
      raise ArgumentError,
            "#{inspect(pid)} is not the calling process #{inspect(self())}: a managed process " <>
              "makes its own sync points"
    end

    case ctl do
      %__MODULE__{session: ^session} -> :ok
      %__MODULE__{} -> raise ArgumentError, "the controller handle belongs to another run"
      pid when is_pid(pid) -> :ok
    end
  end

  # The owner process -----------------------------------------------------------------------

  @impl true
  def init(opts) do
    {capture?, opts} = Keyword.pop(opts, :capture, true)
    {iter_seed, opts} = Keyword.pop(opts, :seed, 0)
    cfg = Lockstep.Options.validate!(fn -> :ok end, Keyword.put(opts, :iterations, 1))
    cell = Native.strategy_new(Lockstep.Runner.strategy_spec(cfg))
    {session, tag} = Iteration.new_session(cell, iter_seed, cfg, capture?)

    {:ok,
     %{
       cfg: cfg,
       session: session,
       tag: tag,
       capture?: capture?,
       root: nil,
       done: nil,
       result: nil,
       waiting: []
     }}
  rescue
    e in ArgumentError -> {:stop, e}
  end

  @impl true
  def handle_call(:handle, _from, state) do
    {:reply, %__MODULE__{session: state.session, tag: state.tag, owner: self()}, state}
  end

  def handle_call({:spawn_root, _fun}, _from, %{root: root} = state) when root != nil do
    {:reply, {:error, :already_started}, state}
  end

  def handle_call({:spawn_root, fun}, _from, state) do
    root = Iteration.start_root(state.session, state.tag, fun)
    {:reply, root, %{state | root: root}}
  end

  def handle_call(:await_done, _from, %{result: result} = state) when result != nil do
    {:reply, result, state}
  end

  def handle_call(:await_done, _from, %{root: nil} = state) do
    {:reply, {:error, :not_started}, state}
  end

  def handle_call(:await_done, _from, state) do
    waited = state.done || Iteration.await(state.session, state.tag, state.cfg.timeout)
    r = Iteration.finish(state.session, state.tag, waited, state.capture?)

    result = %{
      kind: r.kind,
      process: r.proc,
      reason: r.reason,
      details: r.details,
      steps: r.metrics.steps,
      schedule: r.schedule,
      trace: r.trace
    }

    {:reply, result, %{state | result: result}}
  end

  @impl true
  def handle_info({tag, :done, reason}, %{tag: tag} = state) do
    {:noreply, %{state | done: {:done, reason}}}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, %{result: nil, session: session}) do
    Native.session_abort(session)
    Iteration.kill_all(Native.procs(session))
    Native.session_finish(session)
    :ok
  end

  def terminate(_reason, _state), do: :ok
end
