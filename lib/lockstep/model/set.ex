defmodule Lockstep.Model.Set do
  @moduledoc """
  A set: `:add` and `:remove` with the element as argument (results not checked),
  `:contains` with the element and a boolean result, `:read` with argument `nil` and every
  element as result (a list in any order, or a `MapSet`). Starts empty (`{Set, elements}`
  starts with those). Checked in Rust.
  """
  @behaviour Lockstep.Model

  @impl true
  def init, do: MapSet.new()

  @impl true
  def step(s, :add, x, _result), do: {:ok, MapSet.put(set(s), x)}
  def step(s, :remove, x, _result), do: {:ok, MapSet.delete(set(s), x)}

  def step(s, :contains, x, r) do
    if r === MapSet.member?(set(s), x) or r === Lockstep.Model.unknown(),
      do: {:ok, set(s)},
      else: :error
  end

  def step(s, :read, _arg, r) do
    if r === Lockstep.Model.unknown() or MapSet.equal?(set(r), set(s)),
      do: {:ok, set(s)},
      else: :error
  end

  def step(_s, _op, _arg, _result), do: :error

  defp set(%MapSet{} = s), do: s
  defp set(list) when is_list(list), do: MapSet.new(list)
  defp set(_), do: MapSet.new([make_ref()])

  @doc false
  def __lockstep_model__, do: %{name: :set, ops: [:add, :remove, :contains, :read]}
end
