defmodule Lockstep.HistoryModels do
  @moduledoc false
  # User models for the checker and history tests.

  defmodule Stack do
    @moduledoc false
    # A LIFO stack: :push x, :pop → the top or :empty.
    @behaviour Lockstep.Model
    @unknown Lockstep.Model.unknown()

    @impl true
    def init, do: []

    @impl true
    def step(s, :push, x, _result), do: {:ok, [x | s]}
    def step([], :pop, _arg, r) when r in [:empty, @unknown], do: {:ok, []}
    def step([top | rest], :pop, _arg, r) when r === top or r === @unknown, do: {:ok, rest}
    def step(_s, _op, _arg, _result), do: :error
  end

  defmodule AsUser do
    @moduledoc false
    # A built-in model's Elixir step/4 through the user-model path: what the Rust model
    # must agree with. `{AsUser, {Model, initial}}`.
    @behaviour Lockstep.Model

    @impl true
    def init, do: raise("give an initial state: {AsUser, {Model, initial}}")

    @impl true
    def step({mod, state}, op, arg, result) do
      case mod.step(state, op, arg, result) do
        {:ok, next} -> {:ok, {mod, next}}
        :error -> :error
      end
    end
  end

  defmodule Raises do
    @moduledoc false
    @behaviour Lockstep.Model
    @impl true
    def init, do: 0
    @impl true
    def step(_s, _op, _arg, _result), do: raise(ArgumentError, "model bug")
  end

  defmodule Garbage do
    @moduledoc false
    @behaviour Lockstep.Model
    @impl true
    def init, do: 0
    @impl true
    def step(_s, _op, _arg, _result), do: :maybe
  end

  defmodule Bank do
    @moduledoc false
    # Withdrawals that say {:error, :insufficient} did not happen (failed?/3).
    @behaviour Lockstep.Model
    @impl true
    def init, do: 10
    @impl true
    def step(b, :withdraw, n, _r) when n <= b, do: {:ok, b - n}
    def step(b, :balance, _, r) when r === b or r == :"$lockstep_unknown", do: {:ok, b}
    def step(_b, _op, _arg, _r), do: :error
    @impl true
    def failed?(_op, _arg, result), do: match?({:error, _}, result)
  end
end
