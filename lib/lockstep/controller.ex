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

  alias Lockstep.{Iteration, Janitor, Runtime, Session, SharedState}

  defstruct [:session, :tag, :owner]

  # What start_link/1 accepts: the options of one iteration.
  @options [
    :strategy,
    :bug_depth,
    :seed,
    :max_steps,
    :timeout,
    :delivery,
    :crash,
    :timers,
    :blocked_at_end,
    :instrument,
    :capture
  ]

  @typedoc "A controller: the owner pid from `start_link/1`, or the handle from `Lockstep.controller/0`."
  @type t :: %__MODULE__{session: reference(), tag: integer(), owner: pid() | nil} | pid()

  @doc """
  Starts a controller owning one fresh session. Options: `:strategy` (`:random`, `:pct` or
  `{:pct, bug_depth: d}`), `:bug_depth`, `:seed` (the iteration seed), `:max_steps`,
  `:delivery`, `:crash`, `:timers`, `:blocked_at_end`, `:timeout`, `:instrument` (modules
  whose unmodified code runs under control, instrumented before the controller starts;
  see `Lockstep.Instrument`), and `:capture` (record payloads in the trace; default
  `true`), with the values `Lockstep.run/2` accepts. Any other key (the options of a
  whole search, such as `:iterations` or `:workers`) raises `ArgumentError` naming it.
  Returns `{:ok, pid}`; the pid is the controller handle.
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    # Bad options raise here, in the caller, rather than stopping the owner.
    validate!(opts)
    GenServer.start_link(__MODULE__, opts)
  end

  defp validate!(opts) do
    unless Keyword.keyword?(opts) do
      raise ArgumentError,
            "Lockstep.Controller options must be a keyword list, got: #{inspect(opts)}"
    end

    # A controller drives one iteration: the options of a whole search (`:iterations`,
    # `:workers`, `:name`…) would be ignored, so they are refused by name.
    case Enum.find(opts, fn {key, _} -> key not in @options end) do
      nil ->
        :ok

      {key, value} ->
        raise ArgumentError,
              "unknown option #{inspect(key)} (value #{inspect(value)}); " <>
                "Lockstep.Controller.start_link/1 drives one iteration and accepts " <>
                Enum.map_join(@options, ", ", &inspect/1)
    end

    {capture?, opts} = Keyword.pop(opts, :capture, true)
    {seed, opts} = Keyword.pop(opts, :seed, 0)

    unless is_boolean(capture?) do
      raise ArgumentError,
            "invalid value for option :capture: got #{inspect(capture?)}, expected true or false"
    end

    unless is_integer(seed) and seed >= 0 and seed < 18_446_744_073_709_551_616 do
      raise ArgumentError,
            "invalid value for option :seed: got #{inspect(seed)}, expected a non-negative " <>
              "integer in 0..18446744073709551615 (it must fit in 64 bits; the iteration seed)"
    end

    cfg = Lockstep.Options.validate!(fn -> :ok end, Keyword.put(opts, :iterations, 1))
    # in the caller too, so that an InstrumentError names the module here
    Lockstep.Instrument.instrument!(cfg.instrument)
  end

  @doc "A child spec so a controller can live under a supervisor."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}, restart: :temporary}
  end

  @doc "Starts `fun` as the root process `P` of the controller's iteration; returns its pid."
  @spec spawn_root(t(), Lockstep.body()) :: pid()
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
  @spec request_spawn(t(), pid(), Lockstep.body()) :: pid()
  def request_spawn(ctl, parent, fun) do
    as_managed!(ctl, parent)
    Runtime.spawn(fun, false)
  end

  @doc "Like `request_spawn/3`, linking parent and child."
  @spec request_spawn_link(t(), pid(), Lockstep.body()) :: pid()
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

    Enum.any?(Session.procs(session), &(&1.pid == pid and &1.state != :exited))
  end

  @doc """
  A snapshot of the iteration: `%{step:, now:, outcome:, procs: [%{name:, pid:, node:,
  state:, pending:}]}`. `state` is `:ready`, `:running`, `:blocked` or `:exited`; `pending`
  is the operation a parked process will perform when picked; `now` is virtual time (ms).
  """
  @spec status(t()) :: map()
  def status(ctl) do
    %{session: session} = handle(ctl)
    %Session.Progress{step: step, now: now} = Session.progress(session)

    procs =
      for %Session.Proc{} = p <- Session.procs(session) do
        %{name: p.name, pid: p.pid, node: p.node, state: p.state, pending: p.pending}
      end

    %{step: step, now: now, outcome: Session.outcome(session), procs: procs}
  end

  @doc """
  The iteration's events so far as `{step, event}` (see `Lockstep.Trace` for their
  shapes); payloads are included when the controller captures them.
  """
  @spec trace(t()) :: [{pos_integer(), tuple()}]
  def trace(ctl) do
    %{session: session} = handle(ctl)
    Session.trace(session)
  end

  @doc """
  Waits until the iteration ends and returns `%{kind:, process:, reason:, details:, steps:,
  schedule:, trace:}` with `kind` one of `:pass`, `:exception`, `:crash`, `:deadlock`,
  `:stuck`, `:max_steps`. Every managed process is dead when it returns.
  """
  @spec await_done(t(), timeout()) :: map()
  def await_done(ctl, timeout \\ :infinity), do: call(ctl, :await_done, timeout)

  # Acting as a managed process: links, monitors, signals, time, shared state ------------

  @doc "Monitors `target` on behalf of `pid` (the caller); see `Lockstep.monitor/1`."
  @spec monitor(t(), pid(), pid()) :: reference()
  def monitor(ctl, pid, target), do: as(ctl, pid, fn -> Runtime.monitor(target) end)

  @doc "Turns a monitor of `pid` (the caller) off; see `Lockstep.demonitor/2`."
  @spec demonitor(t(), pid(), reference(), list()) :: true
  def demonitor(ctl, pid, ref, opts \\ []),
    do: as(ctl, pid, fn -> Runtime.demonitor(ref, opts) end)

  @doc "Links `pid` (the caller) and `target`; see `Lockstep.link/1`."
  @spec link(t(), pid(), pid()) :: true
  def link(ctl, pid, target), do: as(ctl, pid, fn -> Runtime.link(target) end)

  @doc "Unlinks `pid` (the caller) and `target`; see `Lockstep.unlink/1`."
  @spec unlink(t(), pid(), pid()) :: true
  def unlink(ctl, pid, target), do: as(ctl, pid, fn -> Runtime.unlink(target) end)

  @doc "Sends an exit signal from `from` (the caller) to `target`; see `Lockstep.exit/2`."
  @spec exit_msg(t(), pid(), pid(), term()) :: true
  def exit_msg(ctl, from, target, reason),
    do: as(ctl, from, fn -> Runtime.exit(target, reason) end)

  @doc "Sets a process flag of `pid` (the caller); only `:trap_exit`. Returns the old value."
  @spec flag(t(), pid(), :trap_exit, boolean()) :: boolean()
  def flag(ctl, pid, flag, value), do: as(ctl, pid, fn -> Runtime.flag(flag, value) end)

  @doc "Starts a virtual-time timer for `from` (the caller); see `Lockstep.send_after/3`."
  @spec send_after(t(), pid(), pid() | atom(), term(), non_neg_integer()) :: reference()
  def send_after(ctl, from, dest, msg, ms),
    do: as(ctl, from, fn -> Runtime.send_after(dest, msg, ms) end)

  @doc "Cancels a timer of `pid` (the caller): ms left or `false`."
  @spec cancel_timer(t(), pid(), reference()) :: non_neg_integer() | false
  def cancel_timer(ctl, pid, ref), do: as(ctl, pid, fn -> Runtime.cancel_timer(ref) end)

  @doc """
  Virtual time in ms. From a managed process of the run it is a sync point
  (`Lockstep.now/0`); from elsewhere it reads the clock.
  """
  @spec now(t()) :: non_neg_integer()
  def now(ctl) do
    %{session: session} = handle(ctl)

    case Runtime.context_or_nil() do
      {^session, _id, _tag} ->
        Runtime.now()

      _ ->
        Session.now(session)
    end
  end

  @doc """
  A generic sync point of `pid` (the caller) before a shared-state operation, recorded as
  `{:nif, name, kind}`; the wrapper performs the real operation after it returns. `kind`
  names the operation and its object, e.g. `{:ets_insert, :hits, key}`.
  """
  @spec nif_sync(t(), pid(), term()) :: :ok
  def nif_sync(ctl, pid, kind),
    do: as(ctl, pid, fn -> SharedState.sync_opaque(kind, kind) end)

  # The simulated cluster ------------------------------------------------------------------

  @doc "Starts (or restarts, fresh) simulated nodes; see `Lockstep.Cluster.start_nodes/1`."
  @spec cluster_register(t(), [node()]) :: [node()]
  def cluster_register(ctl, nodes),
    do: managed(ctl, fn -> Lockstep.Cluster.start_nodes(nodes) end)

  @doc "All nodes, including `:nonode@nohost`."
  @spec cluster_nodes(t()) :: [node()]
  def cluster_nodes(ctl), do: managed(ctl, &Lockstep.Cluster.nodes/0)

  @doc "The nodes that are up, excluding `:nonode@nohost`."
  @spec cluster_nodes_up(t()) :: [node()]
  def cluster_nodes_up(ctl), do: managed(ctl, &Lockstep.Cluster.nodes_up/0)

  @doc "The node of a managed process (also one that has exited)."
  @spec cluster_node_of(t(), pid()) :: node()
  def cluster_node_of(ctl, pid), do: managed(ctl, fn -> Lockstep.Cluster.node_of(pid) end)

  @doc "Partitions two groups of nodes (`:drop` or `:defer`); see `Lockstep.Cluster.partition/3`."
  @spec cluster_partition(t(), [node()], [node()], :drop | :defer) :: :ok
  def cluster_partition(ctl, a, b, mode \\ :drop),
    do: managed(ctl, fn -> Lockstep.Cluster.partition(a, b, mode) end)

  @doc "Heals every partition, delivering deferred messages in send order first."
  @spec cluster_heal(t()) :: :ok
  def cluster_heal(ctl), do: managed(ctl, &Lockstep.Cluster.heal/0)

  @doc "Stops a node; see `Lockstep.Cluster.stop_node/1`."
  @spec cluster_stop_node(t(), node()) :: :ok
  def cluster_stop_node(ctl, node), do: managed(ctl, fn -> Lockstep.Cluster.stop_node(node) end)

  @doc "Brings a node back with fresh state."
  @spec cluster_start_node(t(), node()) :: :ok
  def cluster_start_node(ctl, node),
    do: managed(ctl, fn -> Lockstep.Cluster.start_node(node) end)

  @doc "`pid` (the caller) monitors `node`: `{:nodedown, node}` once it stops or is cut off."
  @spec cluster_monitor_node(t(), pid(), node()) :: true
  def cluster_monitor_node(ctl, pid, node),
    do: as(ctl, pid, fn -> Lockstep.Cluster.monitor_node(node) end)

  @doc "Sets the virtual net_ticktime (ms) for later partitions."
  @spec cluster_set_ticktime(t(), pos_integer()) :: :ok
  def cluster_set_ticktime(ctl, ms), do: managed(ctl, fn -> Lockstep.Cluster.set_ticktime(ms) end)

  @doc """
  Registers `pid` as `name` in `node`'s registry (`node` must be `pid`'s node): `:yes`, or
  `{:already, existing}` when the name is taken on that node (`existing` is its holder) or
  the pid already has another name there (`existing` is that name).
  """
  @spec cluster_register_name(t(), node(), atom(), pid()) :: :yes | {:already, pid() | atom()}
  def cluster_register_name(ctl, node, name, pid) do
    managed(ctl, fn ->
      if Lockstep.Cluster.node_of(pid) != node do
        raise ArgumentError,
              "cluster_register_name: #{inspect(pid)} runs on " <>
                "#{inspect(Lockstep.Cluster.node_of(pid))}, not #{inspect(node)}; a name is " <>
                "registered on the node of its process"
      end

      try do
        Runtime.register(name, pid)
        :yes
      rescue
        ArgumentError ->
          case Runtime.cluster({:whereis, name, node}) do
            nil -> {:already, own_name(node, pid)}
            holder -> {:already, holder}
          end
      end
    end)
  end

  defp own_name(node, pid) do
    Enum.find(Runtime.cluster({:registered, node}), fn name ->
      Runtime.cluster({:whereis, name, node}) == pid
    end)
  end

  @doc "Removes `name` from the caller's node registry (`node` must be the caller's node)."
  @spec cluster_unregister_name(t(), node(), atom()) :: :ok
  def cluster_unregister_name(ctl, node, name) do
    managed(ctl, fn ->
      same_node!(node, "cluster_unregister_name")
      Runtime.unregister(name)
      :ok
    end)
  end

  @doc "The pid registered as `name` on the caller's node, or `nil`."
  @spec cluster_whereis_name(t(), atom()) :: pid() | nil
  def cluster_whereis_name(ctl, name), do: managed(ctl, fn -> Runtime.whereis(name) end)

  @doc "The pid registered as `name` on `node`, or `nil`."
  @spec cluster_whereis_on(t(), node(), atom()) :: pid() | nil
  def cluster_whereis_on(ctl, node, name),
    do: managed(ctl, fn -> Runtime.cluster({:whereis, name, node}) end)

  @doc "The names registered on `node`."
  @spec cluster_registered_names(t(), node()) :: [atom()]
  def cluster_registered_names(ctl, node),
    do: managed(ctl, fn -> Runtime.cluster({:registered, node}) end)

  @doc """
  Registers a named ETS table `tid` as `name` on the caller's node (`node` must be the
  caller's node); `false` if the name is taken there. Not a sync point.
  """
  @spec cluster_ets_register(t(), node(), atom(), :ets.tid()) :: boolean()
  def cluster_ets_register(ctl, node, name, tid) do
    managed(ctl, fn ->
      same_node!(node, "cluster_ets_register")
      Runtime.ets_register(name, tid)
    end)
  end

  @doc "The table registered as `name` on the caller's node, or `nil`. Not a sync point."
  @spec cluster_ets_lookup(t(), node(), atom()) :: :ets.tid() | nil
  def cluster_ets_lookup(ctl, node, name) do
    managed(ctl, fn ->
      same_node!(node, "cluster_ets_lookup")
      Runtime.ets_lookup(name)
    end)
  end

  @doc "Forgets the table name on the caller's node. Not a sync point."
  @spec cluster_ets_unregister(t(), node(), atom()) :: boolean()
  def cluster_ets_unregister(ctl, node, name) do
    managed(ctl, fn ->
      same_node!(node, "cluster_ets_unregister")
      Runtime.ets_unregister(name)
    end)
  end

  @doc "Registers a global name; see `Lockstep.Global.register_name/2`."
  @spec global_register_name(t(), term(), pid()) :: :yes | :no
  def global_register_name(ctl, name, pid),
    do: managed(ctl, fn -> Lockstep.Global.register_name(name, pid) end)

  @doc "Removes a global name."
  @spec global_unregister_name(t(), term()) :: :ok
  def global_unregister_name(ctl, name),
    do: managed(ctl, fn -> Lockstep.Global.unregister_name(name) end)

  @doc "The pid of a global name, or `:undefined`."
  @spec global_whereis_name(t(), term()) :: pid() | :undefined
  def global_whereis_name(ctl, name),
    do: managed(ctl, fn -> Lockstep.Global.whereis_name(name) end)

  @doc "All global names."
  @spec global_registered_names(t()) :: [term()]
  def global_registered_names(ctl), do: managed(ctl, &Lockstep.Global.registered_names/0)

  defp same_node!(node, what) do
    if node != Runtime.node() do
      raise ArgumentError,
            "#{what}: #{inspect(node)} is not the caller's node #{inspect(Runtime.node())}; " <>
              "call it from a process on that node"
    end
  end

  defp as(ctl, pid, fun) do
    as_managed!(ctl, pid)
    fun.()
  end

  defp managed(ctl, fun), do: as(ctl, self(), fun)

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
    {session, _id, _tag} = Runtime.context("Lockstep.Controller")

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
    cell = Session.strategy(Lockstep.Runner.strategy_spec(cfg))
    done = make_ref()
    {session, tag} = Iteration.new_session(cell, iter_seed, cfg, capture?, done)
    # trace/1 answers at any time, with payloads or (`capture: false`) without
    Session.keep_trace(session)
    # Killed without terminate/2 (a :kill, or its linked caller dying), the controller
    # leaves the janitor to tear the iteration down.
    janitor = Janitor.start(self())
    Janitor.watch(janitor, session, tag)

    {:ok,
     %{
       cfg: cfg,
       janitor: janitor,
       session: session,
       tag: tag,
       done_ref: done,
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
    waited = state.done || Iteration.await(state.session, state.done_ref, state.cfg.timeout)
    r = Iteration.finish(state.session, state.tag, waited, state.capture?, state.done_ref)

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
  def handle_info({ref, :done, reason}, %{done_ref: ref} = state) do
    {:noreply, %{state | done: {:done, reason}}}
  end

  def handle_info({ref, :internal_error, message}, %{done_ref: ref} = state) do
    {:noreply, %{state | done: {:internal_error, message}}}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, %{result: nil, session: session, tag: tag, janitor: janitor}) do
    Session.abort(session)
    Janitor.tear_down(session, tag)
    Lockstep.History.Store.drop(tag)
    Janitor.stop(janitor)
    :ok
  end

  def terminate(_reason, %{janitor: janitor}), do: Janitor.stop(janitor)
end
