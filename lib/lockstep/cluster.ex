defmodule Lockstep.Cluster do
  @moduledoc """
  A simulated cluster: many notional nodes in one BEAM, with partitions and node failures
  the strategy can interleave with everything else.

  Every managed process belongs to a node — `:nonode@nohost` (where the root runs) unless
  it was spawned with `Lockstep.Cluster.spawn/2` or `Lockstep.spawn(fun, node: n)`.
  Messages between different nodes are always in flight until the strategy delivers them
  (order is kept per sender→receiver pair), so cross-node reorderings are explored.

      Lockstep.run(fn ->
        [:a, :b] = Lockstep.Cluster.start_nodes([:a, :b])
        primary = Lockstep.Cluster.spawn(:a, fn -> ... end)
        standby = Lockstep.Cluster.spawn(:b, fn -> ... end)
        Lockstep.Cluster.partition([:a], [:b])      # cross-cut messages are lost
        Lockstep.sleep(20_000)                       # past net_ticktime: :noconnection
        Lockstep.Cluster.heal()
      end)

  While a partition is active, messages and exit signals crossing it are dropped (`:drop`)
  or queued (`:defer`, delivered in send order when `heal/0` runs). Once the virtual
  `net_ticktime` (`set_ticktime/1`, default 15 000 ms) has passed, monitors across the cut
  get `{:DOWN, ref, :process, pid, :noconnection}`, links across it deliver `:noconnection`
  exit signals, and node monitors get `{:nodedown, node}`.

  Names (`Lockstep.register/2`), ETS table names and persistent_term keys are per node;
  `Lockstep.Global` is the cluster-wide registry. Every function here is a sync point and
  must be called from a managed process.
  """

  alias Lockstep.Runtime

  @home :nonode@nohost

  @doc "Starts simulated nodes (or restarts stopped ones, with fresh state); returns them."
  @spec start_nodes([node()]) :: [node()]
  def start_nodes(nodes) when is_list(nodes) do
    Enum.each(nodes, &check_name!/1)
    Enum.each(nodes, &Runtime.cluster({:start_node, &1}))
    nodes
  end

  def start_nodes(other),
    do:
      raise(
        ArgumentError,
        "Lockstep.Cluster.start_nodes/1 expects a list of node atoms, got: #{inspect(other)}"
      )

  @doc "Brings a stopped node back with fresh state (no names, no tables). Returns `:ok`."
  @spec start_node(node()) :: :ok
  def start_node(node) do
    check_name!(node)
    Runtime.cluster({:start_node, node})
  end

  @doc """
  Stops a node: kills its processes, fires `{:nodedown, node}` to node monitors and
  `:noconnection` to remote monitors and links, forgets its names, ETS table names and
  persistent terms, and marks it down. Returns `:ok`.
  """
  @spec stop_node(node()) :: :ok
  def stop_node(@home),
    do:
      raise(
        ArgumentError,
        "Lockstep.Cluster.stop_node/1: the home node :nonode@nohost (where the root runs) cannot be stopped"
      )

  def stop_node(node) do
    check_name!(node)
    :ok = Runtime.cluster({:stop_node, node})
    # A node's persistent terms die with it: start_node/1 brings it back fresh.
    {_session, _id, run} = Runtime.context()
    Lockstep.SharedState.erase_node_keys(run, node)
    :ok
  end

  @doc "Spawns a managed process on `node`; returns its pid."
  @spec spawn(node(), Lockstep.body()) :: pid()
  def spawn(node, fun) do
    check_name!(node)
    Runtime.spawn(fun, false, node)
  end

  @doc """
  Partitions `group_a` from `group_b` (lists of nodes). `mode` is `:drop` (cross-cut
  messages are lost) or `:defer` (delivered in send order on `heal/0`). Several
  partitions may be active at once. Returns `:ok`. A node in both groups raises
  `ArgumentError`.
  """
  @spec partition([node()], [node()], :drop | :defer) :: :ok
  def partition(group_a, group_b, mode \\ :drop)

  def partition(a, b, mode) when is_list(a) and is_list(b) and mode in [:drop, :defer] do
    Enum.each(a ++ b, &check_name!/1)

    # A node on both sides would be cut off from itself: no partition means that.
    case Enum.filter(Enum.uniq(a), &(&1 in b)) do
      [] ->
        Runtime.cluster({:partition, a, b, mode})

      both ->
        raise ArgumentError,
              "Lockstep.Cluster.partition/3: #{inspect(both)} in both groups, got: " <>
                "#{inspect(a)}, #{inspect(b)}; a node can be on one side of a partition only"
    end
  end

  def partition(a, b, mode) do
    raise ArgumentError,
          "Lockstep.Cluster.partition/3 expects two lists of nodes and :drop or :defer, got: " <>
            "#{inspect(a)}, #{inspect(b)}, #{inspect(mode)}"
  end

  @doc "Heals every partition; deferred messages are delivered, in send order, before it returns."
  @spec heal() :: :ok
  def heal, do: Runtime.cluster(:heal)

  @doc "All nodes of the run, including `:nonode@nohost`."
  @spec nodes() :: [node()]
  def nodes, do: Runtime.cluster(:nodes)

  @doc "The nodes that are up, excluding `:nonode@nohost`."
  @spec nodes_up() :: [node()]
  def nodes_up, do: Runtime.cluster(:nodes_up)

  @doc "The node of a managed process — also of one that has exited, like `Kernel.node/1`."
  @spec node_of(pid()) :: node()
  def node_of(pid) when is_pid(pid), do: Runtime.cluster({:node_of, pid})

  # Kernel.node/1 raises ArgumentError for anything but a pid, port or reference.
  def node_of(other) do
    raise ArgumentError, "Lockstep.Cluster.node_of/1 expects a pid, got: #{inspect(other)}"
  end

  @doc """
  Monitors a node: the caller gets `{:nodedown, node}` once when it stops or is cut off
  (after the tick time); at once if it is down already. Returns `true`.
  """
  @spec monitor_node(node()) :: true
  def monitor_node(node) do
    check_name!(node)
    Runtime.cluster({:monitor_node, node})
    true
  end

  @doc "Sets the virtual `net_ticktime` in ms for partitions made afterwards. Returns `:ok`."
  @spec set_ticktime(pos_integer()) :: :ok
  def set_ticktime(ms) when is_integer(ms) and ms > 0 and ms <= 18_446_744_073_709_551_615,
    do: Runtime.cluster({:set_ticktime, ms})

  def set_ticktime(other),
    do:
      raise(
        ArgumentError,
        "Lockstep.Cluster.set_ticktime/1 expects a positive integer of virtual ms in " <>
          "1..18446744073709551615 (it must fit in 64 bits), got: #{inspect(other)}"
      )

  defp check_name!(node) when is_atom(node) and node not in [nil, true, false], do: :ok

  defp check_name!(node),
    do: raise(ArgumentError, "a simulated node is named by an atom, got: #{inspect(node)}")
end
