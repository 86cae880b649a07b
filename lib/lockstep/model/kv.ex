defmodule Lockstep.Model.KV do
  @moduledoc """
  A map of independent registers: `:read` with the key as argument and the value as
  result, `:write` with `{key, value}`, `:cas` with `{key, from, to}` and a boolean
  result. Every key starts at `nil`; `{KV, %{k => v}}` starts the keys of the map at their
  values (the map is the initial state, as for `step/4`), and `{KV, v}` with `v` not a map
  starts every key at `v`. Checked in Rust, one key at a time
  for linearizability (P-compositionality: a history is linearizable exactly when each
  key's is), so a failure names its key; whole for sequential consistency, which is not
  compositional.
  """
  @behaviour Lockstep.Model

  @impl true
  def init, do: %{}

  @impl true
  def step(m, :write, {k, v}, _result), do: {:ok, Map.put(m, k, v)}

  def step(m, :read, k, r) do
    if r === Map.get(m, k) or r === Lockstep.Model.unknown(), do: {:ok, m}, else: :error
  end

  def step(m, :cas, {k, from, to}, r) do
    case Lockstep.Model.CASRegister.step(Map.get(m, k), :cas, {from, to}, r) do
      {:ok, v} -> {:ok, Map.put(m, k, v)}
      :error -> :error
    end
  end

  def step(_m, _op, _arg, _result), do: :error

  @doc false
  def __lockstep_model__, do: %{name: :kv, ops: [:read, :write, :cas], initial: nil}
end
