defmodule Lockstep.Trace.Supervision do
  @moduledoc false
  # Supervisor restarts, told as what they mean in a report ("restarts P.1.1 as P.1.2").
  #
  # A supervisor (Supervisor, DynamicSupervisor, Task.Supervisor, or any process that
  # behaves like one) traps exits, learns that a child of its own died — an `{:EXIT, …}`
  # from a process its spawn-tree name parents, or the exit signal it sent itself while
  # shutting siblings down for `:one_for_all` / `:rest_for_one` — and then spawns and links
  # the replacement. One pass over the trace pairs each such spawn with the dead child
  # earliest in the supervisor's start order, the order in which OTP restarts them. A call
  # it then serves (`start_child`, `restart_child`…) starts children on request, not as
  # restarts: the dead children it had are forgotten there.
  #
  # Kept apart from Lockstep.Trace's per-event texts because it needs the events before.

  alias Lockstep.Trace

  @doc """
  The restart texts of `trace` (`[{step, event}]`): a map from an event's position in the
  list to the text that replaces its own.
  """
  @spec notes([{non_neg_integer(), term()}]) :: %{non_neg_integer() => String.t()}
  def notes(trace) when is_list(trace) do
    {notes, _sups} =
      trace
      |> Enum.with_index()
      |> Enum.reduce({%{}, %{}}, fn {{_step, event}, index}, {notes, sups} ->
        case Trace.fields(event) do
          {:ok, tag, fields} -> step(tag, fields, index, notes, sups)
          :error -> {notes, sups}
        end
      end)

    notes
  end

  def notes(_trace), do: %{}

  # Per supervisor: `slots` (each child's place in its start order: a replacement takes
  # the place of the child it replaces, and OTP restarts in start order) and `dead` (its
  # children that died and are not replaced yet).
  defp step(tag, %{proc: sup} = fields, _index, notes, sups)
       when tag in [:exit_trapped, :exit_sent] do
    child = if tag == :exit_trapped, do: fields.from, else: fields.to

    if child_of?(child, sup),
      do: {notes, update(sups, sup, fn s -> %{s | dead: MapSet.put(s.dead, child)} end)},
      else: {notes, sups}
  end

  defp step(:spawn_link, %{proc: sup, child: new}, index, notes, sups) do
    s = Map.get(sups, sup, %{slots: %{}, dead: MapSet.new()})

    case Enum.min_by(s.dead, &Map.get(s.slots, &1, 0), fn -> nil end) do
      nil ->
        slot = map_size(s.slots)
        {notes, Map.put(sups, sup, %{s | slots: Map.put(s.slots, new, slot)})}

      old ->
        slots = Map.put(s.slots, new, Map.get(s.slots, old, 0))
        s = %{s | slots: slots, dead: MapSet.delete(s.dead, old)}
        {Map.put(notes, index, "restarts #{old} as #{new}"), Map.put(sups, sup, s)}
    end
  end

  defp step(:receive, %{proc: sup, msg: msg}, _index, notes, sups)
       when is_tuple(msg) and tuple_size(msg) == 3 and elem(msg, 0) == :"$gen_call",
       do: {notes, update(sups, sup, fn s -> %{s | dead: MapSet.new()} end)}

  defp step(_tag, _fields, _index, notes, sups), do: {notes, sups}

  defp update(sups, sup, fun) do
    sups |> Map.put_new(sup, %{slots: %{}, dead: MapSet.new()}) |> Map.update!(sup, fun)
  end

  defp child_of?(child, sup) when is_binary(child) and is_binary(sup) do
    case String.split_at(child, byte_size(sup)) do
      {^sup, "." <> rest} -> rest != "" and not String.contains?(rest, ".")
      _ -> false
    end
  end

  defp child_of?(_child, _sup), do: false
end
