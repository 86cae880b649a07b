defmodule Lockstep.Checker do
  @moduledoc """
  Checks a history of operations for linearizability or sequential consistency against
  a `Lockstep.Model`. `Lockstep.History` checks the histories of every iteration with it;
  call it directly for histories recorded anywhere (a Jepsen-style log, a load test).

  ## Events

  A history is a list of events in the order they happened. Each is a map:

    * `%{type: :invoke, id: id, process: p, op: op, arg: arg}` — operation `id` (any term,
      unique while open) started in process `p` (any term: for sequential consistency,
      operations of one process are in program order);
    * `%{type: :ok, id: id, result: result}` — it returned `result`;
    * `%{type: :fail, id: id}` — it certainly did not take effect (left out of the check);
    * `%{type: :info, id: id}` — its outcome is unknown: it may take effect at any point
      after its invocation, or never. An invocation never completed counts as `:info`.

  Invocations may also carry `:node` and `:step`, completions `:step`: they are copied
  into the failure details (`Lockstep.History` fills them in).

  ## The check

  The search runs in Lockstep's Rust engine, on a thread of its own, never on a BEAM
  scheduler: Wing & Gong's algorithm with the memoisation of Lowe ("Testing for
  linearizability", 2017) of (linearized set, model state), and, for `Lockstep.Model.KV`,
  P-compositionality (each key checked alone), as Porcupine and Knossos do. A user model's
  `step/4` is called from the process that runs the check, which answers the search's
  requests one transition at a time (each state and operation asked once).

  A failure is shrunk to a small sub-history that still cannot be explained: the shortest
  failing prefix in time, then without every operation the failure does not need (a read
  is kept with the write it read from).
  """

  alias Lockstep.Session

  @typedoc "One event of a history (see the module documentation)."
  @type event :: map()

  @typedoc "A model module, or `{module, initial_state}`."
  @type model :: module() | {module(), term()}

  @typedoc "One operation of a failing sub-history."
  @type operation :: %{
          process: term(),
          node: term(),
          op: atom(),
          arg: term(),
          type: :ok | :info,
          result: term(),
          invoke: non_neg_integer(),
          complete: non_neg_integer() | nil,
          invoke_step: non_neg_integer() | nil,
          complete_step: non_neg_integer() | nil
        }

  @typedoc """
  Why a history failed: the model and consistency checked, the key of the failing part
  (`Lockstep.Model.KV`; `nil` otherwise), the failing sub-history in invocation order,
  whether shrinking finished (`minimal`), and how many operations were checked.
  """
  @type details :: %{
          model: module(),
          consistency: :linearizable | :sequential,
          key: term(),
          ops: [operation()],
          minimal: boolean(),
          checked: non_neg_integer()
        }

  @i64 -9_223_372_036_854_775_808..9_223_372_036_854_775_807

  @doc """
  Checks `events` against `model` (a module, or `{module, initial_state}`) for
  `consistency` (`:linearizable` or `:sequential`). Returns `:ok` or `{:error, details}`.

  Raises `ArgumentError` on a malformed event list (naming the event), an operation the
  model does not have, or a bad model or consistency.

      iex> events = [
      ...>   %{type: :invoke, id: 1, process: :a, op: :write, arg: 1},
      ...>   %{type: :ok, id: 1, result: :ok},
      ...>   %{type: :invoke, id: 2, process: :b, op: :read, arg: nil},
      ...>   %{type: :ok, id: 2, result: nil}
      ...> ]
      iex> {:error, %{ops: ops}} = Lockstep.Checker.check(events, Lockstep.Model.Register, :linearizable)
      iex> Enum.map(ops, & &1.op)
      [:write, :read]
  """
  @spec check([event()], model(), :linearizable | :sequential) :: :ok | {:error, details()}
  def check(events, model, consistency \\ :linearizable) do
    {mod, initial} = model!(model)
    consistency!(consistency)
    ops = pair!(events)
    check_ops(ops, mod, initial, consistency)
  end

  @doc false
  # `ops` are paired operations (see pair!/1), already validated.
  def check_ops(ops, mod, initial, consistency) do
    ops = Enum.reject(ops, &(&1.type == :fail))
    builtin = builtin(mod)
    Enum.each(ops, &validate_op!(builtin, mod, &1))
    builtin = if wide_counter?(builtin, initial, ops), do: nil, else: builtin
    {encoded, model_in, terms} = encode(ops, builtin, initial)

    tag = :erlang.unique_integer([:positive])
    job = Session.checker_start(encoded, model_in, consistency, tag)

    answer =
      try do
        await(job, tag, user(builtin, mod, initial, ops))
      catch
        # A user model raised: stop the search, and take its last word (`:aborted`) out
        # of the mailbox, where nothing else would.
        kind, reason ->
          Session.checker_cancel(job)

          receive do
            {^tag, :done, _} -> :ok
          after
            5_000 -> :ok
          end

          :erlang.raise(kind, reason, __STACKTRACE__)
      end

    case answer do
      :ok ->
        :ok

      {:error, key, ids, minimal} ->
        by_id = Map.new(ops, &{&1.id, &1})

        {:error,
         %{
           model: mod,
           consistency: consistency,
           key: if(key, do: decode(key, terms)),
           ops: Enum.map(ids, &public(Map.fetch!(by_id, &1))),
           minimal: minimal,
           checked: length(ops)
         }}

      :aborted ->
        raise Lockstep.InternalError, message: "Lockstep internal error: the check was aborted"

      {:panic, text} ->
        raise Lockstep.InternalError, message: "Lockstep internal error: checker: #{text}"
    end
  end

  # The Rust counter is 64-bit; Elixir's integers are not. A history whose values could
  # leave 64 bits (counting every :add, whatever the order) is checked through the model's
  # step/4 instead, exactly.
  defp wide_counter?(%{name: :counter}, initial, ops) when is_integer(initial) do
    reach =
      Enum.reduce(ops, abs(initial), fn
        %{op: :add, arg: n}, sum -> sum + abs(n)
        _op, sum -> sum
      end)

    reach not in @i64
  end

  defp wide_counter?(_builtin, _initial, _ops), do: false

  @doc """
  The failing sub-history of `details` (or a list of its operations) as a text time-line:
  one line per process, each operation an interval from its invocation to its completion
  (in trace steps when known, else in event positions); `:info` operations run off the
  end.
  """
  @spec timeline(details() | [operation()]) :: String.t()
  def timeline(%{ops: ops}), do: Lockstep.Checker.Timeline.render(ops)
  def timeline(ops) when is_list(ops), do: Lockstep.Checker.Timeline.render(ops)

  # Waiting for the search ----------------------------------------------------------------

  defp await(job, tag, user) do
    receive do
      {^tag, :done, answer} ->
        answer

      {^tag, :step, state, op, known?} ->
        {user, answer} = user_step(user, state, op, known?)
        Session.checker_answer(job, answer)
        await(job, tag, user)
    end
  end

  defp user(nil, mod, initial, ops) do
    %{
      mod: mod,
      ops: Map.new(ops, &{&1.id, &1}),
      ids: %{initial => 0},
      states: %{0 => initial}
    }
  end

  defp user(_builtin, _mod, _initial, _ops), do: nil

  defp user_step(%{mod: mod} = user, state_id, op_id, known?) do
    state = Map.fetch!(user.states, state_id)
    op = Map.fetch!(user.ops, op_id)
    result = if known?, do: op.result, else: Lockstep.Model.unknown()

    case mod.step(state, op.op, op.arg, result) do
      {:ok, next} ->
        case user.ids do
          %{^next => id} ->
            {user, {:ok, id}}

          ids ->
            id = map_size(ids)

            {%{user | ids: Map.put(ids, next, id), states: Map.put(user.states, id, next)},
             {:ok, id}}
        end

      :error ->
        {user, :error}

      other ->
        raise ArgumentError,
              "#{inspect(mod)}.step/4 must return {:ok, state} or :error, got: " <>
                "#{inspect(other)} (for #{inspect(op.op)} with argument #{inspect(op.arg)} " <>
                "and result #{inspect(result)} in state #{inspect(state)})"
    end
  end

  # Validation -----------------------------------------------------------------------------

  @doc false
  # `{module, initial}` of a model option, or ArgumentError.
  def model!({mod, initial}) when is_atom(mod) do
    behaviour!(mod)
    {mod, initial}
  end

  def model!(mod) when is_atom(mod) do
    behaviour!(mod)

    # A built-in model may start its Rust side elsewhere than init/0 (KV: every key nil).
    case builtin(mod) do
      %{initial: initial} -> {mod, initial}
      _ -> {mod, mod.init()}
    end
  end

  def model!(other) do
    raise ArgumentError,
          "a model must be a module implementing Lockstep.Model (init/0, step/4) or " <>
            "{module, initial_state}, got: #{inspect(other)}"
  end

  defp behaviour!(mod) do
    unless Code.ensure_loaded?(mod) and function_exported?(mod, :init, 0) and
             function_exported?(mod, :step, 4) do
      raise ArgumentError,
            "#{inspect(mod)} is not a Lockstep.Model: it must define init/0 and step/4 " <>
              "(see Lockstep.Model)"
    end
  end

  @doc false
  # ArgumentError now, naming it, for an initial state a built-in model cannot start at
  # (`Lockstep.History.new/1`: not when the iteration ends).
  def initial!(mod, initial) do
    case builtin(mod) do
      nil -> :ok
      builtin -> encode_model(builtin, initial, %{})
    end

    :ok
  end

  @doc false
  def consistency!(c) when c in [:linearizable, :sequential], do: c

  def consistency!(other) do
    raise ArgumentError,
          "consistency must be :linearizable or :sequential, got: #{inspect(other)}"
  end

  @doc false
  # The built-in description of `mod` (its Rust model), or nil for a user model.
  def builtin(mod) do
    if function_exported?(mod, :__lockstep_model__, 0), do: mod.__lockstep_model__()
  end

  @doc false
  # ArgumentError unless `op` with `arg` is an operation of the model.
  def validate_call!(mod, op, arg) do
    validate_op!(builtin(mod), mod, %{op: op, arg: arg, type: :info, result: nil, invoke: nil})
  end

  @doc false
  # ArgumentError unless `result` is a result `op` can have in the model.
  def validate_result!(mod, op, arg, result) do
    validate_op!(builtin(mod), mod, %{op: op, arg: arg, type: :ok, result: result, invoke: nil})
  end

  defp validate_op!(nil, _mod, %{op: op} = o) do
    unless is_atom(op), do: bad_op!(o, "an operation must be an atom, got: #{inspect(op)}")
    :ok
  end

  defp validate_op!(%{ops: ops}, mod, %{op: op} = o) do
    unless op in ops do
      bad_op!(
        o,
        "#{inspect(mod)} has no operation #{inspect(op)} (its operations: " <>
          Enum.map_join(ops, ", ", &inspect/1) <> ")"
      )
    end

    case shape(mod.__lockstep_model__().name, op, o.arg, o.type, o.result) do
      :ok -> :ok
      {:error, why} -> bad_op!(o, "#{inspect(mod)} #{inspect(op)}: #{why}")
    end
  end

  defp bad_op!(%{invoke: nil}, why), do: raise(ArgumentError, why)
  defp bad_op!(%{invoke: i}, why), do: raise(ArgumentError, "event #{i}: " <> why)

  defp shape(model, :cas, arg, type, result) when model in [:cas_register, :kv] do
    cond do
      model == :cas_register and not match?({_, _}, arg) ->
        {:error, "the argument must be {from, to}, got: #{inspect(arg)}"}

      model == :kv and not match?({_, _, _}, arg) ->
        {:error, "the argument must be {key, from, to}, got: #{inspect(arg)}"}

      type == :ok and not is_boolean(result) ->
        {:error, "the result must be true or false, got: #{inspect(result)}"}

      true ->
        :ok
    end
  end

  defp shape(:kv, :write, arg, _type, _result) when not is_tuple(arg) or tuple_size(arg) != 2,
    do: {:error, "the argument must be {key, value}, got: #{inspect(arg)}"}

  defp shape(:counter, :add, arg, _type, _result) when not is_integer(arg),
    do: {:error, "the argument must be an integer, got: #{inspect(arg)}"}

  defp shape(:set, :contains, _arg, :ok, result) when not is_boolean(result),
    do: {:error, "the result must be true or false, got: #{inspect(result)}"}

  defp shape(:set, :read, _arg, :ok, result)
       when not is_list(result) and not is_struct(result, MapSet),
       do:
         {:error,
          "the result must be a list or a MapSet of the elements, got: #{inspect(result)}"}

  defp shape(_model, _op, _arg, _type, _result), do: :ok

  # Pairing events into operations ----------------------------------------------------------

  @doc false
  # The operations of `events`, in invocation order, or ArgumentError naming the event.
  def pair!(events) when is_list(events) do
    {ops, open} =
      events
      |> Enum.with_index()
      |> Enum.reduce({%{}, %{}}, fn {event, i}, {ops, open} -> pair_event(event, i, ops, open) end)

    # Never completed: :info.
    ops =
      Enum.reduce(open, ops, fn {_id, i}, ops ->
        Map.update!(ops, i, &%{&1 | type: :info})
      end)

    ops |> Map.values() |> Enum.sort_by(& &1.invoke)
  end

  def pair!(other) do
    raise ArgumentError,
          "a history must be a list of events (maps with :type :invoke, :ok, :fail or :info), " <>
            "got: #{inspect(other)}"
  end

  defp pair_event(%{type: :invoke, id: id} = e, i, ops, open) do
    unless Map.has_key?(e, :process) and Map.has_key?(e, :op) do
      raise ArgumentError,
            "event #{i}: an :invoke needs :process and :op (and :arg), got: #{inspect(e)}"
    end

    if Map.has_key?(open, id) do
      raise ArgumentError,
            "event #{i}: invokes id #{inspect(id)} while it is still open (invoked at event " <>
              "#{open[id]})"
    end

    op = %{
      id: i,
      ref: id,
      process: e.process,
      node: Map.get(e, :node),
      op: e.op,
      arg: Map.get(e, :arg),
      type: :pending,
      result: nil,
      invoke: i,
      complete: nil,
      invoke_step: Map.get(e, :step),
      complete_step: nil
    }

    {Map.put(ops, i, op), Map.put(open, id, i)}
  end

  defp pair_event(%{type: type, id: id} = e, i, ops, open) when type in [:ok, :fail, :info] do
    case Map.pop(open, id) do
      {nil, _} ->
        again =
          Enum.find_value(ops, fn {_, o} -> if o.ref === id and o.complete, do: o.complete end)

        raise ArgumentError,
              "event #{i}: #{inspect(type)} for id #{inspect(id)}, " <>
                if(again,
                  do: "which event #{again} already completed",
                  else: "which no earlier :invoke opened"
                )

      {at, open} ->
        if type == :ok and not Map.has_key?(e, :result) do
          raise ArgumentError, "event #{i}: an :ok needs a :result, got: #{inspect(e)}"
        end

        op = %{
          ops[at]
          | type: type,
            result: if(type == :ok, do: e.result),
            complete: i,
            complete_step: Map.get(e, :step)
        }

        {Map.put(ops, at, op), open}
    end
  end

  defp pair_event(e, i, _ops, _open) do
    raise ArgumentError,
          "event #{i}: expected a map with :type (:invoke, :ok, :fail or :info) and :id, " <>
            "got: #{inspect(e)}"
  end

  defp public(op), do: Map.drop(op, [:id, :ref])

  # Encoding for the engine -----------------------------------------------------------------

  defp encode(ops, builtin, initial) do
    {procs, _} =
      Enum.reduce(ops, {%{}, 0}, fn op, {m, n} ->
        if Map.has_key?(m, op.process), do: {m, n}, else: {Map.put(m, op.process, n), n + 1}
      end)

    {model_in, terms} = encode_model(builtin, initial, %{})

    {encoded, terms} =
      Enum.map_reduce(ops, terms, fn op, terms ->
        {key, args, result, terms} = encode_op(builtin, op, terms)

        {%{
           id: op.id,
           process: Map.fetch!(procs, op.process),
           call: op.invoke,
           ret: if(op.type == :ok, do: op.complete),
           kind: if(builtin, do: op.op, else: :user),
           key: key,
           args: args,
           result: if(op.type == :ok, do: result)
         }, terms}
      end)

    {encoded, model_in, terms}
  end

  defp encode_model(nil, _initial, terms), do: {:user, terms}

  defp encode_model(%{name: :counter}, initial, terms)
       when is_integer(initial) and initial in @i64,
       do: {{:counter, initial}, terms}

  # Beyond 64 bits a Counter is checked through step/4 (see wide_counter?/3): valid.
  defp encode_model(%{name: :counter}, initial, terms) when is_integer(initial),
    do: {:user, terms}

  defp encode_model(%{name: :counter}, initial, _terms),
    do: raise(ArgumentError, "a Counter starts at an integer, got: #{inspect(initial)}")

  defp encode_model(%{name: :set}, initial, terms) do
    {vs, terms} = Enum.map_reduce(elements!(initial, "a Set"), terms, &value/2)
    {{:set, vs}, terms}
  end

  defp encode_model(%{name: :queue}, initial, terms) do
    {vs, terms} = Enum.map_reduce(elements!(initial, "a Queue"), terms, &value/2)
    {empty, terms} = value(:empty, terms)
    {{:queue, vs, empty}, terms}
  end

  # A map is KV's state (SPEC §12: `{Model, initial}` sets it): its keys start at their
  # values, the others at nil. Any other term is where every key starts.
  defp encode_model(%{name: :kv}, %{} = initial, terms) when not is_struct(initial) do
    {default, terms} = value(nil, terms)

    {pairs, terms} =
      initial
      |> Enum.sort()
      |> Enum.map_reduce(terms, fn {k, v}, terms ->
        {k, terms} = value(k, terms)
        {v, terms} = value(v, terms)
        {{k, v}, terms}
      end)

    {{:kv, default, pairs}, terms}
  end

  defp encode_model(%{name: :kv}, initial, terms) do
    {v, terms} = value(initial, terms)
    {{:kv, v, []}, terms}
  end

  defp encode_model(%{name: name}, initial, terms) do
    {v, terms} = value(initial, terms)
    {{name, v}, terms}
  end

  defp elements!(%MapSet{} = s, _what), do: MapSet.to_list(s)
  defp elements!(list, _what) when is_list(list), do: list

  defp elements!(other, what),
    do: raise(ArgumentError, "#{what} starts with a list of elements, got: #{inspect(other)}")

  defp encode_op(nil, _op, terms), do: {nil, [], {:term, 0}, terms}

  defp encode_op(%{name: :kv}, %{op: op, arg: arg, result: result}, terms) do
    {key, rest} =
      case {op, arg} do
        {:read, k} -> {k, []}
        {:write, {k, v}} -> {k, [v]}
        {:cas, {k, from, to}} -> {k, [from, to]}
      end

    {key, terms} = value(key, terms)
    {args, terms} = Enum.map_reduce(rest, terms, &value/2)
    {result, terms} = if op == :read, do: value(result, terms), else: value_or_bool(result, terms)
    {key, args, result, terms}
  end

  defp encode_op(%{name: name}, %{op: op, arg: arg, result: result}, terms) do
    rest =
      case {op, arg} do
        {op, _} when op in [:read, :dequeue] -> []
        {:cas, {from, to}} -> [from, to]
        {_, x} -> [x]
      end

    {args, terms} = Enum.map_reduce(rest, terms, &value/2)

    {result, terms} =
      case {name, op, result} do
        {:set, :read, r} when is_list(r) or is_struct(r, MapSet) ->
          {vs, terms} = Enum.map_reduce(elements!(r, "a Set read"), terms, &value/2)
          {{:list, vs}, terms}

        {_, _, r} ->
          value(r, terms)
      end

    {nil, args, result, terms}
  end

  defp value_or_bool(b, terms) when is_boolean(b), do: {{:bool, b}, terms}
  defp value_or_bool(other, terms), do: value(other, terms)

  # Exact equality: small integers as themselves, every other term by its class under
  # `===` (map keys compare exactly).
  defp value(n, terms) when is_integer(n) and n in @i64, do: {{:int, n}, terms}
  defp value(b, terms) when is_boolean(b), do: {{:bool, b}, terms}

  defp value(t, terms) do
    case terms do
      %{^t => id} ->
        {{:term, id}, terms}

      _ ->
        id = map_size(terms) + 1
        {{:term, id}, Map.put(terms, t, id)}
    end
  end

  defp decode({:int, n}, _terms), do: n
  defp decode({:bool, b}, _terms), do: b

  defp decode({:term, id}, terms),
    do: Enum.find_value(terms, fn {t, i} -> if i == id, do: t end)
end
