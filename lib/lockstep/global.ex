defmodule Lockstep.Global do
  @moduledoc """
  The cluster-wide name registry of a simulated cluster, mirroring `:global`.

  Registration is atomic: of two processes of connected nodes racing to register the same
  name, exactly one gets `:yes`; a pid gets one name. Names are cleared when their owner
  exits or its node stops. As OTP's `:global`, each node has its own view of the names
  (these functions read and write the caller's node's), kept equal between connected
  nodes. Registering and unregistering take a lock on every known node first, so while a
  node is cut off by a partition not yet declared lost (`net_ticktime`) they wait, until
  the heal or the tick. Once it is declared lost each side forgets the names held across
  the cut and a name can be registered on both sides; on heal a clash is resolved as
  `:global.random_exit_name/3` does — one registration is kept, the other holder is killed
  — with the strategy choosing which. Every function is a sync point.
  """

  alias Lockstep.Runtime

  @doc """
  Registers `pid` under `name` (any term): `:yes`, or `:no` when the name is taken or `pid`
  has a global name already (OTP 25's default). As in OTP, a `pid` that has exited gets
  `:yes` and the name is gone at once (its holder is dead).
  """
  @spec register_name(term(), pid()) :: :yes | :no
  def register_name(name, pid) when is_pid(pid) do
    if Runtime.cluster({:global_register, name, pid}), do: :yes, else: :no
  end

  @doc "Removes a global name. Returns `:ok`."
  @spec unregister_name(term()) :: :ok
  def unregister_name(name), do: Runtime.cluster({:global_unregister, name})

  @doc "The pid registered under `name`, or `:undefined`."
  @spec whereis_name(term()) :: pid() | :undefined
  def whereis_name(name) do
    case Runtime.cluster({:global_whereis, name}) do
      nil -> :undefined
      pid -> pid
    end
  end

  @doc "All globally registered names."
  @spec registered_names() :: [term()]
  def registered_names, do: Runtime.cluster(:global_names)

  @doc """
  Sends `msg` to the process registered under `name` and returns its pid; exits with
  `{:badarg, {name, msg}}` when nobody is, like `:global.send/2`.
  """
  @spec send(term(), term()) :: pid()
  def send(name, msg) do
    case Runtime.send_to({:"$lockstep_global", name}, msg) do
      pid when is_pid(pid) -> pid
      nil -> exit({:badarg, {name, msg}})
    end
  rescue
    ArgumentError -> exit({:badarg, {name, msg}})
  end
end
