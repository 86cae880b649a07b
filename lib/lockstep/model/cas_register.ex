defmodule Lockstep.Model.CASRegister do
  @moduledoc """
  A register with compare-and-set: `:read`, `:write` as in `Lockstep.Model.Register`, and
  `:cas` with argument `{from, to}` and a boolean result: `true` when the value was `from`
  (it is now `to`), `false` when it was not (nothing changed). Starts at `nil`. Checked in
  Rust.
  """
  @behaviour Lockstep.Model

  @impl true
  def init, do: nil

  @impl true
  def step(_v, :write, x, _result), do: {:ok, x}

  def step(v, :read, _arg, r),
    do: if(r === v or r === Lockstep.Model.unknown(), do: {:ok, v}, else: :error)

  def step(v, :cas, {from, to}, r) do
    unknown = Lockstep.Model.unknown()

    case {v === from, r} do
      {true, r} when r in [true, unknown] -> {:ok, to}
      {false, r} when r in [false, unknown] -> {:ok, v}
      _ -> :error
    end
  end

  def step(_v, _op, _arg, _result), do: :error

  @doc false
  def __lockstep_model__, do: %{name: :cas_register, ops: [:read, :write, :cas]}
end
