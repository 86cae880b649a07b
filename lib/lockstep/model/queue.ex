defmodule Lockstep.Model.Queue do
  @moduledoc """
  A FIFO queue: `:enqueue` with the element as argument (result not checked), `:dequeue`
  with argument `nil` and the element taken as result, or `:empty` when the queue was
  empty. Starts empty (`{Queue, elements}` starts with those, head first). Checked in
  Rust.
  """
  @behaviour Lockstep.Model

  @impl true
  def init, do: []

  @impl true
  def step(q, :enqueue, x, _result), do: {:ok, q ++ [x]}
  def step([], :dequeue, _arg, r) when r in [:empty, :"$lockstep_unknown"], do: {:ok, []}

  def step([h | t], :dequeue, _arg, r),
    do: if(r === h or r === Lockstep.Model.unknown(), do: {:ok, t}, else: :error)

  def step(_q, _op, _arg, _result), do: :error

  @doc false
  def __lockstep_model__, do: %{name: :queue, ops: [:enqueue, :dequeue]}
end
