defmodule Lockstep.Trace.SVG do
  @moduledoc false
  # A failing iteration as a message sequence chart, in plain SVG written here (no
  # dependency): one lane per process, time going down, one row per event. Messages are
  # arrows from the send to where the message was taken (or, when nothing took it, to where
  # it arrived); exit signals and `:DOWN`s are arrows from the process that caused them;
  # a timer is a dotted stretch of its owner's lane from start to firing; a partition is a
  # shaded band from the cut to the heal; the failing step is a red band. Events in the
  # causal slice (Lockstep.Trace.Slice) are drawn in full, the others faded. Every mark
  # carries a <title> with the event's full text, so hovering in a browser shows it.
  #
  # Classes name what each element is (`lane`, `msg`, `lost`, `signal`, `down`, `timer`,
  # `partition`, `failing`, `event`), so a test (or a stylesheet) can find them.

  alias Lockstep.Trace

  @lane_width 150
  @row_height 20
  @left 60
  @top 70
  @dot 4

  @doc false
  # `bug`: a Lockstep.BugFound whose trace shows names (Report.display_trace/2 applied).
  def render(bug) do
    trace = bug.trace || []
    events = Enum.map(trace, fn {_step, event} -> event end)
    procs = lanes(events)
    lane = procs |> Enum.with_index() |> Map.new()
    keep = Trace.Slice.of_failure(trace, bug)
    labels = labels(procs, bug)

    rows = length(trace)
    chart_height = @top + (rows + 1) * @row_height + 20
    history = history_panel(bug, chart_height)
    width = max(@left + (max(length(procs), 1) + 1) * @lane_width, history.width)
    height = chart_height + history.height
    x = fn proc -> @left + Map.get(lane, proc, 0) * @lane_width + div(@lane_width, 2) end
    y = fn i -> @top + i * @row_height + div(@row_height, 2) end

    body = [
      style(),
      history.svg,
      title(bug),
      failing_band(trace, bug.fail_step, width, y),
      partitions(events, width, y),
      Enum.map(procs, &lane_mark(&1, labels[&1], x.(&1), chart_height)),
      timers(events, x, y),
      arrows(events, keep, x, y),
      Enum.with_index(trace) |> Enum.map(&event_mark(&1, keep, bug.fail_step, x, y))
    ]

    IO.iodata_to_binary([
      ~s(<?xml version="1.0" encoding="UTF-8"?>\n),
      ~s(<svg xmlns="http://www.w3.org/2000/svg" width="#{width}" height="#{height}" ),
      ~s(viewBox="0 0 #{width} #{height}" font-family="monospace" font-size="11">\n),
      body,
      "</svg>\n"
    ])
  end

  defp style do
    """
    <style>
      .lane { stroke: #999; stroke-width: 1; }
      .msg { stroke: #1f5fbf; fill: none; marker-end: url(#arrow); }
      .lost { stroke: #b00; fill: none; stroke-dasharray: 4 3; }
      .signal { stroke: #c05000; fill: none; stroke-dasharray: 6 2; marker-end: url(#arrow-signal); }
      .down { stroke: #7a3db8; fill: none; stroke-dasharray: 2 2; marker-end: url(#arrow-down); }
      .timer { stroke: #2a8a2a; stroke-width: 3; stroke-dasharray: 1 3; }
      .partition { fill: #f0c040; fill-opacity: 0.18; }
      .failing { fill: #ff0000; fill-opacity: 0.12; }
      .faded { opacity: 0.3; }
      .label { fill: #333; }
      .history-op { fill: #dde8f8; stroke: #1f5fbf; }
      .history-op.info { fill: #f3f3f3; stroke: #888; stroke-dasharray: 3 2; }
    </style>
    <defs>
      <marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#1f5fbf"/></marker>
      <marker id="arrow-signal" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#c05000"/></marker>
      <marker id="arrow-down" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#7a3db8"/></marker>
    </defs>
    """
  end

  # A :linearizability failure's sub-history that cannot be explained, below the chart: a
  # row per process, each operation an interval from its invocation to its return (open
  # to the right when it never returned), over the steps of the chart.
  @op_column 110
  @op_row 26

  defp history_panel(%{kind: :linearizability, details: %{ops: [_ | _] = ops}}, top) do
    {rows, unit, points} = Lockstep.Checker.Timeline.intervals(ops)
    columns = map_size(points) + 1
    width = @left + 80 + columns * @op_column
    height = 50 + length(rows) * @op_row + 30
    x = fn column -> @left + 80 + column * @op_column end

    lanes =
      rows
      |> Enum.with_index()
      |> Enum.map(fn {{row, intervals}, r} ->
        y = top + 40 + r * @op_row

        [
          ~s(<text x="#{@left + 70}" y="#{y + 15}" text-anchor="end" font-weight="bold">),
          esc(row),
          "</text>\n",
          Enum.map(intervals, fn {op, from, to} ->
            x1 = x.(from)
            x2 = if to == :open, do: x.(columns), else: x.(to)
            label = Lockstep.Checker.Timeline.label(op)
            info = if op.type == :ok, do: "", else: " info"

            [
              ~s(<g><rect class="history-op#{info}" x="#{x1}" y="#{y}" width="#{max(x2 - x1, 8)}" height="20" rx="3"/>),
              ~s(<text x="#{x1 + 4}" y="#{y + 14}" font-size="10">),
              esc(truncate(label, div(max(x2 - x1, 8), 6) + 1)),
              "</text><title>",
              esc("#{row}: #{label}"),
              "</title></g>\n"
            ]
          end)
        ]
      end)

    axis =
      Enum.map(points, fn {t, column} ->
        ~s(<text x="#{x.(column)}" y="#{top + height - 14}" font-size="9" class="label">#{t}</text>\n)
      end)

    svg = [
      ~s(<text x="10" y="#{top + 20}" font-size="12" font-weight="bold">),
      "The history that cannot be linearized (over #{unit})",
      "</text>\n",
      lanes,
      axis
    ]

    %{svg: svg, width: width, height: height}
  end

  defp history_panel(_bug, _top), do: %{svg: [], width: 0, height: 0}

  defp title(bug) do
    text = "#{bug.name || "Lockstep"}: #{bug.kind} at step #{bug.fail_step} (seed #{bug.seed})"
    ~s(<text x="10" y="18" font-size="13" font-weight="bold">#{esc(text)}</text>\n)
  end

  # Processes in the order they first appear.
  defp lanes(events) do
    events
    |> Enum.map(&actor/1)
    |> Enum.reject(&is_nil/1)
    |> Enum.uniq()
  end

  defp labels(procs, bug) do
    registered =
      Enum.reduce(bug.trace || [], %{}, fn {_, event}, acc ->
        case Trace.fields(event) do
          {:ok, :register, %{name: name, target: target, ok: true}} ->
            Map.put_new(acc, target, inspect(name))

          _ ->
            acc
        end
      end)

    Map.new(procs, fn proc ->
      extra =
        [registered[proc] || (bug.proc_labels || %{})[proc], (bug.proc_nodes || %{})[proc]]
        |> Enum.reject(&is_nil/1)
        |> Enum.map_join(" ", &to_string/1)

      {proc, extra}
    end)
  end

  defp lane_mark(proc, extra, x, height) do
    [
      ~s(<g class="lane-head"><text x="#{x}" y="#{@top - 28}" text-anchor="middle" font-weight="bold">),
      esc(proc),
      "</text>",
      if(extra != "",
        do: [
          ~s(<text x="#{x}" y="#{@top - 14}" text-anchor="middle" class="label">),
          esc(truncate(extra, 22)),
          "</text>"
        ],
        else: []
      ),
      "</g>\n",
      ~s(<line class="lane" x1="#{x}" y1="#{@top - 6}" x2="#{x}" y2="#{height - 10}"/>\n)
    ]
  end

  defp failing_band(_trace, nil, _width, _y), do: []

  defp failing_band(trace, step, width, y) do
    rows = for {{^step, _}, i} <- Enum.with_index(trace), do: i

    case rows do
      [] ->
        []

      [first | _] ->
        top = y.(first) - div(@row_height, 2)
        h = length(rows) * @row_height

        ~s(<rect class="failing" x="0" y="#{top}" width="#{width}" height="#{h}">) <>
          "<title>the failing step #{step}</title></rect>\n"
    end
  end

  # From each `partitioned` to the next `healed` (or the end).
  defp partitions(events, width, y) do
    {bands, open} =
      events
      |> Enum.with_index()
      |> Enum.reduce({[], []}, fn {event, i}, {bands, open} ->
        case Trace.fields(event) do
          {:ok, :partitioned, f} ->
            {bands, [{i, f} | open]}

          {:ok, :healed, _} ->
            {Enum.map(open, fn {s, f} -> {s, i, f} end) ++ bands, []}

          {:ok, :node_stopped, f} ->
            {bands, [{i, %{a: [f.node], b: [:stopped]}} | open]}

          {:ok, :node_started, f} ->
            {close_stopped(open, f.node, i, bands), drop_stopped(open, f.node)}

          _ ->
            {bands, open}
        end
      end)

    last = length(events)
    bands = Enum.map(open, fn {s, f} -> {s, last, f} end) ++ bands

    Enum.map(bands, fn {from, to, f} ->
      top = y.(from) - div(@row_height, 2)
      h = max(to - from, 1) * @row_height
      what = band_text(f)

      [
        ~s(<rect class="partition" x="0" y="#{top}" width="#{width}" height="#{h}">),
        "<title>",
        esc(what),
        "</title></rect>\n",
        ~s(<text x="#{width - 4}" y="#{top + 11}" text-anchor="end" class="label">),
        esc(truncate(what, 60)),
        "</text>\n"
      ]
    end)
  end

  defp close_stopped(open, node, i, bands) do
    for({s, %{a: [^node], b: [:stopped]} = f} <- open, do: {s, i, f}) ++ bands
  end

  defp drop_stopped(open, node),
    do: Enum.reject(open, &match?({_, %{a: [^node], b: [:stopped]}}, &1))

  defp band_text(%{b: [:stopped], a: [node]}), do: "node #{node} is down"

  defp band_text(f), do: "partition: #{nodes_text(f.a)} | #{nodes_text(f.b)}"

  # A trace file stores the node lists inspected.
  defp nodes_text(nodes) when is_list(nodes), do: Enum.map_join(nodes, " ", &to_string/1)
  defp nodes_text(other), do: Trace.payload(other)

  defp timers(events, x, y) do
    {marks, _} =
      events
      |> Enum.with_index()
      |> Enum.reduce({[], %{}}, fn {event, i}, {marks, started} ->
        case Trace.fields(event) do
          {:ok, :timer_started, f} ->
            {marks,
             Map.update(started, f.proc, :queue.from_list([{i, f.ms}]), &:queue.in({i, f.ms}, &1))}

          {:ok, tag, f} when tag in [:timer_fired, :receive_timeout] ->
            case :queue.out(Map.get(started, f.proc, :queue.new())) do
              {{:value, {s, ms}}, rest} ->
                mark =
                  ~s(<line class="timer" x1="#{x.(f.proc) - 8}" y1="#{y.(s)}" x2="#{x.(f.proc) - 8}" y2="#{y.(i)}">) <>
                    "<title>a #{ms} ms timer of #{esc(f.proc)}</title></line>\n"

                {[mark | marks], Map.put(started, f.proc, rest)}

              {:empty, _} ->
                {marks, started}
            end

          {:ok, :timer_cancelled, f} ->
            {marks, Map.update(started, f.proc, :queue.new(), &drop_oldest/1)}

          _ ->
            {marks, started}
        end
      end)

    Enum.reverse(marks)
  end

  # The trace does not say which of its timers a process cancelled: the oldest goes.
  defp drop_oldest(queue), do: if(:queue.is_empty(queue), do: queue, else: :queue.drop(queue))

  # Messages, exit signals and :DOWNs.
  defp arrows(events, keep, x, y) do
    indexed = Enum.with_index(events)
    {sends, lost} = messages(indexed)

    msgs =
      Enum.map(sends, fn {from_i, to_i, from, to, msg} ->
        arrow(
          "msg",
          {x.(from), y.(from_i)},
          {x.(to), y.(to_i)},
          "#{from} → #{to}: #{payload(msg)}",
          faded?(keep, [from_i, to_i])
        )
      end)

    lost_marks =
      Enum.map(lost, fn {from_i, at, from, to, msg, why} ->
        end_y = if at, do: y.(at), else: y.(from_i) + 6
        text = "#{from} → #{to}: #{payload(msg)} (#{why})"
        arrow("lost", {x.(from), y.(from_i)}, {x.(to), end_y}, text, faded?(keep, [from_i]))
      end)

    signals =
      indexed
      |> Enum.reduce({[], %{}}, fn {event, i}, {marks, last} ->
        marks =
          case Trace.fields(event) do
            {:ok, tag, f} when tag in [:exit_signal, :exit_trapped, :exit_ignored] ->
              from_mark(
                marks,
                "signal",
                last,
                f.from,
                f.proc,
                i,
                "exit signal #{f.from} → #{f.proc}",
                keep,
                x,
                y
              )

            {:ok, :down, f} ->
              from_mark(
                marks,
                "down",
                last,
                f.from,
                f.proc,
                i,
                ":DOWN of #{f.from} to #{f.proc}",
                keep,
                x,
                y
              )

            _ ->
              marks
          end

        {marks, put_last(last, event, i)}
      end)
      |> elem(0)
      |> Enum.reverse()

    [msgs, lost_marks, signals]
  end

  defp from_mark(marks, class, last, from, to, i, text, keep, x, y) do
    case last do
      %{^from => j} ->
        [arrow(class, {x.(from), y.(j)}, {x.(to), y.(i)}, text, faded?(keep, [j, i])) | marks]

      _ ->
        marks
    end
  end

  defp put_last(last, event, i) do
    case actor(event) do
      nil -> last
      proc -> Map.put(last, proc, i)
    end
  end

  # Each send to a process of the run (matched as the slice matches them), drawn to where
  # its message ended: the receive that took it, else its arrival (a delayed message's
  # delivery or deferral), else — delivered at once and never taken — the receiver's lane
  # at the send. Sends whose message was lost are returned apart.
  defp messages(indexed) do
    flows = Trace.Slice.flows(Enum.map(indexed, &elem(&1, 0)))

    ends =
      for {s, {from, to, msg, fate}} <- Enum.sort(flows.sends) do
        case {flows.taken[s], flows.arrived[s]} do
          {k, _} when k != nil -> {:sent, {s, k, from, to, msg}}
          {nil, {tag, j}} when tag in [:deliver, :deferred] -> {:sent, {s, j, from, to, msg}}
          {nil, {lost, j}} -> {:lost, {s, j, from, to, msg, lost}}
          {nil, nil} when fate == :delivered -> {:sent, {s, s, from, to, msg}}
          {nil, nil} -> {:lost, {s, nil, from, to, msg, fate}}
        end
      end

    {for({:sent, m} <- ends, do: m), for({:lost, m} <- ends, do: m)}
  end

  defp arrow(class, {x1, y1}, {x2, y2}, text, faded?) do
    # A message to oneself, or one taken on the sender's own row, bows out to stay visible.
    path =
      if x1 == x2 do
        "M#{x1},#{y1} C#{x1 + 40},#{y1} #{x2 + 40},#{y2} #{x2 + @dot},#{y2}"
      else
        end_x = if x2 > x1, do: x2 - @dot, else: x2 + @dot
        "M#{x1},#{y1} L#{end_x},#{y2}"
      end

    ~s(<path class="#{class}#{if faded?, do: " faded", else: ""}" d="#{path}"><title>) <>
      esc(text) <> "</title></path>\n"
  end

  defp faded?(keep, indexes),
    do: MapSet.size(keep) > 0 and not Enum.all?(indexes, &MapSet.member?(keep, &1))

  defp event_mark({{step, event}, i}, keep, fail_step, x, y) do
    proc = actor(event)
    text = describe(event)
    failing? = step == fail_step
    faded = if MapSet.size(keep) > 0 and not MapSet.member?(keep, i), do: " faded", else: ""
    fill = if failing?, do: "#d00000", else: "#222"
    cx = x.(proc)
    cy = y.(i)

    [
      ~s(<g class="event#{faded}"><circle cx="#{cx}" cy="#{cy}" r="#{@dot}" fill="#{fill}"/>),
      ~s(<text x="#{@left - 8}" y="#{cy + 4}" text-anchor="end" class="label">#{step}</text>),
      ~s(<text x="#{cx + 8}" y="#{cy - 3}" font-size="9">),
      esc(truncate(text, 24)),
      "</text><title>",
      esc("#{step}  #{proc}  #{text}"),
      "</title></g>\n"
    ]
  end

  defp describe(event) do
    Trace.describe(event)
  rescue
    _ -> Trace.safe_inspect(event, [])
  end

  defp payload(term) do
    Trace.safe_inspect(term, [])
  rescue
    _ -> "?"
  end

  defp actor(event), do: Trace.Slice.actor(event)

  defp truncate(text, n) do
    if String.length(text) > n, do: String.slice(text, 0, n - 1) <> "…", else: text
  end

  defp esc(text) do
    text
    |> to_string()
    |> String.replace("&", "&amp;")
    |> String.replace("<", "&lt;")
    |> String.replace(">", "&gt;")
    |> String.replace("\"", "&quot;")
    |> strip_controls()
  end

  # XML 1.0 allows no control characters but tab and newlines.
  defp strip_controls(text), do: String.replace(text, ~r/[\x00-\x08\x0B\x0C\x0E-\x1F]/u, "")
end
