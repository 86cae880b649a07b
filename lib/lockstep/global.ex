defmodule Lockstep.Global do
  @moduledoc """
  The cluster-wide name registry of a simulated cluster, mirroring `:global`.

  Registration is atomic: of two processes of connected nodes racing to register the same
  name, exactly one gets `:yes`. Names are cleared when their owner exits or its node
  stops. As OTP's `:global`, each side of a partition has its own view of the names (the
  caller's node's view is what these functions read and write): a name can be registered
  on both sides, each side forgets the names held across the cut once `net_ticktime` has
  passed, and on heal a clash is resolved as `:global.random_exit_name/3` does — one
  registration is kept, the other holder is killed — with the strategy choosing which.
  Every function is a sync point.
  """

  alias Lockstep.Runtime

  @doc "Registers `pid` under `name` (any term): `:yes`, or `:no` when the name is taken."
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
