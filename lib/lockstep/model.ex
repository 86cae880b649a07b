defmodule Lockstep.Model do
  @moduledoc """
  A sequential specification that `Lockstep.History` and `Lockstep.Checker` check a
  history against: what each operation does to the state, and which results are
  possible.

  Lockstep ships `Lockstep.Model.Register`, `Lockstep.Model.CASRegister`,
  `Lockstep.Model.Counter`, `Lockstep.Model.Set`, `Lockstep.Model.Queue` and
  `Lockstep.Model.KV`, which the checker runs in Rust. Any other module implementing this
  behaviour is a *user model*: the search still runs in Rust, and asks the model for each
  transition it needs, once per state and operation (see `Lockstep.Checker`).

  ## Writing a model

      defmodule Stack do
        @behaviour Lockstep.Model

        @impl true
        def init, do: []

        @impl true
        def step(stack, :push, x, _result), do: {:ok, [x | stack]}
        def step([], :pop, nil, :empty), do: {:ok, []}
        def step([top | rest], :pop, nil, top), do: {:ok, rest}
        # An operation whose outcome is unknown (`:info`) may have taken effect: its result
        # is `Lockstep.Model.unknown()`.
        def step([_ | rest], :pop, nil, result) when result == :"$lockstep_unknown", do: {:ok, rest}
        def step([], :pop, nil, result) when result == :"$lockstep_unknown", do: {:ok, []}
        def step(_stack, _op, _arg, _result), do: :error
      end

  `step/4` must be a pure function of its arguments: the checker calls it in any order,
  from the process that runs the check, and remembers its answers. States are compared
  exactly (`===`), so two equal states must be the same term (use sorted lists or
  `MapSet`s, not lists in arrival order, for sets).

  `c:failed?/3` (optional) says which results of `Lockstep.History.call/4` and
  `Lockstep.History.complete/3` mean "this operation did not take effect": those are
  recorded as `:fail` and left out of the check. By default `:error` and `{:error, _}`
  results are failures.
  """

  @typedoc "A model's state."
  @type state :: term()

  @doc "The initial state (replaced by `initial` when a history uses `{Model, initial}`)."
  @callback init() :: state()

  @doc """
  The state after `op` with argument `arg` returned `result` in `state`, or `:error` when
  that result is impossible there. For an operation whose outcome is unknown, `result` is
  `unknown/0`.
  """
  @callback step(state(), op :: atom(), arg :: term(), result :: term()) ::
              {:ok, state()} | :error

  @doc "Whether `result` means the operation did not take effect (recorded as `:fail`)."
  @callback failed?(op :: atom(), arg :: term(), result :: term()) :: boolean()

  @optional_callbacks failed?: 3

  @unknown :"$lockstep_unknown"

  @doc "The result `step/4` is given for an operation whose outcome is unknown (`:info`)."
  @spec unknown() :: atom()
  def unknown, do: @unknown

  @doc false
  # The default of failed?/3.
  def default_failed?(:error), do: true
  def default_failed?({:error, _}), do: true
  def default_failed?(_), do: false
end
