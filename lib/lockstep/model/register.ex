defmodule Lockstep.Model.Register do
  @moduledoc """
  A register: `:write` with the value as argument (its result is not checked), `:read`
  with argument `nil` and the value read as result. Starts at `nil` (`{Register, v}` starts
  at `v`). Checked in Rust.
  """
  @behaviour Lockstep.Model

  @impl true
  def init, do: nil

  @impl true
  def step(_v, :write, x, _result), do: {:ok, x}

  def step(v, :read, _arg, r),
    do: if(r === v or r === Lockstep.Model.unknown(), do: {:ok, v}, else: :error)

  def step(_v, _op, _arg, _result), do: :error

  @doc false
  def __lockstep_model__, do: %{name: :register, ops: [:read, :write]}
end
