defmodule Lockstep.Model.Counter do
  @moduledoc """
  A counter: `:add` with an integer argument (its result is not checked), `:read` with
  argument `nil` and the integer read as result. Starts at 0. Checked in Rust, in 64 bits;
  a history whose values could leave them is checked through `step/4`, with Elixir's
  integers.
  """
  @behaviour Lockstep.Model

  @impl true
  def init, do: 0

  @impl true
  def step(n, :add, d, _result) when is_integer(d), do: {:ok, n + d}

  def step(n, :read, _arg, r),
    do: if(r === n or r === Lockstep.Model.unknown(), do: {:ok, n}, else: :error)

  def step(_n, _op, _arg, _result), do: :error

  @doc false
  def __lockstep_model__, do: %{name: :counter, ops: [:add, :read]}
end
