defmodule Lockstep.Report do
  @moduledoc false
  # Renders a BugFound: what failed and why; seed, iteration, strategy; the trace, one line
  # per event, the failing step marked; the command that replays it. Colour only when the
  # terminal supports it. What each event and decision says comes from Lockstep.Trace.

  alias Lockstep.Trace

  def format(bug, opts \\ []) do
    colour? = Keyword.get(opts, :colour, IO.ANSI.enabled?())
    style = Keyword.get(opts, :style, bug.trace_style)
    slice = Keyword.get(opts, :slice, :auto)
    bug = %{bug | trace: display_trace(bug.trace, bug.pid_names), trace_style: style}

    [
      headline(bug),
      "\n",
      why(bug),
      "\n",
      "  seed: #{bug.seed}   iteration: #{bug.iteration}   strategy: #{strategy(bug.strategy)}" <>
        "   iteration seed: #{bug.iter_seed}\n",
      nondeterminism(bug),
      outside(bug),
      "\n",
      trace_section(bug, colour?, slice),
      "\n",
      replay_section(bug)
    ]
    |> IO.iodata_to_binary()
  end

  @doc false
  # The report of last resort, when the full one cannot be built: what is known for sure
  # and how to get back here.
  def minimal(bug, error) do
    replay =
      cond do
        is_binary(bug.trace_path) -> "trace file: #{bug.trace_path}"
        is_binary(bug.encoded_schedule) -> "encoded schedule: #{bug.encoded_schedule}"
        true -> "no trace file"
      end

    "Lockstep found a bug in #{bug.name}: #{inspect(bug.kind)} in process " <>
      "#{bug.process || "?"} (its full report could not be formatted: " <>
      "#{inspect(error.__struct__)}). seed: #{bug.seed}, iteration: #{bug.iteration}, " <>
      "iteration seed: #{bug.iter_seed}; #{replay}. Reason: " <>
      Trace.safe_inspect(bug.reason, limit: 20, printable_limit: 200)
  end

  @doc false
  # Shows managed pids inside payloads by their symbolic names.
  def display_trace(trace, names) when is_list(trace) and map_size(names) > 0 do
    Enum.map(trace, fn {step, event} ->
      {step, event |> Tuple.to_list() |> Enum.map(&name_pids(&1, names)) |> List.to_tuple()}
    end)
  end

  def display_trace(trace, _names), do: trace

  defp name_pids(pid, names) when is_pid(pid) do
    case names do
      %{^pid => name} -> %Lockstep.ProcRef{name: name}
      _ -> pid
    end
  end

  defp name_pids(list, names) when is_list(list) do
    if List.improper?(list), do: list, else: Enum.map(list, &name_pids(&1, names))
  end

  defp name_pids(tuple, names) when is_tuple(tuple) do
    tuple |> Tuple.to_list() |> Enum.map(&name_pids(&1, names)) |> List.to_tuple()
  end

  defp name_pids(%{__struct__: _} = struct, _names), do: struct

  defp name_pids(map, names) when is_map(map) do
    Map.new(map, fn {k, v} -> {name_pids(k, names), name_pids(v, names)} end)
  end

  defp name_pids(other, _names), do: other

  defp headline(%{kind: :exception, process: p, name: name}),
    do: "Lockstep found a bug in #{name}: the root process #{p} failed"

  defp headline(%{kind: :crash, process: p, name: name, details: %{killed_by: from}}),
    do:
      "Lockstep found a bug in #{name}: process #{p} was killed by an exit signal from " <>
        "#{from} (crash: :strict)"

  defp headline(%{kind: :crash, process: p, name: name}),
    do: "Lockstep found a bug in #{name}: process #{p} crashed"

  defp headline(%{kind: :deadlock, name: name, details: details}) do
    # A deadlock before the root returned always blocks the root (it is alive, and neither
    # running nor able to run); without it in the list, the root had returned.
    if is_list(details) and not Enum.any?(details, &(&1.name == "P")) do
      "Lockstep found a bug in #{name}: deadlock — the root returned, and processes are " <>
        "still blocked with nothing left to happen (blocked_at_end: :fail)"
    else
      "Lockstep found a bug in #{name}: deadlock — the root has not returned and no process can run"
    end
  end

  defp headline(%{kind: :stuck, process: p, name: name}),
    do:
      "Lockstep found a bug in #{name}: process #{p || "?"} ran past the timeout without reaching a sync point"

  defp headline(%{kind: :max_steps, name: name, steps: steps}),
    do: "Lockstep found a bug in #{name}: the iteration reached max_steps (#{steps} steps)"

  defp headline(%{kind: :uncontrolled, name: name}),
    do:
      "Lockstep found a bug in #{name}: concurrency escaped Lockstep's control " <>
        "(strict_control: true)"

  defp headline(%{kind: :linearizability, name: name, details: %{} = d}),
    do:
      "Lockstep found a bug in #{name}: a history is not " <>
        "#{if d.consistency == :sequential, do: "sequentially consistent", else: "linearizable"}" <>
        " (#{inspect(d.model)})"

  defp headline(%{kind: kind, name: name}), do: "Lockstep found a bug in #{name}: #{kind}"

  # An 'ETS-TRANSFER' sent around Lockstep comes from a table's heir option: the BEAM sends
  # it when the owner's process ends (give_away/3 in a run is scheduled).
  defp stray_hint(msgs) do
    if Enum.any?(msgs, &match?({:"ETS-TRANSFER", _, _, _}, &1)) do
      "\n      an 'ETS-TRANSFER' of a table's :heir is sent by the BEAM when the owner's " <>
        "process ends, outside the schedule: take it in instrumented code (a plain " <>
        "receive), or hand the table over with :ets.give_away/3, which Lockstep schedules"
    else
      "\n      a plain send in code that is not instrumented: instrument the module that " <>
        "sends them (instrument: [TheModule]), or send them with Lockstep.send/2, so they " <>
        "are scheduled and received"
    end
  end

  defp why(%{kind: :crash, details: %{killed_by: from, signal: signal}, reason: reason}) do
    "    exit signal from #{from} with reason #{Trace.payload(signal)}; under crash: :strict " <>
      "(Concuerror's rule) a process killed by a reason other than :normal, :shutdown or " <>
      "{:shutdown, _} fails the iteration\n" <> indent(format_reason(reason), 4) <> "\n"
  end

  defp why(%{kind: kind, reason: reason}) when kind in [:exception, :crash] do
    indent(format_reason(reason), 4) <> "\n"
  end

  defp why(%{kind: :deadlock, details: details}) when is_list(details) do
    lines =
      Enum.map(details, fn %{name: name, pid: pid, waiting_for: waiting, mailbox: mailbox} =
                             detail ->
        mail =
          case mailbox do
            [] -> "empty mailbox"
            msgs -> "mailbox: " <> Enum.map_join(msgs, ", ", &Trace.payload/1)
          end

        stray =
          case Map.get(detail, :unmanaged, []) do
            [] ->
              ""

            msgs ->
              "\n      it also holds #{length(msgs)} message(s) sent around Lockstep, " <>
                "which this receive never sees: " <>
                Enum.map_join(Enum.take(msgs, 3), ", ", &Trace.payload/1) <>
                stray_hint(msgs)
          end

        "    #{name} #{inspect(pid)} waits in #{waiting} (#{mail})#{stray}\n"
      end)

    ["  Blocked processes:\n" | lines] |> IO.iodata_to_binary()
  end

  defp why(%{
         kind: :stuck,
         details: %{pid: pid, stacktrace: stacktrace, awaiting: {:outside, dest}}
       }) do
    "    #{inspect(pid)} is awaiting the outside: it sent to #{inspect(dest)}, a process " <>
      "outside the run, and waits in a receive that nothing of the run can satisfy. " <>
      "Nothing from outside that it would take came within :timeout. If that process " <>
      "should be part of the test, start it inside the run (from instrumented code, or " <>
      "with Lockstep.spawn/1); if it is just slow, raise :timeout. Only an instrumented " <>
      "receive takes messages from outside the run (instrument: [TheModule]).\n" <>
      "    Its stacktrace when it was stopped:\n" <>
      indent(stacktrace_text(stacktrace), 6) <> "\n"
  end

  defp why(%{kind: :stuck, details: %{pid: pid, stacktrace: stacktrace}}) do
    "    #{inspect(pid)} is looping, or blocked in code Lockstep does not control (a bare " <>
      "`receive`, GenServer.call, Process.sleep in a module that is not instrumented). " <>
      instrument_hint(stacktrace) <>
      "Or use Lockstep.receive/recv and the Lockstep mirrors, add Lockstep.yield() to spin " <>
      "loops, or raise :timeout if it is just slow.\n" <>
      "    Its stacktrace when it was stopped:\n" <>
      indent(stacktrace_text(stacktrace), 6) <> "\n"
  end

  defp why(%{kind: :max_steps}) do
    "    fail_on_max_steps: true made this a failure. A run this long is often a livelock or " <>
      "an unfair schedule (a spin loop starving the process it waits for); raise :max_steps " <>
      "if the test is just long.\n"
  end

  defp why(%{kind: :uncontrolled, details: found}) when is_list(found) and found != [] do
    indent(Lockstep.Uncontrolled.describe(found), 4) <> "\n"
  end

  defp why(%{kind: :linearizability, details: %{ops: _} = d}), do: history_section(d)

  defp why(_), do: ""

  # The failing history: its shortest unexplainable sub-history found, then its time-line
  # (Lockstep.Checker.Timeline renders both from the checker's details).
  defp history_section(d) do
    alias Lockstep.Checker.Timeline

    which =
      if d[:histories] && d.histories > 1,
        do: " (history #{d.history} of #{d.histories})",
        else: ""

    key = if d.key != nil, do: " on key #{Trace.safe_inspect(d.key, limit: 8)}", else: ""
    shrunk = if d.minimal, do: "", else: " (shrinking stopped at its budget)"

    indent = fn text -> text |> String.split("\n") |> Enum.map_join("\n", &("    " <> &1)) end

    "  #{length(d.ops)} of the #{d.checked} operations#{which} cannot be linearized#{key}" <>
      "#{shrunk}:\n" <>
      indent.(Timeline.describe(d.ops)) <>
      "\n  time-line:\n" <> indent.(Timeline.render(d.ops)) <> "\n"
  end

  # The user module the stuck process was in, if it is not instrumented: the one to add.
  @runtime_apps [:erts, :kernel, :stdlib, :elixir, :logger, :ex_unit, :mix, :iex, :lockstep]

  defp instrument_hint(stacktrace) do
    module =
      Enum.find_value(stacktrace, fn
        {module, _fun, _arity, _location} when is_atom(module) ->
          if user_module?(module) and not Lockstep.Instrument.instrumented?(module),
            do: module

        _ ->
          nil
      end)

    if module,
      do: "To run its code under control, instrument it: instrument: [#{inspect(module)}]. ",
      else: ""
  end

  defp user_module?(module) do
    case :application.get_application(module) do
      {:ok, app} when app in @runtime_apps -> lockstep_support?(module)
      _ -> true
    end
  end

  # Lockstep's own test support and examples are user code, like a user's.
  defp lockstep_support?(module) do
    case module.module_info(:compile)[:source] do
      source when is_list(source) -> not String.contains?(List.to_string(source), "/lib/lockstep")
      _ -> false
    end
  rescue
    _ -> false
  end

  # Formatting what the program under test raised, threw or exited with must never fail
  # nor run away: an exception whose message/1 raises, a struct whose Inspect
  # implementation raises or returns garbage, a huge message. Each step falls back to what
  # can still be shown, and the result is capped.
  @reason_limit 16_384

  @doc false
  def format_reason({kind, reason, stacktrace}) when kind in [:error, :exit, :throw] do
    banner = Trace.banner(kind, reason, stacktrace)

    case stacktrace_text(stacktrace) do
      "" -> banner
      text -> banner <> "\n" <> text
    end
    |> Trace.cap(@reason_limit)
  end

  def format_reason({:"$inspected", text}) when is_binary(text),
    do: Trace.cap(text, @reason_limit)

  def format_reason(nil), do: "(no reason recorded)"
  def format_reason(other), do: Trace.safe_inspect(other, [])

  defp stacktrace_text([]), do: ""

  defp stacktrace_text(stacktrace) when is_list(stacktrace) do
    Exception.format_stacktrace(stacktrace)
  rescue
    # Arguments in a frame that cannot be inspected: show the frames with arities.
    _ ->
      stacktrace
      |> Enum.map(fn
        {m, f, args, loc} when is_list(args) -> {m, f, length(args), loc}
        frame -> frame
      end)
      |> then(fn frames ->
        try do
          Exception.format_stacktrace(frames)
        rescue
          _ -> "    (the stacktrace could not be formatted)"
        end
      end)
  end

  defp stacktrace_text(_other), do: ""

  defp indent(text, n) do
    pad = String.duplicate(" ", n)

    text
    |> String.trim_trailing()
    |> String.split("\n")
    |> Enum.map_join("\n", &(pad <> &1))
  end

  defp strategy({name, opts}) when is_list(opts) and opts != [],
    do: "#{inspect(name)} #{inspect(opts)}"

  defp strategy({name, _}), do: inspect(name)
  defp strategy(name), do: inspect(name)

  # SPEC §9: a failure that involved processes outside the run says so — they are not
  # scheduled, so what they did may not happen the same way again.
  defp outside(%{trace: trace}) when is_list(trace) do
    {sends, receives} =
      Enum.reduce(trace, {0, 0}, fn
        {_step, {:send, _, :external, _, _}}, {s, r} -> {s + 1, r}
        {_step, {:receive_external, _}}, {s, r} -> {s, r + 1}
        _, acc -> acc
      end)

    if sends + receives > 0 do
      "  NOTE: this run involved processes outside it (#{sends} send(s) to them, " <>
        "#{receives} message(s) from them, marked in the trace below). Lockstep does not " <>
        "schedule them: what they did may not happen the same way in a replay.\n"
    else
      ""
    end
  end

  defp outside(_bug), do: ""

  defp nondeterminism(%{nondeterminism: nil}), do: ""
  defp nondeterminism(%{nondeterminism: note}), do: "  WARNING: #{note}\n"

  # `slice`: `:auto` shows the causal slice (Lockstep.Trace.Slice) when it leaves events
  # out, `true` shows it whatever its size, `false` the whole trace.
  defp trace_section(%{trace: trace} = bug, colour?, slice)
       when is_list(trace) and trace != [] do
    labels = labels(trace, bug.proc_nodes || %{}, bug.proc_labels || %{})
    label = fn event -> Map.get(labels, safe_actor(event), safe_actor(event)) end

    # Each event with its text, followed by its call site in instrumented code.
    # A supervisor's restart says so (Lockstep.Trace.Supervision).
    sites = bug.call_sites || %{}
    notes = Lockstep.Trace.Supervision.notes(trace)

    keep = kept(trace, bug, slice)

    described =
      trace
      |> Enum.with_index()
      |> Enum.filter(fn {_, i} -> keep == nil or MapSet.member?(keep, i) end)
      |> Enum.map(fn {{step, event}, i} ->
        text = Map.get_lazy(notes, i, fn -> safe_describe(event, labels) end)
        {step, event, located(text, sites[i])}
      end)

    rows =
      case bug.trace_style do
        :compact -> compact_rows(described, label, bug.fail_step)
        _ -> Enum.map(described, &row(&1, label, bug.fail_step))
      end

    step_width = rows |> Enum.map(&String.length(&1.steps)) |> Enum.max(fn -> 1 end) |> max(5)
    width = rows |> Enum.map(&String.length(&1.actor)) |> Enum.max(fn -> 1 end)

    format_row = fn row ->
      marker = if row.failing?, do: ">>", else: "  "

      line =
        "#{marker} #{String.pad_leading(row.steps, step_width)}  " <>
          String.pad_trailing(row.actor, width) <> "  " <> row.text

      if row.failing? and colour?, do: IO.ANSI.red() <> line <> IO.ANSI.reset(), else: line
    end

    lines =
      case elide(rows) do
        {head, 0, []} ->
          Enum.map(head, format_row)

        {head, omitted, tail} ->
          Enum.map(head, format_row) ++
            [
              "   … #{omitted} lines omitted (the whole trace: mix lockstep.dump_trace " <>
                "#{bug.trace_path || "PATH"}) …"
            ] ++ Enum.map(tail, format_row)
      end

    header(trace, keep, bug) <>
      compact_note(bug.trace_style, length(rows)) <>
      "; >> marks the failing step #{bug.fail_step}):\n" <>
      left_out(trace, keep, bug) <>
      Enum.join(lines, "\n") <> "\n"
  end

  defp trace_section(_, _, _), do: "Trace: (not captured)\n"

  defp kept(_trace, _bug, false), do: nil

  defp kept(trace, bug, slice) do
    keep = Lockstep.Trace.Slice.of_failure(trace, bug)

    cond do
      MapSet.size(keep) == 0 -> nil
      slice == :auto and MapSet.size(keep) == length(trace) -> nil
      true -> keep
    end
  rescue
    # a trace of an unexpected shape (a file from elsewhere) is shown whole
    _ -> nil
  end

  defp header(trace, nil, bug),
    do: "Trace (#{count(length(trace), "event")} over #{count(bug.steps, "step")}"

  defp header(trace, keep, bug),
    do:
      "Trace (causal slice: #{MapSet.size(keep)} of #{count(length(trace), "event")} over " <>
        count(bug.steps, "step")

  defp count(1, noun), do: "1 #{noun}"
  defp count(n, noun), do: "#{n} #{noun}s"

  defp left_out(_trace, nil, _bug), do: ""

  defp left_out(trace, keep, bug) do
    case length(trace) - MapSet.size(keep) do
      0 ->
        ""

      n ->
        what =
          if bug.kind == :linearizability,
            do: "the operations that cannot be linearized",
            else: "the failing step"

        "   #{n} #{if n == 1, do: "event", else: "events"} that did not happen before " <>
          "#{what} left out (all of them: mix lockstep.dump_trace " <>
          "#{bug.trace_path || "PATH"})\n"
    end
  end

  defp row({step, event, text}, label, fail_step) do
    %{
      steps: Integer.to_string(step),
      actor: label.(event),
      text: text,
      failing?: step == fail_step
    }
  end

  defp located(text, site) when is_binary(site), do: "#{text}  at #{site}"
  defp located(text, _site), do: text

  # The compact trace (a shrunk failure's): consecutive events of one process share a
  # line, a repeated event is counted rather than repeated, and "starts" is left out when
  # the process does something else on that line (acting implies it started).
  defp compact_rows(described, label, fail_step) do
    described
    |> Enum.chunk_by(fn {_, event, _} -> label.(event) end)
    |> Enum.map(fn [{first, event, _} | _] = chunk ->
      {last, _, _} = List.last(chunk)

      shown =
        case Enum.reject(chunk, fn {_, e, _} -> kind(e) == :start end) do
          [] -> chunk
          rest -> rest
        end

      text =
        shown
        |> Enum.map(fn {_, e, text} -> if kind(e) == :block, do: "waits", else: text end)
        |> Enum.chunk_by(& &1)
        |> Enum.map_join(" · ", fn
          [one] -> one
          [one | _] = same -> "#{one} ×#{length(same)}"
        end)

      %{
        steps: if(first == last, do: "#{first}", else: "#{first}–#{last}"),
        actor: label.(event),
        text: text,
        failing?: Enum.any?(chunk, fn {step, _, _} -> step == fail_step end)
      }
    end)
  end

  defp compact_note(:compact, lines),
    do: ", in #{lines} lines: one per run of a process's consecutive events"

  defp compact_note(_, _), do: ""

  @head_events 30
  @tail_events 250

  # A long trace shows its start and the events leading to the failure.
  defp elide(trace) do
    count = length(trace)

    if count <= @head_events + @tail_events + 20 do
      {trace, 0, []}
    else
      {head, rest} = Enum.split(trace, @head_events)
      {_, tail} = Enum.split(rest, count - @head_events - @tail_events)
      {head, count - @head_events - @tail_events, tail}
    end
  end

  # "P.2@b (:server)": the node when not the home node, and the first registered name, or
  # else the module of the OTP behaviour the process runs: "P.1 (MyApp.Account)".
  defp labels(trace, nodes, modules) do
    registered =
      Enum.reduce(trace, %{}, fn {_, event}, acc ->
        case Trace.fields(event) do
          {:ok, :register, %{name: name, target: target, ok: true}} ->
            Map.put_new(acc, target, name)

          _ ->
            acc
        end
      end)

    trace
    |> Enum.map(fn {_, event} -> safe_actor(event) end)
    |> Enum.uniq()
    |> Map.new(fn name ->
      at = if node = nodes[name], do: "#{name}@#{node}", else: name

      cond do
        reg = registered[name] -> {name, "#{at} (#{inspect(reg)})"}
        module = modules[name] -> {name, "#{at} (#{module})"}
        true -> {name, at}
      end
    end)
  end

  defp replay_section(%{trace_path: nil, encoded_schedule: code} = bug) when is_binary(code) do
    why =
      case bug.trace_error do
        nil -> ""
        why -> "The trace file could not be written: #{why}.\n"
      end

    why <>
      "Replay this exact schedule (its seeds and options are in the encoding):\n" <>
      "    Lockstep.replay(#{body_expr(bug.replay_run)}, {:schedule, #{inspect(code)}})\n" <>
      repeat_line(bug)
  end

  defp replay_section(bug) do
    path = bug.trace_path || "(trace file not saved)"

    picture(bug) <>
      "Replay this exact schedule:\n" <>
      "    Lockstep.replay(#{body_expr(bug.replay_run)}, #{inspect(path)})\n" <>
      mix_line(bug.replay_run, path) <>
      repeat_line(bug)
  end

  defp picture(%{picture_path: path}) when is_binary(path),
    do: "A picture of this run (open it in a browser): #{path}\n"

  defp picture(_bug), do: ""

  # A named body is recorded in the trace file: the mix task finds it there.
  defp mix_line({_module, _function}, path), do: "    mix lockstep.replay #{path}\n"

  defp mix_line(nil, path) do
    "    mix lockstep.replay #{path} --run Module.function   # the body is an anonymous " <>
      "fn: define it as a public zero-arity function to name it here\n"
  end

  defp body_expr({module, function}),
    do: "&#{inspect(module)}.#{Macro.inspect_atom(:remote_call, function)}/0"

  defp body_expr(nil), do: "fn -> ... end"

  defp repeat_line(%{location: location, seed: seed}) when is_binary(location) do
    "Repeat the whole search (same seed, same schedules):\n    mix test #{location} --seed #{seed}\n"
  end

  defp repeat_line(%{seed: seed}) do
    "Repeat the whole search: pass seed: #{seed} (under ExUnit: mix test --seed #{seed}).\n"
  end

  # An event of an unexpected shape (a trace file from elsewhere) is shown as it is.
  defp safe_actor(event) do
    case Trace.actor(event) do
      name when is_binary(name) -> name
      other -> Trace.safe_inspect(other, [])
    end
  rescue
    _ -> "?"
  end

  defp kind(event) do
    case Trace.fields(event) do
      {:ok, tag, _fields} -> tag
      :error -> nil
    end
  end

  defp safe_describe(event, labels) do
    Trace.describe(event, labels)
  rescue
    _ -> Trace.safe_inspect(event, limit: 8, printable_limit: 48)
  end
end
