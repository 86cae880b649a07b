defmodule Lockstep.OtpReg.Sessions do
  @moduledoc false
  # Plain application code: one Stash server per key, found through a Registry and started
  # on demand under a DynamicSupervisor (the find-or-start of many Phoenix and Broadway
  # apps). `start_link/1` starts both under one Supervisor, registered as `name`.Registry and
  # `name`.Sup.

  alias Lockstep.OtpSup.Stash

  def start_link(name) do
    children = [
      {Registry, keys: :unique, name: registry(name)},
      {DynamicSupervisor, strategy: :one_for_one, name: sup(name)}
    ]

    Supervisor.start_link(children, strategy: :one_for_all)
  end

  def registry(name), do: Module.concat(name, Registry)
  def sup(name), do: Module.concat(name, Sup)
  def via(name, key), do: {:via, Registry, {registry(name), key}}

  # Racy: between the lookup and the start another caller may start the same key, and
  # start_child then returns {:error, {:already_started, pid}}, which this does not expect.
  def find_or_start(name, key) do
    case Registry.lookup(registry(name), key) do
      [{pid, _}] ->
        pid

      [] ->
        {:ok, pid} =
          DynamicSupervisor.start_child(sup(name), {Stash, id: key, name: via(name, key)})

        pid
    end
  end

  # The fix: losing the race is fine, the winner's pid is the answer.
  def find_or_start_fixed(name, key) do
    case Registry.lookup(registry(name), key) do
      [{pid, _}] ->
        pid

      [] ->
        case DynamicSupervisor.start_child(sup(name), {Stash, id: key, name: via(name, key)}) do
          {:ok, pid} -> pid
          {:error, {:already_started, pid}} -> pid
        end
    end
  end
end
