defmodule Lockstep.Trace do
  events = [
    {:start, [proc: :proc], "the process runs for the first time"},
    {:spawn, [proc: :proc, child: :proc], "spawns `child`"},
    {:spawn_link, [proc: :proc, child: :proc], "spawns `child` and links to it"},
    {:send, [proc: :proc, to: :dest, msg: :term, fate: :fate],
     "sends `msg` to `to`; `fate` says where the message is when the send returns"},
    {:send_dropped, [proc: :proc, dest: :name_at, msg: :term],
     "sends to `{name, node}`, a name nobody has there: dropped, as in OTP"},
    {:send_unregistered, [proc: :proc, name: :send_name],
     "sends to a name nobody has registered: the send raises `ArgumentError`"},
    {:deliver, [from: :proc, proc: :proc, msg: :term],
     "a message in flight from `from` reaches the mailbox of `proc`"},
    {:drop, [from: :proc, proc: :proc, msg: :term],
     "a message in flight is dropped: `proc` had exited"},
    {:receive, [proc: :proc, from: :proc, msg: :term], "receives `msg`, sent by `from`"},
    {:block, [proc: :proc], "waits in a receive: nothing in its mailbox matches"},
    {:yield, [proc: :proc], "yields (`Lockstep.yield/0`)"},
    {:random, [proc: :proc, n: :integer, value: :integer],
     "`Lockstep.random(n)` returned `value`"},
    {:link, [proc: :proc, to: :proc], "links to `to`"},
    {:unlink, [proc: :proc, to: :proc], "unlinks `to`"},
    {:monitor, [proc: :proc, target: :proc], "monitors `target`"},
    {:demonitor, [proc: :proc, target: :proc_or_nil], "turns a monitor of `target` off"},
    {:trap_exit, [proc: :proc, on: :boolean], "sets its `:trap_exit` flag"},
    {:exit_sent, [proc: :proc, to: :proc, reason: :reason, fate: :fate],
     "sends an exit signal to `to`"},
    {:exit_trapped, [proc: :proc, from: :proc, reason: :reason],
     "an exit signal from `from` arrives as an `{:EXIT, from, reason}` message"},
    {:exit_ignored, [proc: :proc, from: :proc],
     "a `:normal` exit signal from `from` arrives and is ignored"},
    {:down, [proc: :proc, from: :proc, reason: :reason], "gets the `:DOWN` of `from`"},
    {:alive, [proc: :proc, of: :proc, alive: :boolean], "`Lockstep.alive?(of)` returned `alive`"},
    {:register, [proc: :proc, name: :name, target: :proc, ok: :boolean],
     "registers `target` as `name` on its node (`ok: false`: refused)"},
    {:unregister, [proc: :proc, name: :name, ok: :boolean], "unregisters `name`"},
    {:whereis, [proc: :proc, name: :name, found: :proc_or_nil], "looks `name` up"},
    {:now, [proc: :proc, ms: :integer], "reads the virtual clock"},
    {:sleep, [proc: :proc, ms: :integer], "sleeps `ms` of virtual time"},
    {:timer_started, [proc: :proc, ms: :integer], "starts a timer (`Lockstep.send_after/3`)"},
    {:timer_fired, [proc: :proc, now: :integer],
     "a timer of `proc` fires; the clock jumps to `now`"},
    {:timer_cancelled, [proc: :proc, left: :integer], "cancels a timer with `left` ms to go"},
    {:timer_read, [proc: :proc, left: :integer_or_nil],
     "reads a timer (`read_timer`): `left` ms to go, `nil` when it had fired or was cancelled"},
    {:receive_timeout, [proc: :proc], "a receive's `after` fires"},
    {:receive_external, [proc: :proc],
     "takes a message sent by a process outside the run (instrumented receive)"},
    {:nif, [proc: :proc, kind: :term],
     "a shared-state operation (`Lockstep.ETS`, `Atomics`, …); `kind` names it"},
    {:exit, [proc: :proc, reason: :reason], "the process exits, or is killed"},
    {:exit_signal, [from: :proc, proc: :proc, reason: :reason],
     "`proc` is killed by an exit signal from `from`"},
    {:cut, [from: :proc, proc: :proc, msg: :term],
     "a message in flight is lost to a `:drop` partition"},
    {:deferred, [from: :proc, proc: :proc, msg: :term],
     "a message in flight is held by a `:defer` partition until the heal"},
    {:node_started, [proc: :proc, node: :node], "starts a simulated node"},
    {:node_stopped, [proc: :proc, node: :node], "stops a simulated node"},
    {:partitioned, [proc: :proc, a: :nodes, b: :nodes, mode: :mode],
     "cuts the nodes `a` from the nodes `b`"},
    {:healed, [proc: :proc, delivered: :integer],
     "heals every partition; `delivered` deferred messages go on"},
    {:tick, [proc: :proc, partition: :integer],
     "`net_ticktime` passes: connections across a cut are declared lost"},
    {:nodedown, [proc: :proc, node: :node], "gets `{:nodedown, node}`"},
    {:monitor_node, [proc: :proc, node: :node], "monitors `node`"},
    {:set_ticktime, [proc: :proc, ms: :integer], "sets the virtual `net_ticktime`"},
    {:global_register, [proc: :proc, name: :global_name, target: :proc, ok: :boolean],
     "`:global` registration of `name` for `target` (`ok`: `:yes`)"},
    {:global_unregister, [proc: :proc, name: :global_name], "`:global` unregistration"},
    {:global_whereis, [proc: :proc, name: :global_name, found: :proc_or_nil], "`:global` lookup"},
    {:global_wait, [proc: :proc, name: :global_name],
     "waits for `:global`'s lock: a node it reaches is cut off, not yet declared down"},
    {:global_conflict, [proc: :proc, name: :global_name, kept: :proc, killed: :proc],
     "a heal finds `name` registered on both sides: one holder is kept, the other killed"}
  ]

  decisions = [
    {:run, [proc: :proc], "run `proc`: it performs its pending operation"},
    {:deliver, [from: :proc, to: :proc],
     "deliver the oldest message (or signal) in flight from `from` to `to`"},
    {:fire, [owner: :proc, ordinal: :u32],
     "fire the `ordinal`-th timer (counted from 1) that `owner` created"},
    {:random, [value: :u64],
     "the value of a random draw: `Lockstep.random/1`, or a choice the engine leaves to the " <>
       "strategy (which holder a `:global` name conflict keeps)"}
  ]

  types = [
    proc: {"a process's spawn-tree name: `\"P\"`, `\"P.1\"`, `\"P.1.2\"`", []},
    proc_or_nil: {"a process name, or `nil`", [nil]},
    dest: {"a process name, or `:external` (a process outside the run)", [:external]},
    term: {"a term of the program (a message, an operation)", []},
    reason:
      {"an exit reason: `:normal`, `{class, reason, stacktrace}` for a process's own " <>
         "exit, the reason of a signal, or an atom Lockstep gives an exit it caused",
       [
         :normal,
         :killed,
         :noproc,
         :noconnection,
         :killed_outside_lockstep,
         :kill,
         :node_stopped,
         :global_name_conflict
       ]},
    fate: {"where a sent message is", [:delivered, :in_flight, :dropped, :cut, :deferred]},
    integer: {"a non-negative integer (ms for times)", []},
    integer_or_nil: {"a non-negative integer, or `nil`", [nil]},
    boolean: {"`true` or `false`", [true, false]},
    name: {"a registered name (an atom)", []},
    name_at: {"`{name, node}`", []},
    send_name: {"a registered name, or `{:global, name}`", [:global]},
    node: {"a simulated node", []},
    nodes: {"a list of simulated nodes", []},
    mode: {"a partition's mode", [:drop, :deferred]},
    global_name: {"a `:global` name (any term)", []},
    u32: {"an integer in `0..2^32-1`", []},
    u64: {"an integer in `0..2^64-1`", []}
  ]

  shape = fn tag, fields ->
    "`{" <>
      Enum.map_join([inspect(tag) | Enum.map(fields, &elem(&1, 0))], ", ", &to_string/1) <>
      "}`"
  end

  table = fn rows ->
    Enum.map_join(rows, "\n", fn {tag, fields, doc} -> "  * #{shape.(tag, fields)} — #{doc}" end)
  end

  @moduledoc """
  The vocabulary of traces and schedules: every kind of event a trace holds and every kind
  of decision a schedule holds, their fields, and how a report shows them.

  A trace (`Lockstep.BugFound`'s `trace`, `Lockstep.Controller.trace/1`, a trace file's
  events) is a list of `{step, event}`; a schedule (`BugFound`'s `schedule`, a trace
  file's) is a list of decisions. Processes appear under their spawn-tree names. This is
  the one list of both on the Elixir side: the report, the replay divergence message,
  `mix lockstep.dump_trace` and the trace-file checks all read it, and a test walks every
  kind through each of them and checks it against what the engine emits.

  In every event the field `proc` is the process the line of a report is about.

  ## Events

  #{table.(events)}

  ## Decisions

  #{table.(decisions)}

  ## Field types

  #{Enum.map_join(types, "\n", fn {type, {doc, _atoms}} -> "  * `#{type}` — #{doc}" end)}

  A message, reason or operation the session did not capture is
  `:"$lockstep_not_captured"`; in a trace file every field that is not a string, an atom
  or an integer is stored inspected, as `{:"$inspected", text}`.
  """

  @events events
  @decisions decisions
  @types types

  @event_fields Map.new(events, fn {tag, fields, _} -> {tag, Keyword.keys(fields)} end)
  @decision_fields Map.new(decisions, fn {tag, fields, _} -> {tag, fields} end)

  @payload_width 72
  @u32 0..4_294_967_295
  @u64 0..18_446_744_073_709_551_615

  @typedoc "One event of a trace; see the list above."
  @type event :: tuple()

  @typedoc "One decision of a schedule."
  @type decision ::
          {:run, String.t()}
          | {:deliver, String.t(), String.t()}
          | {:fire, String.t(), non_neg_integer()}
          | {:random, non_neg_integer()}

  @typedoc "A kind: its tag and its fields (after the tag), each with its type."
  @type kind :: {atom(), [{atom(), atom()}]}

  # The vocabulary ------------------------------------------------------------------------

  @doc "Every event kind, in the order listed above."
  @spec events() :: [kind()]
  def events, do: for({tag, fields, _doc} <- @events, do: {tag, fields})

  @doc "Every decision kind."
  @spec decisions() :: [kind()]
  def decisions, do: for({tag, fields, _doc} <- @decisions, do: {tag, fields})

  @doc """
  Every field type, with the atoms a field of that type may hold besides names and
  program terms (`fate: [:delivered, :in_flight, …]`).
  """
  @spec types() :: [{atom(), [atom()]}]
  def types, do: for({type, {_doc, atoms}} <- @types, do: {type, atoms})

  @doc """
  The atoms of the vocabulary: every tag and every atom a field may hold. A trace file
  needs no other atom of Lockstep's to load (see `Lockstep.TraceFile`).
  """
  @spec atoms() :: [atom()]
  def atoms do
    tags = Enum.map(@events, &elem(&1, 0)) ++ Enum.map(@decisions, &elem(&1, 0))
    constants = Enum.flat_map(@types, fn {_type, {_doc, atoms}} -> atoms end)
    Enum.uniq(tags ++ constants ++ [:"$lockstep_not_captured", :"$inspected"])
  end

  @doc """
  `{:ok, tag, fields}` for an event of a listed kind (`fields` maps each field name to its
  value), `:error` for anything else.
  """
  @spec fields(term()) :: {:ok, atom(), %{atom() => term()}} | :error
  def fields(event) when is_tuple(event) and tuple_size(event) > 0 do
    [tag | values] = Tuple.to_list(event)

    case @event_fields do
      %{^tag => names} when length(names) == length(values) ->
        {:ok, tag, Map.new(Enum.zip(names, values))}

      _ ->
        :error
    end
  end

  def fields(_event), do: :error

  @doc "Whether `event` is of a listed kind (a known tag with its number of fields)."
  @spec known?(term()) :: boolean()
  def known?(event), do: fields(event) != :error

  @doc """
  Whether `decision` is a decision a schedule may hold: a listed kind whose process names
  are spelled as the engine spells them and whose integers are in range.
  """
  @spec decision?(term()) :: boolean()
  def decision?(decision) when is_tuple(decision) and tuple_size(decision) > 0 do
    [tag | values] = Tuple.to_list(decision)

    case @decision_fields do
      %{^tag => fields} when length(fields) == length(values) ->
        fields |> Enum.zip(values) |> Enum.all?(fn {{_, type}, v} -> decision_field?(type, v) end)

      _ ->
        false
    end
  end

  def decision?(_decision), do: false

  defp decision_field?(:proc, v), do: proc_name?(v)
  defp decision_field?(:u32, v), do: is_integer(v) and v in @u32
  defp decision_field?(:u64, v), do: is_integer(v) and v in @u64

  @doc """
  Whether `name` is a process name as the engine spells it: `"P"`, then any number of
  `.n` with `n` in `1..2^32-1` (no leading zero).
  """
  @spec proc_name?(term()) :: boolean()
  def proc_name?(name) when is_binary(name) and byte_size(name) <= 4096 do
    case String.split(name, ".") do
      ["P" | path] -> Enum.all?(path, &path_part?/1)
      _ -> false
    end
  end

  def proc_name?(_name), do: false

  defp path_part?(part) do
    part =~ ~r/^[1-9][0-9]{0,9}$/ and String.to_integer(part) in @u32
  end

  # Rendering -----------------------------------------------------------------------------

  @doc """
  The process a report's line about `event` is about (its `proc` field). An event of no
  listed kind: its second element, as text.
  """
  @spec actor(term()) :: term()
  def actor(event) do
    case fields(event) do
      {:ok, _tag, %{proc: proc}} -> proc
      :error when is_tuple(event) and tuple_size(event) > 1 -> to_string(elem(event, 1))
      :error -> "?"
    end
  end

  @doc """
  What happened, in words, as a report's line shows it (`"sends :ping to P.1"`). An event
  of no listed kind (a trace file from elsewhere) is shown inspected.

  OTP's own traffic is shown as what it means rather than as its envelope (see
  `otp_message/1`): `"calls P.1 {:withdraw, 60}"`, `"replies {:ok, 40} to P.2"`,
  `"acknowledges its start to P: {:ok, P.1}"`; the request or reply, not the envelope, is
  what gets truncated. `labels` maps a process name to how the report shows it (`"P.1"`
  => `"P.1 (:account)"`), so a call names the server as the report's left column does.
  """
  @spec describe(term(), %{optional(String.t()) => String.t()}) :: String.t()
  def describe(event, labels \\ %{}) do
    case fields(event) do
      {:ok, tag, fields} when tag in [:send, :receive, :deliver] ->
        otp_text(tag, fields, otp_message(fields.msg), labels)

      {:ok, tag, fields} ->
        text(tag, fields)

      :error ->
        inspect(event)
    end
  end

  @doc """
  What a message of OTP's process machinery means: `{:call, request}` (a
  `{:"$gen_call", from, request}` of `GenServer.call`, `:gen_statem.call`, `:sys`…),
  `{:cast, request}` (`{:"$gen_cast", request}`), `{:reply, reply}` (`{[:alias | ref],
  reply}`: OTP 25's reply to a call's alias), `{:ack, return}` (`:proc_lib`'s start
  handshake, `{:ack, pid, return}`), `{:system, request}` (a `:sys` message), or `nil`
  for any other message.
  """
  @spec otp_message(term()) :: {:call | :cast | :reply | :ack | :system, term()} | nil
  def otp_message({:"$gen_call", {_from, _tag}, request}), do: {:call, request}
  def otp_message({:"$gen_cast", request}), do: {:cast, request}
  def otp_message({[:alias | ref], reply}) when is_reference(ref), do: {:reply, reply}
  def otp_message({:ack, _pid, return}), do: {:ack, return}
  def otp_message({:system, {_from, _tag}, request}), do: {:system, request}
  def otp_message(_message), do: nil

  defp otp_text(tag, f, nil, _labels), do: text(tag, f)

  defp otp_text(:send, f, {kind, term}, labels) do
    to = if f.to == :external, do: "a process outside the run", else: label(f.to, labels)

    words =
      case kind do
        :call -> "calls #{to} #{payload(term)}"
        :cast -> "casts #{payload(term)} to #{to}"
        :reply -> "replies #{payload(term)} to #{to}"
        :ack -> "acknowledges its start to #{to}: #{payload(term)}"
        :system -> "sends the system message #{payload(term)} to #{to}"
      end

    words <> fate_suffix(f.fate, to)
  end

  defp otp_text(tag, f, {kind, term}, labels) do
    what =
      case kind do
        :call -> "the call #{payload(term)}"
        :cast -> "the cast #{payload(term)}"
        :reply -> "the reply #{payload(term)}"
        :ack -> "the start acknowledgement #{payload(term)}"
        :system -> "the system message #{payload(term)}"
      end

    from = label(f.from, labels)

    if tag == :receive,
      do: "receives #{what} from #{from}",
      else: "gets #{what} from #{from} (delivered)"
  end

  defp label(proc, labels), do: Map.get(labels, proc, proc)

  defp text(:start, _), do: "starts"
  defp text(:spawn, f), do: "spawns #{f.child}"
  defp text(:spawn_link, f), do: "spawns and links #{f.child}"

  defp text(:send, f) do
    target = if f.to == :external, do: "a process outside the run", else: f.to
    "sends #{payload(f.msg)} to #{target}" <> fate_suffix(f.fate, target)
  end

  defp text(:send_dropped, f),
    do: "sends #{payload(f.msg)} to #{name_at(f.dest)}: nobody has that name, DROPPED"

  defp text(:send_unregistered, f),
    do: "sends to #{name(f.name)}, which nobody has registered: ArgumentError"

  defp text(:deliver, f), do: "gets #{payload(f.msg)} from #{f.from} (delivered)"
  defp text(:drop, f), do: "DROPPED #{payload(f.msg)} from #{f.from}: #{f.proc} had exited"
  defp text(:receive, f), do: "receives #{payload(f.msg)} from #{f.from}"
  defp text(:block, _), do: "waits: nothing in its mailbox matches"
  defp text(:yield, _), do: "yields"
  defp text(:random, f), do: "random(#{f.n}) = #{f.value}"
  defp text(:link, f), do: "links to #{f.to}"
  defp text(:unlink, f), do: "unlinks #{f.to}"
  defp text(:monitor, f), do: "monitors #{f.target}"
  defp text(:demonitor, f), do: "demonitors #{f.target}"
  defp text(:trap_exit, f), do: "traps exits: #{f.on}"

  defp text(:exit_sent, f),
    do: "sends exit signal #{payload(f.reason)} to #{f.to}" <> fate_suffix(f.fate, f.to)

  defp text(:exit_trapped, f), do: "gets {:EXIT, #{f.from}, #{payload(f.reason)}} (trapped)"
  defp text(:exit_ignored, f), do: "ignores a :normal exit signal from #{f.from}"
  defp text(:down, f), do: "gets :DOWN for #{f.from} (#{payload(f.reason)})"
  defp text(:alive, f), do: "alive?(#{f.of}) = #{f.alive}"
  defp text(:register, %{ok: true} = f), do: "registers #{f.target} as #{name(f.name)}"

  defp text(:register, %{ok: false} = f),
    do: "FAILS to register #{f.target} as #{name(f.name)} (taken)"

  defp text(:unregister, f), do: "unregisters #{name(f.name)} (#{f.ok})"
  defp text(:whereis, f), do: "whereis(#{name(f.name)}) = #{f.found || "nil"}"
  defp text(:now, f), do: "reads the clock: #{f.ms} ms"
  defp text(:sleep, f), do: "sleeps #{f.ms} ms"
  defp text(:timer_started, f), do: "starts a #{f.ms} ms timer"
  defp text(:timer_fired, f), do: "timer fires (clock #{f.now} ms)"
  defp text(:timer_cancelled, f), do: "cancels a timer (#{f.left} ms left)"
  defp text(:timer_read, %{left: nil}), do: "reads a timer: fired or cancelled"
  defp text(:timer_read, f), do: "reads a timer (#{f.left} ms left)"
  defp text(:receive_timeout, _), do: "receive times out"
  defp text(:receive_external, _), do: "receives a message from outside the run (external)"
  defp text(:nif, f), do: "shared state: #{payload(f.kind)}"
  defp text(:exit, f), do: exit_text(f.reason)

  defp text(:exit_signal, f),
    do: "killed by an exit signal from #{f.from} (#{short_reason(f.reason)})"

  defp text(:cut, f), do: "LOST to a partition: #{payload(f.msg)} from #{f.from}"
  defp text(:deferred, f), do: "held by a partition until heal: #{payload(f.msg)} from #{f.from}"
  defp text(:node_started, f), do: "starts node #{f.node}"
  defp text(:node_stopped, f), do: "STOPS node #{f.node}"
  defp text(:partitioned, f), do: "partitions #{nodes(f.a)} | #{nodes(f.b)} (#{f.mode})"
  defp text(:healed, f), do: "heals the partitions (#{f.delivered} deferred delivered)"
  defp text(:tick, _), do: "net_ticktime passes: connections across the cut are lost"
  defp text(:nodedown, f), do: "gets {:nodedown, #{f.node}}"
  defp text(:monitor_node, f), do: "monitors node #{f.node}"
  defp text(:set_ticktime, f), do: "sets net_ticktime to #{f.ms} ms"

  defp text(:global_register, f),
    do: "global register #{payload(f.name)} for #{f.target}: #{if f.ok, do: ":yes", else: ":no"}"

  defp text(:global_unregister, f), do: "global unregister #{payload(f.name)}"

  defp text(:global_whereis, f),
    do: "global whereis #{payload(f.name)} = #{f.found || ":undefined"}"

  defp text(:global_wait, f),
    do:
      "waits for :global's lock on #{payload(f.name)}: a node it reaches is cut off, not yet " <>
        "declared down"

  defp text(:global_conflict, f),
    do:
      "heal finds global #{payload(f.name)} registered on both sides: keeps #{f.kept}, " <>
        "kills #{f.killed} (as :global.random_exit_name/3)"

  defp exit_text(:normal), do: "exits normally"
  defp exit_text({:exit, reason, _}), do: "exits: #{payload(reason)}"

  defp exit_text({kind, reason, stacktrace}) when kind in [:error, :throw],
    do: "crashes: " <> first_line(banner(kind, reason, stacktrace))

  defp exit_text(:killed_outside_lockstep), do: "was killed from outside the run"

  defp exit_text(:global_name_conflict),
    do: "KILLED by :global's name conflict resolution (:killed)"

  defp exit_text({:"$inspected", "** (" <> _ = text}), do: "crashes: #{first_line(text)}"
  defp exit_text({:"$inspected", text}) when is_binary(text), do: "exits: #{first_line(text)}"
  defp exit_text(reason), do: "exits: #{payload(reason)}"

  defp fate_suffix(:in_flight, _), do: "  (in flight)"
  defp fate_suffix(:dropped, to), do: "  (DROPPED: #{to} has exited)"
  defp fate_suffix(:cut, _), do: "  (LOST to a partition)"
  defp fate_suffix(:deferred, _), do: "  (held by a partition)"
  defp fate_suffix(_, _), do: ""

  defp short_reason({kind, reason, _stack}) when kind in [:error, :exit, :throw] do
    case reason do
      %{__exception__: true} = e -> inspect(e.__struct__)
      other -> payload(other)
    end
  end

  defp short_reason(other), do: payload(other)

  # Registered names are atoms; in a trace file a `{:global, name}` is stored inspected.
  defp name(name) when is_atom(name), do: inspect(name)
  defp name(other), do: payload(other)

  defp name_at({:"$inspected", _text} = inspected), do: payload(inspected)
  defp name_at({name, node}), do: "{#{inspect(name)}, #{inspect(node)}}"
  defp name_at(other), do: payload(other)

  defp nodes(list) when is_list(list), do: inspect(list)
  defp nodes(other), do: payload(other)

  @doc """
  A decision in words, as the engine's schedule printer spells it (`"run P.1"`,
  `"deliver P.1 -> P"`, `"fire timer 2 of P"`, `"random 3"`). Anything else is shown
  inspected.
  """
  @spec describe_decision(term()) :: String.t()
  def describe_decision({:run, proc}), do: "run #{proc}"
  def describe_decision({:deliver, from, to}), do: "deliver #{from} -> #{to}"
  def describe_decision({:fire, owner, ordinal}), do: "fire timer #{ordinal} of #{owner}"
  def describe_decision({:random, value}), do: "random #{value}"
  def describe_decision(other), do: inspect(other)

  @doc "Decisions in words: `\"[run P, deliver P -> P.1]\"`."
  @spec describe_decisions([term()]) :: String.t()
  def describe_decisions(list) when is_list(list),
    do: "[" <> Enum.map_join(list, ", ", &describe_decision/1) <> "]"

  # Terms of the program --------------------------------------------------------------------
  #
  # Showing what the program under test sent, raised or exited with must never fail nor
  # run away: an exception whose message/1 raises, a struct whose Inspect implementation
  # raises or returns garbage, a huge message. Each falls back to what can still be shown.

  @doc false
  # A message or other program term, inspected and truncated to one report column.
  def payload({:"$inspected", text}), do: text
  def payload(:"$lockstep_not_captured"), do: "(not captured)"

  def payload(term) do
    text = safe_inspect(term, limit: 8, printable_limit: 48, width: :infinity)

    if String.length(text) > @payload_width,
      do: String.slice(text, 0, @payload_width - 1) <> "…",
      else: text
  end

  @doc false
  # `inspect/2` that cannot fail: a struct whose Inspect implementation breaks is shown
  # as a plain map, and a term that still cannot be inspected is described.
  def safe_inspect(term, opts) do
    inspect(term, opts)
  rescue
    _ -> safe_inspect_raw(term, opts)
  catch
    _, _ -> safe_inspect_raw(term, opts)
  end

  defp safe_inspect_raw(term, opts) do
    inspect(term, Keyword.put(opts, :structs, false))
  rescue
    _ -> "#<a term that cannot be inspected>"
  catch
    _, _ -> "#<a term that cannot be inspected>"
  end

  @doc false
  # `Exception.format_banner/3` that cannot fail.
  def banner(kind, reason, stacktrace) do
    Exception.format_banner(kind, reason, stacktrace)
  rescue
    _ -> fallback_banner(kind, reason)
  catch
    _, _ -> fallback_banner(kind, reason)
  end

  defp fallback_banner(:error, %module{__exception__: true} = exception) do
    message =
      try do
        case module.message(exception) do
          text when is_binary(text) -> text
          other -> "(its message/1 returned #{safe_inspect(other, [])}, not a string)"
        end
      rescue
        e -> "(its message/1 raised #{inspect(e.__struct__)}) " <> safe_inspect(exception, [])
      catch
        kind, _ -> "(its message/1 failed with #{kind}) " <> safe_inspect(exception, [])
      end

    "** (#{inspect(module)}) #{message}"
  end

  defp fallback_banner(:error, reason), do: "** (ErlangError) " <> safe_inspect(reason, [])
  defp fallback_banner(kind, reason), do: "** (#{kind}) " <> safe_inspect(reason, [])

  @doc false
  # `text` cut to `limit` bytes (on a character boundary), saying how much was cut.
  def cap(text, limit) when byte_size(text) <= limit, do: text

  def cap(text, limit) do
    head = valid_prefix(binary_part(text, 0, limit))
    head <> "… (#{byte_size(text) - byte_size(head)} more bytes)"
  end

  # A cut may split a UTF-8 sequence: drop its incomplete end.
  defp valid_prefix(bin) do
    if String.valid?(bin), do: bin, else: valid_prefix(binary_part(bin, 0, byte_size(bin) - 1))
  end

  defp first_line(text) do
    [line | _] = :binary.split(text, "\n")
    cap(line, 240)
  end
end
