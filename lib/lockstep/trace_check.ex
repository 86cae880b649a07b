defmodule Lockstep.TraceFile.Check do
  @moduledoc false
  # Checks every field of a decoded trace file before anything uses it: a malformed file
  # (hand-edited, truncated, from another tool, hostile) raises Lockstep.TraceError saying
  # which field is wrong and what was expected — never a crash deeper in replay, shrink,
  # the report or the NIF, and never a silent pass with defaults. Decisions and events are
  # checked against the vocabulary of Lockstep.Trace.

  alias Lockstep.Trace

  @u64 0..18_446_744_073_709_551_615

  @kinds [
    :exception,
    :crash,
    :deadlock,
    :stuck,
    :max_steps,
    :linearizability,
    :uncontrolled
  ]

  # The run options a trace file records, each with its check and what it accepts. The
  # writer (TraceFile) writes exactly these keys.
  @saved_options [
    max_steps: {:pos_integer, "a positive integer"},
    fail_on_max_steps: {[true, false], "true or false"},
    timeout: {:pos_integer, "a positive integer"},
    delivery: {[:instant, :delayed], ":instant or :delayed"},
    crash: {[:fail, :ignore, :strict], ":fail, :ignore or :strict"},
    timers: {[:on_idle, :anytime], ":on_idle or :anytime"},
    blocked_at_end: {[:kill, :fail], ":kill or :fail"},
    strict_control: {[true, false], "true or false"},
    instrument: {:modules, "a list of module atoms"}
  ]

  def saved_options, do: @saved_options

  # {field, required?, check}; a check returns :ok or {:error, what was expected}.
  defp fields do
    [
      {:schedule, true, &schedule/1},
      {:seed, true, &in_range(&1, @u64, "an integer in 0..2^64-1")},
      {:iter_seed, true, &in_range(&1, @u64, "an integer in 0..2^64-1")},
      {:iteration, true, &pos_integer/1},
      {:options, true, &options/1},
      {:kind, true, &member(&1, @kinds)},
      {:events, true, &events/1},
      {:call_sites, false, &call_sites/1},
      {:proc_labels, false, &proc_labels/1},
      {:history, false, &history/1},
      {:lockstep_version, false, &string/1},
      {:name, false, &string/1},
      {:reason, false, &nil_or(&1, fn v -> string(v) end)},
      {:process, false, &nil_or(&1, fn v -> proc_name(v) end)},
      {:strategy, false, &strategy/1},
      {:fail_step, false, &nil_or(&1, fn v -> non_neg_integer(v) end)},
      {:steps, false, &non_neg_integer/1},
      {:proc_nodes, false, &proc_nodes/1},
      {:body, false, &nil_or(&1, fn v -> body(v) end)},
      {:location, false, &nil_or(&1, fn v -> string(v) end)}
    ]
  end

  @defaults %{
    lockstep_version: "unknown",
    name: "(unnamed run)",
    reason: nil,
    process: nil,
    strategy: nil,
    fail_step: nil,
    proc_nodes: %{},
    body: nil,
    location: nil,
    call_sites: %{},
    proc_labels: %{},
    history: nil
  }

  @hint ". The file was not written by Lockstep or was damaged; re-run the search to " <>
          "save a fresh trace"

  @doc false
  def hint, do: @hint

  @doc false
  # Returns the file's map with the optional fields filled in; raises TraceError.
  def check!(data, _version, label) do
    Enum.each(fields(), fn {key, required?, check} ->
      case Map.fetch(data, key) do
        {:ok, value} ->
          with {:error, expected} <- check.(value) do
            Lockstep.TraceFile.fail!(label, "its #{key} #{expected}" <> @hint)
          end

        :error when required? ->
          Lockstep.TraceFile.fail!(label, "it lacks the field #{inspect(key)}" <> @hint)

        :error ->
          :ok
      end
    end)

    data
    |> Map.put_new(:steps, length(data.schedule))
    |> then(&Map.merge(@defaults, &1))
  end

  @doc false
  # A term shown in an error message: short, whatever it is.
  def show(term) do
    text = inspect(term, limit: 10, printable_limit: 40, width: :infinity)
    if String.length(text) > 80, do: String.slice(text, 0, 79) <> "…", else: text
  end

  defp is(value, expected), do: {:error, "is #{show(value)}, expected #{expected}"}

  defp string(v) when is_binary(v), do: :ok
  defp string(v), do: is(v, "a string")

  defp pos_integer(v) when is_integer(v) and v > 0, do: :ok
  defp pos_integer(v), do: is(v, "a positive integer")

  defp non_neg_integer(v) when is_integer(v) and v >= 0, do: :ok
  defp non_neg_integer(v), do: is(v, "a non-negative integer")

  defp in_range(v, range, expected) do
    if is_integer(v) and v in range, do: :ok, else: is(v, expected)
  end

  defp member(v, allowed) do
    if v in allowed, do: :ok, else: is(v, "one of " <> Enum.map_join(allowed, ", ", &inspect/1))
  end

  defp nil_or(nil, _check), do: :ok
  defp nil_or(v, check), do: check.(v)

  defp proper_list(v, what) do
    cond do
      not is_list(v) -> is(v, what)
      List.improper?(v) -> {:error, "is an improper list #{show(v)}, expected #{what}"}
      true -> :ok
    end
  end

  # Process names as the engine spells them: "P", "P.1", "P.2.1" (ProcName::parse).
  defp proc_name(v) do
    if Trace.proc_name?(v), do: :ok, else: is(v, ~s(a process name like "P" or "P.2.1"))
  end

  shape = fn {tag, fields} ->
    "{" <> Enum.map_join([inspect(tag) | Keyword.keys(fields)], ", ", &to_string/1) <> "}"
  end

  {last, init} = List.pop_at(Enum.map(Trace.decisions(), shape), -1)

  @decisions "a list of decisions: #{Enum.join(init, ", ")} or #{last}, with process names " <>
               ~s(like "P" or "P.2.1")

  defp schedule(v) do
    with :ok <- proper_list(v, @decisions) do
      v
      |> Enum.with_index(1)
      |> Enum.find(fn {decision, _} -> not decision?(decision) end)
      |> case do
        nil -> :ok
        {bad, i} -> {:error, "entry #{i} is #{show(bad)}, expected #{@decisions}"}
      end
    end
  end

  defp decision?(decision), do: Trace.decision?(decision)

  defp options(v) when is_map(v), do: is(v, "a keyword list (a map is not accepted)")

  defp options(v) do
    with :ok <- proper_list(v, "a keyword list") do
      Enum.find_value(v, :ok, &option/1)
    end
  end

  defp option({key, value}) when is_atom(key) do
    case Keyword.fetch(@saved_options, key) do
      {:ok, {check, expected}} ->
        ok? =
          case check do
            :pos_integer -> is_integer(value) and value > 0
            :modules -> is_list(value) and Enum.all?(value, &is_atom/1)
            allowed when is_list(allowed) -> value in allowed
          end

        unless ok?, do: {:error, "hold #{key}: #{show(value)}, expected #{expected}"}

      :error ->
        {:error,
         "hold the unknown option #{inspect(key)}; this Lockstep records " <>
           Enum.map_join(Keyword.keys(@saved_options), ", ", &inspect/1) <>
           " (a newer Lockstep wrote it?)"}
    end
  end

  defp option(other), do: {:error, "hold #{show(other)}, expected {key, value} pairs"}

  defp strategy(name) when is_atom(name) and not is_nil(name), do: :ok

  defp strategy({name, opts} = v) when is_atom(name) and is_list(opts) do
    scalar? = fn x -> is_atom(x) or is_integer(x) or is_binary(x) end

    if not List.improper?(opts) and
         Enum.all?(opts, &match?({k, _} when is_atom(k), &1)) and
         Enum.all?(opts, fn {_, x} -> scalar?.(x) end),
       do: :ok,
       else: is(v, "a strategy name or {name, keyword list}")
  end

  defp strategy(v), do: is(v, "a strategy name or {name, keyword list}")

  defp proc_nodes(v) when is_map(v) do
    if Enum.all?(v, fn {name, node} -> Trace.proc_name?(name) and is_atom(node) end),
      do: :ok,
      else: is(v, "a map of process names to node atoms")
  end

  defp proc_nodes(v), do: is(v, "a map of process names to node atoms")

  defp proc_labels(v) when is_map(v) do
    if Enum.all?(v, fn {name, label} -> Trace.proc_name?(name) and is_binary(label) end),
      do: :ok,
      else: is(v, "a map of process names to labels (strings)")
  end

  defp proc_labels(v), do: is(v, "a map of process names to labels (strings)")

  @history "nil or a map with :model (a module), :consistency, :checked, :minimal and :ops " <>
             "(a list of maps with :op, :type, :process, :invoke and :complete)"

  defp history(nil), do: :ok

  defp history(%{model: m, consistency: c, checked: n, minimal: b, ops: ops} = v)
       when is_atom(m) and c in [:linearizable, :sequential] and is_integer(n) and
              is_boolean(b) and is_list(ops) do
    if Enum.all?(ops, &history_op?/1) and is_integer(Map.get(v, :history, 1)) and
         is_integer(Map.get(v, :histories, 1)),
       do: :ok,
       else: is(v, @history)
  end

  defp history(v), do: is(v, @history)

  defp history_op?(%{type: t, invoke: i, complete: c} = op) when t in [:ok, :info] do
    Map.has_key?(op, :op) and Map.has_key?(op, :process) and is_integer(i) and
      (is_integer(c) or c == nil)
  end

  defp history_op?(_), do: false

  defp body(%{module: m, function: f} = v) when is_atom(m) and is_atom(f) do
    case Map.get(v, :source) do
      s when is_nil(s) or is_binary(s) -> :ok
      _ -> is(v, "%{module: atom, function: atom, source: path or nil}")
    end
  end

  defp body(v), do: is(v, "%{module: atom, function: atom, source: path or nil}")

  defp call_sites(v) when is_map(v) do
    if Enum.all?(v, fn {index, site} -> is_integer(index) and index >= 0 and is_binary(site) end),
      do: :ok,
      else: is(v, "a map of event indexes (non-negative integers) to source locations (strings)")
  end

  defp call_sites(v),
    do: is(v, "a map of event indexes (non-negative integers) to source locations (strings)")

  @event "{step, event} pairs: a non-negative step and an event of a kind Lockstep.Trace " <>
           "lists (its tag and its number of fields), whose fields are strings, atoms, " <>
           ~s(integers or {:"$inspected", text})

  defp events(v) do
    with :ok <- proper_list(v, "a list of " <> @event) do
      v
      |> Enum.with_index(1)
      |> Enum.find(fn {event, _} -> not event?(event) end)
      |> case do
        nil -> :ok
        {bad, i} -> {:error, "entry #{i} is #{show(bad)}, expected #{@event}"}
      end
    end
  end

  defp event?({step, event})
       when is_integer(step) and step >= 0 and is_tuple(event) and tuple_size(event) > 0 do
    [_tag | fields] = Tuple.to_list(event)
    Trace.known?(event) and Enum.all?(fields, &field?/1)
  end

  defp event?(_), do: false

  defp field?(v) when is_binary(v) or is_atom(v) or is_integer(v), do: true
  defp field?({:"$inspected", text}), do: is_binary(text)
  defp field?(_), do: false
end
