defmodule Lockstep.Checker.Timeline do
  @moduledoc false
  # Text renderings of a failing sub-history (Lockstep.Checker's details): the list of its
  # operations, and a time-line with one line per process and each operation drawn as an
  # interval. Times are trace steps when every operation has them (Lockstep.History), else
  # positions in the event list. Used by the terminal report; kept apart from it so other
  # renderings (pictures) can reuse `label/1` and `intervals/1`.

  alias Lockstep.Trace

  @cell 3
  @max_label 28

  @doc false
  # One line per operation: process (and node), the call and its result, when.
  def describe(ops) do
    width = ops |> Enum.map(&String.length(who(&1))) |> Enum.max(fn -> 1 end)

    Enum.map_join(ops, "\n", fn op ->
      "#{String.pad_trailing(who(op), width)}  #{label(op)}  #{when_(op)}"
    end)
  end

  @doc false
  # The operation as `op(arg) → result`, `→ ?` when its outcome is unknown.
  def label(%{op: op, arg: arg, type: type, result: result}) do
    name = if is_atom(op), do: Atom.to_string(op), else: short(op)
    call = if arg == nil, do: "#{name}()", else: "#{name}(#{short(arg)})"

    case type do
      :ok -> "#{call} → #{short(result)}"
      _ -> "#{call} → ? (info)"
    end
  end

  @doc false
  # `[{row, [{op, from, to | :open}]}]`: each process's operations over time columns.
  def intervals(ops) do
    {time, unit} = clock(ops)

    points =
      ops
      |> Enum.flat_map(fn op -> [time.(op, :invoke), time.(op, :complete)] end)
      |> Enum.reject(&is_nil/1)
      |> Enum.uniq()
      |> Enum.sort()
      |> Enum.with_index()
      |> Map.new()

    rows =
      ops
      |> Enum.group_by(&who/1)
      |> Enum.sort_by(fn {_, [op | _]} -> op.invoke end)
      |> Enum.map(fn {row, ops} ->
        {row,
         Enum.map(ops, fn op ->
           to = time.(op, :complete)
           {op, points[time.(op, :invoke)], if(to, do: points[to], else: :open)}
         end)}
      end)

    {rows, unit, points}
  end

  @doc false
  def render(ops) do
    {rows, unit, points} = intervals(ops)
    labels = Enum.map(ops, &String.length(label(&1)))
    cell = max(@cell, min(Enum.max(labels, fn -> 0 end), @max_label) + 3)
    columns = map_size(points)
    width = (columns + 1) * cell
    name_width = rows |> Enum.map(&String.length(elem(&1, 0))) |> Enum.max(fn -> 1 end)

    lines =
      Enum.map(rows, fn {row, intervals} ->
        line =
          Enum.reduce(intervals, String.duplicate(" ", width), fn {op, from, to}, line ->
            a = from * cell
            b = if to == :open, do: width - 1, else: to * cell
            draw(line, a, max(b, a + 2), label(op), to == :open)
          end)

        String.pad_trailing(row, name_width) <> "  " <> String.trim_trailing(line)
      end)

    axis =
      points
      |> Enum.sort_by(&elem(&1, 1))
      |> Enum.reduce(String.duplicate(" ", width), fn {t, c}, line ->
        put(line, c * cell, Integer.to_string(t))
      end)

    Enum.join(lines, "\n") <>
      "\n" <>
      String.duplicate(" ", name_width) <>
      "  " <>
      String.trim_trailing(axis) <>
      "  (#{unit})"
  end

  defp draw(line, a, b, label, open?) do
    inner = b - a - 1
    text = String.slice(label, 0, max(inner, 0))
    fill = String.duplicate("-", max(inner - String.length(text), 0))
    segment = "[" <> text <> fill <> if(open?, do: ">", else: "]")
    put(line, a, segment)
  end

  defp put(line, at, text) do
    {left, rest} = String.split_at(line, at)
    left <> text <> String.slice(rest, String.length(text)..-1//1)
  end

  # Steps when every operation has them, else event positions.
  defp clock(ops) do
    if Enum.all?(
         ops,
         &(&1.invoke_step != nil and (&1.complete == nil or &1.complete_step != nil))
       ) do
      {fn
         op, :invoke -> op.invoke_step
         op, :complete -> op.complete_step
       end, "steps"}
    else
      {fn
         op, :invoke -> op.invoke
         op, :complete -> op.complete
       end, "event positions"}
    end
  end

  defp who(%{process: p, node: node}) when node not in [nil, :nonode@nohost],
    do: "#{name(p)}@#{node}"

  defp who(%{process: p}), do: name(p)

  defp name(p) when is_binary(p), do: p
  defp name(p), do: Trace.safe_inspect(p, limit: 5, printable_limit: 40)

  defp when_(%{invoke_step: s, complete_step: c, type: :ok}) when s != nil,
    do: "invoked at step #{s}, returned at step #{c}"

  defp when_(%{invoke_step: s, complete_step: c}) when s != nil and c != nil,
    do: "invoked at step #{s}, outcome unknown (crashed or timed out at step #{c})"

  defp when_(%{invoke_step: s}) when s != nil, do: "invoked at step #{s}, never returned"

  defp when_(%{invoke: i, complete: c, type: :ok}),
    do: "invoked at event #{i}, returned at event #{c}"

  defp when_(%{invoke: i}), do: "invoked at event #{i}, outcome unknown"

  # An operation read back from a trace file was stored inspected.
  defp short({:"$inspected", text}) when is_binary(text), do: text
  defp short(term), do: Trace.safe_inspect(term, limit: 8, printable_limit: 40)
end
