defmodule Lockstep.Uncontrolled do
  @moduledoc false
  # "No silent pass" (SPEC §9): finding concurrency that escaped the run's control, so a run
  # that passes while it did says so (a warning and `Summary.uncontrolled`), or fails as
  # `:uncontrolled` under `strict_control: true`.
  #
  # Two things escape: messages that reach a managed process around Lockstep (a plain
  # `send` from code Lockstep does not control: the run's messages are `{tag, :msg, seq,
  # payload}` and its wake-ups `{tag, :go, result}`; `{:EXIT, _, _}` is the runtime's own
  # real trap), and processes a managed process starts outside Lockstep (`Kernel.spawn`,
  # `Task.async`, `GenServer.start_link` in uninstrumented code), seen through the real
  # links, monitors and `:monitored_by` of the managed process — managed processes have
  # none of their own, since their links and monitors are simulated — and confirmed by
  # the other process's `:parent`, `$ancestors` or `$callers`.
  #
  # Where it looks, so that nothing is paid per step: once when a managed process's body
  # ends or a simulated signal kills it (the process looks at itself: one `process_info`
  # call, and its mailbox only when it is not empty), and once at the end of the iteration
  # for each process still alive (the owner looks, before it kills them). A message a bare
  # `receive` took before then, from a process that had exited by then and was not linked
  # or monitored, leaves no trace and is not found.

  alias Lockstep.Session

  @own_items [:message_queue_len, :links, :monitors, :monitored_by]

  # Processes that plain library calls start for the caller and that carry no concurrency
  # of the program's own (File.open's io server).
  @benign_initial_calls [{:file_io_server, :init, 1}]

  @doc false
  # The calling managed process, as its body ends or it is killed: notes what it finds.
  def check_self(session, id, tag) do
    case find(self(), tag) do
      nil -> :ok
      report -> Session.note_uncontrolled(session, id, report)
    end
  end

  @doc false
  # The owner, at the end of an iteration, for each managed process still alive (`pids`
  # as `Session.teardown_view/1` lists them): whether it noted anything.
  def check_left(session, pids, tag) do
    noted =
      for {id, pid, false} <- pids,
          is_pid(pid),
          report = find(pid, tag),
          do: Session.note_uncontrolled(session, id, report)

    noted != []
  end

  # `nil`, or `%{messages: [text], started: [%{pid:, call:, location:, module:}]}`.
  #
  # The usual answer comes first and costs one `process_info` call: an empty mailbox, no
  # real link or monitor, and no process among the watchers (the NIF's resource monitor
  # is listed there, as a resource). Only the rest is looked at item by item.
  defp find(pid, tag) do
    case :erlang.process_info(pid, @own_items) do
      [message_queue_len: 0, links: [], monitors: [], monitored_by: watchers] ->
        if no_pid?(watchers), do: nil, else: look(pid, tag, 0, [], [], watchers)

      [message_queue_len: queued, links: links, monitors: monitors, monitored_by: watchers] ->
        look(pid, tag, queued, links, monitors, watchers)

      _ ->
        nil
    end
  end

  defp no_pid?([]), do: true
  defp no_pid?([p | _]) when is_pid(p), do: false
  defp no_pid?([_ | rest]), do: no_pid?(rest)

  # A process looking at itself looks as an unmanaged one: what it calls here (the code
  # and file servers, through OTP's instrumented `gen`) must not become sync points, least
  # of all once its iteration is over.
  defp look(pid, tag, queued, links, monitors, watchers) when pid == self() do
    case :erlang.erase(:"$lockstep") do
      :undefined ->
        look_at(pid, tag, queued, links, monitors, watchers)

      context ->
        try do
          look_at(pid, tag, queued, links, monitors, watchers)
        after
          :erlang.put(:"$lockstep", context)
        end
    end
  end

  defp look(pid, tag, queued, links, monitors, watchers),
    do: look_at(pid, tag, queued, links, monitors, watchers)

  defp look_at(pid, tag, queued, links, monitors, watchers) do
    {messages, linked_gone} = if queued > 0, do: stray_messages(pid, tag), else: {[], []}

    # Real links and monitors of a managed process come from code Lockstep does not
    # control: each is looked at. Among the processes monitoring it (the run's owner
    # watches it), only one it started itself can be such code — a cheap `:parent`
    # test first, so the owner's dictionary is never copied at every process end.
    related =
      Enum.uniq(
        for(p <- links, is_pid(p), do: p) ++ for({:process, p} <- monitors, is_pid(p), do: p)
      )

    children = for p <- watchers, is_pid(p), p not in related, child_of?(p, pid), do: p

    started = for(p <- related ++ children, info = started_by(p, pid), do: info) ++ linked_gone

    if messages == [] and started == [],
      do: nil,
      else: %{messages: messages, started: started}
  end

  defp stray_messages(pid, tag) do
    case Process.info(pid, :messages) do
      {:messages, messages} ->
        stray = for message <- messages, stray?(message, tag), do: Lockstep.Trace.payload(message)
        {stray, Enum.flat_map(messages, &linked_gone/1)}

      nil ->
        {[], []}
    end
  end

  defp stray?({tag, _, _, _}, tag), do: false
  defp stray?({tag, _, _}, tag), do: false
  defp stray?({:EXIT, _, _}, _tag), do: false
  defp stray?(message, _tag), do: not Lockstep.ETS.transfer_copy?(message)

  # Managed processes trap exits for real and have no real links of their own, and an
  # abnormal exit signal from outside ends them at once: an `{:EXIT, pid, :normal}` in the
  # mailbox is a process linked to it outside Lockstep (a `Task`, a `spawn_link`) that has
  # since ended. Where it ran is gone with it.
  defp linked_gone({:EXIT, p, :normal}) when is_pid(p),
    do: [
      %{
        pid: inspect(p),
        call: "linked outside Lockstep, since exited",
        location: nil,
        module: nil
      }
    ]

  defp linked_gone(_message), do: []

  # A description of `p` if managed process `pid` started it (or it works for it).
  defp child_of?(p, pid) when node(p) == node(), do: Process.info(p, :parent) == {:parent, pid}
  defp child_of?(_p, _pid), do: false

  defp started_by(p, pid) when node(p) == node() do
    with [parent: parent, dictionary: dict, initial_call: initial] <-
           Process.info(p, [:parent, :dictionary, :initial_call]),
         true <-
           parent == pid or pid in List.wrap(dict[:"$ancestors"]) or
             pid in List.wrap(dict[:"$callers"]),
         call = Keyword.get(dict, :"$initial_call", initial),
         true <- call not in @benign_initial_calls do
      {:current_stacktrace, stack} =
        Process.info(p, :current_stacktrace) || {:current_stacktrace, []}

      {module, location} = user_frame(stack, call)
      %{pid: inspect(p), call: mfa_text(call), location: location, module: module}
    else
      _ -> nil
    end
  end

  defp started_by(_p, _pid), do: nil

  # The first frame of the user's code in the process's stacktrace (the module to
  # instrument), else its initial call.
  defp user_frame(stack, {module, _, _}) do
    case Enum.find(stack, fn {m, _f, _a, _loc} -> user_module?(m) end) do
      {m, _f, _a, loc} -> {m, location(loc)}
      nil -> {if(user_module?(module), do: module), nil}
    end
  end

  defp location(loc) do
    case {loc[:file], loc[:line]} do
      {nil, _} -> nil
      {file, nil} -> Path.relative_to_cwd(to_string(file))
      {file, line} -> "#{Path.relative_to_cwd(to_string(file))}:#{line}"
    end
  end

  # Not OTP's, Elixir's or Lockstep's own code.
  defp user_module?(module) do
    case Atom.to_string(module) do
      "Elixir.Lockstep." <> _ -> false
      _ -> not system_module?(module)
    end
  end

  defp system_module?(module) do
    case :code.which(module) do
      :preloaded ->
        true

      path when is_list(path) and path != [] ->
        path = List.to_string(path)
        String.starts_with?(path, List.to_string(:code.root_dir())) or elixir_path?(path)

      # Loaded from memory (a test module), cover-compiled, or not loaded at all.
      _ ->
        false
    end
  end

  defp elixir_path?(path) do
    Enum.any?([:elixir, :ex_unit, :logger, :mix, :iex, :eex], fn app ->
      case :code.lib_dir(app) do
        dir when is_list(dir) -> String.starts_with?(path, List.to_string(dir))
        _ -> false
      end
    end)
  end

  defp mfa_text({m, f, a}) when is_atom(m) and is_atom(f) and is_integer(a),
    do: Exception.format_mfa(m, f, a)

  defp mfa_text(other), do: inspect(other)

  @doc false
  # One paragraph for the warning and the report: `found` is `[{process name, report}]`.
  def describe(found) do
    lines =
      Enum.flat_map(found, fn {name, %{messages: messages, started: started}} ->
        msg_line =
          case messages do
            [] ->
              []

            _ ->
              shown = messages |> Enum.take(3) |> Enum.join(", ")
              more = if length(messages) > 3, do: ", …", else: ""

              [
                "#{name} received #{length(messages)} message(s) that did not come through " <>
                  "Lockstep: #{shown}#{more}"
              ]
          end

        spawn_lines =
          for s <- started do
            where = if s.location, do: " at #{s.location}", else: ""
            "#{name} started #{s.pid} (#{s.call}#{where}), a process Lockstep does not manage"
          end

        msg_line ++ spawn_lines
      end)

    modules =
      found
      |> Enum.flat_map(fn {_name, report} -> Enum.map(report.started, & &1.module) end)
      |> Enum.reject(&is_nil/1)
      |> Enum.uniq()

    fix =
      case modules do
        [] ->
          "add the module that sends, receives or spawns them to :instrument " <>
            "(Lockstep.run(fun, instrument: [TheModule])), or use Lockstep.spawn/send/receive"

        mods ->
          listed = Enum.map_join(mods, ", ", &inspect/1)

          "add #{listed} to :instrument (Lockstep.run(fun, instrument: [#{listed}])), or " <>
            "use Lockstep.spawn/send/receive there"
      end

    "concurrency escaped Lockstep's control, so these interleavings were not explored " <>
      "and the run may pass while a bug hides there: " <>
      Enum.join(lines, "; ") <> ". To bring it under control, " <> fix
  end
end
