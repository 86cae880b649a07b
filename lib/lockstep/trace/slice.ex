defmodule Lockstep.Trace.Slice do
  @moduledoc """
  The causal slice of a trace: the events that happened before the failing step, and
  nothing else.

  A failure is explained by its causal past — Lamport's happened-before ("Time, clocks, and
  the ordering of events in a distributed system", CACM 1978) over the trace's events —
  and a long trace is mostly events that could not have influenced it. An event *e*
  happened before *f* when one of these chains them:

    * **program order**: *e* is an earlier event of *f*'s process (a delivery into a
      mailbox is not the receiver's own act: it follows its send instead);
    * **messages**: *e* is the send of the message *f* delivers, receives, drops, cuts or
      defers (matched per sender→receiver pair, oldest equal message first, as mailboxes
      keep them), or its delivery;
    * **lost messages**: *e* lost a message to *f*'s process — cut by a partition, or sent
      to a process cut off — and *f* is a later receive, wait or receive timeout of that
      process (what it got, or did not get, would have differed);
    * **spawn**: *e* spawned the process whose first event is *f*;
    * **signals**: *f* is an exit signal, a trapped `{:EXIT, …}`, a `:DOWN`, an `alive?`,
      a `link` or a `monitor` about a process whose last event before *f* is *e* (its
      exit, or the `exit/2` that sent the signal);
    * **shared objects**: *e* and *f* touch the same registered name, `:global` name, ETS
      table and key, atomics or counters cell (a whole-table operation touches every key
      of its table; an operation the trace shows only inspected, as trace files do,
      touches everything);
    * **the cluster**: node starts and stops, partitions, heals and ticks are ordered
      among themselves, and a `:nodedown` or a cut message follows the last of them;
    * **idle timers**: a timer fires (under the default `timers: :on_idle`) because nothing
      else could happen, so its firing follows the last event of every process before it —
      a `receive … after` that times out because a message was lost or never sent keeps
      the story of that message in its slice.

  The slice is closed under these: every event the failing step's events depend on,
  transitively. A `:deadlock` has no single failing event: its slice is the past of the
  last event of every process that had not exited.
  """

  alias Lockstep.Trace

  @typedoc "A trace: `{step, event}` pairs, as `Lockstep.BugFound`'s `trace` holds them."
  @type trace :: [{non_neg_integer(), Trace.event()}]

  @network [:deliver, :drop, :cut, :deferred]
  @cluster [:node_started, :node_stopped, :partitioned, :healed, :tick, :set_ticktime]
  @about_other %{
    exit_signal: :from,
    exit_trapped: :from,
    exit_ignored: :from,
    down: :from,
    alive: :of,
    link: :to,
    monitor: :target
  }

  @doc """
  The indexes (0-based positions in `trace`) of the events in the causal past of the
  failing step, those included. The failing step's events are those at `fail_step` of
  `process`, the failing process (all the step's events when it is `nil`: the others at
  that step — a linked process killed by the failure — are its consequences, not its
  causes); `kind` is the failure's kind (a `:deadlock` slices from the last event of every
  process that had not exited). Empty when `fail_step` is `nil` or no event is at it.
  """
  @spec indexes(trace(), non_neg_integer() | nil, atom(), String.t() | nil) ::
          MapSet.t(non_neg_integer())
  def indexes(trace, fail_step, kind \\ nil, process \\ nil) do
    events = trace |> Enum.map(fn {_step, event} -> event end) |> List.to_tuple()
    preds = predecessors(events)
    seeds = seeds(trace, events, fail_step, kind, process)
    close(seeds, preds, MapSet.new())
  end

  @doc """
  The slice of a `Lockstep.BugFound`'s failure in `trace` (the bug's trace, as the report
  shows it): `indexes/4` of its failing step, kind and process, except for a
  `:linearizability` failure, which is found when the iteration ends: its slice is the
  past of the history records of the operations that cannot be linearized (each
  operation's invocation and return, by its process at its steps).
  """
  @spec of_failure(trace(), map()) :: MapSet.t(non_neg_integer())
  def of_failure(trace, %{kind: :linearizability, details: %{ops: [_ | _] = ops}}) do
    wanted =
      for op <- ops,
          step <- [op[:invoke_step], op[:complete_step]],
          step != nil,
          into: MapSet.new(),
          do: {step, op[:process]}

    seeds =
      for {{step, {:nif, proc, _}}, i} <- Enum.with_index(trace),
          MapSet.member?(wanted, {step, proc}),
          do: i

    events = trace |> Enum.map(fn {_step, event} -> event end) |> List.to_tuple()
    close(seeds, predecessors(events), MapSet.new())
  end

  def of_failure(trace, bug), do: indexes(trace, bug.fail_step, bug.kind, bug.process)

  @doc """
  The slice itself: the events of `trace` (in order) whose indexes `indexes/4` returns.
  """
  @spec slice(trace(), non_neg_integer() | nil, atom(), String.t() | nil) :: trace()
  def slice(trace, fail_step, kind \\ nil, process \\ nil) do
    keep = indexes(trace, fail_step, kind, process)

    trace
    |> Enum.with_index()
    |> Enum.filter(fn {_, i} -> MapSet.member?(keep, i) end)
    |> Enum.map(fn {entry, _} -> entry end)
  end

  defp seeds(trace, events, fail_step, :deadlock, _process) do
    last =
      events
      |> Tuple.to_list()
      |> Enum.with_index()
      |> Enum.reduce(%{}, fn {event, i}, acc -> Map.put(acc, actor(event), {i, event}) end)

    for {_proc, {i, event}} <- last,
        tag(event) not in [:exit, :exit_signal],
        into: MapSet.new(at_step(trace, fail_step, nil)),
        do: i
  end

  defp seeds(trace, _events, fail_step, _kind, process),
    do: MapSet.new(at_step(trace, fail_step, process))

  defp at_step(_trace, nil, _process), do: []

  defp at_step(trace, step, process) do
    at = for {{s, event}, i} <- Enum.with_index(trace), s == step, do: {i, actor(event)}

    case for({i, ^process} <- at, do: i) do
      [] -> for {i, _} <- at, do: i
      own -> own
    end
  end

  # Depth-first over the predecessors, each event expanded once.
  defp close(seeds, preds, seen), do: walk(Enum.to_list(seeds), preds, seen)

  defp walk([], _preds, seen), do: seen

  defp walk([i | rest], preds, seen) do
    if MapSet.member?(seen, i),
      do: walk(rest, preds, seen),
      else: walk(Map.get(preds, i, []) ++ rest, preds, MapSet.put(seen, i))
  end

  @doc false
  # Where each message sent to a process of the run went, matched per sender→receiver pair
  # and message, oldest first (as mailboxes keep them): `sends` (index => {from, to, msg,
  # fate}), `arrived` (send => {tag, index} of its delivery, drop, cut or deferral),
  # `taken` (send => index of the receive that took it) and `source` (arrival or receive
  # index => send). The picture (Lockstep.Trace.SVG) draws its arrows from the same.
  @spec flows([Trace.event()]) :: map()
  def flows(events) do
    init = %{sends: %{}, arrived: %{}, taken: %{}, source: %{}, to_arrive: %{}, to_take: %{}}

    events
    |> Enum.with_index()
    |> Enum.reduce(init, fn {event, i}, st ->
      case Trace.fields(event) do
        {:ok, :send, %{to: to} = f} when is_binary(to) ->
          key = {f.proc, to, f.msg}
          st = %{st | sends: Map.put(st.sends, i, {f.proc, to, f.msg, f.fate})}
          st = %{st | to_take: enqueue(st.to_take, key, i)}
          # a send delivered at once has no arrival event of its own
          if f.fate == :delivered, do: st, else: %{st | to_arrive: enqueue(st.to_arrive, key, i)}

        {:ok, tag, f} when tag in @network ->
          case dequeue(st.to_arrive, {f.from, f.proc, f.msg}) do
            {nil, _} ->
              st

            {s, rest} ->
              %{
                st
                | to_arrive: rest,
                  arrived: Map.put(st.arrived, s, {tag, i}),
                  source: Map.put(st.source, i, s)
              }
          end

        {:ok, :receive, f} ->
          case dequeue(st.to_take, {f.from, f.proc, f.msg}) do
            {nil, _} ->
              st

            {s, rest} ->
              %{
                st
                | to_take: rest,
                  taken: Map.put(st.taken, s, i),
                  source: Map.put(st.source, i, s)
              }
          end

        _ ->
          st
      end
    end)
    |> Map.take([:sends, :arrived, :taken, :source])
  end

  defp enqueue(queues, key, i),
    do: Map.update(queues, key, :queue.from_list([i]), &:queue.in(i, &1))

  defp dequeue(queues, key) do
    with %{^key => queue} <- queues, {{:value, s}, rest} <- :queue.out(queue) do
      {s, Map.put(queues, key, rest)}
    else
      _ -> {nil, queues}
    end
  end

  # Direct predecessors of every event, in one pass over the trace.
  defp predecessors(events) do
    init = %{
      preds: %{},
      flows: flows(Tuple.to_list(events)),
      last: %{},
      started: MapSet.new(),
      spawner: %{},
      lost: %{},
      barrier: nil,
      active: MapSet.new(),
      arrivals_since: [],
      names: %{},
      objects: %{},
      cluster: nil
    }

    {acc, _} =
      events
      |> Tuple.to_list()
      |> Enum.reduce({init, 0}, fn event, {acc, i} -> {step(acc, i, event), i + 1} end)

    acc.preds
  end

  defp step(acc, i, event) do
    {tag, f} =
      case Trace.fields(event) do
        {:ok, tag, fields} -> {tag, fields}
        :error -> {nil, %{}}
      end

    proc = actor(event)

    edges =
      program_order(acc, tag, proc) ++
        spawned(acc, proc) ++
        message(acc, i, tag) ++
        lost(acc, tag, f, proc) ++
        about_other(acc, tag, f) ++
        shared(acc, tag, f) ++ cluster(acc, tag) ++ idle(acc, tag)

    acc
    |> Map.update!(:preds, &Map.put(&1, i, Enum.uniq(edges)))
    |> note(i, tag, f, proc)
  end

  defp program_order(_acc, tag, _proc) when tag in @network, do: []

  defp program_order(acc, _tag, proc) do
    case acc.last do
      %{^proc => j} -> [j]
      _ -> []
    end
  end

  # A process's first event follows the spawn that made it.
  defp spawned(acc, proc) do
    if MapSet.member?(acc.started, proc), do: [], else: List.wrap(acc.spawner[proc])
  end

  # An arrival follows its send; a receive follows the send of what it took and, for a
  # delayed message, its arrival.
  defp message(acc, i, tag) when tag in @network, do: List.wrap(acc.flows.source[i])

  defp message(acc, i, :receive) do
    case acc.flows.source[i] do
      nil ->
        []

      s ->
        case acc.flows.arrived[s] do
          {_tag, j} -> [s, j]
          nil -> [s]
        end
    end
  end

  defp message(_acc, _i, _tag), do: []

  # A loss follows the previous loss to the same process; a receive, a wait or a timeout
  # follows the last loss to its process.
  defp lost(acc, tag, f, proc) do
    case lost_target(tag, f) do
      nil when tag in [:receive, :block, :receive_timeout] -> List.wrap(acc.lost[proc])
      nil -> []
      target -> List.wrap(acc.lost[target])
    end
  end

  defp lost_target(:cut, f), do: f.proc
  defp lost_target(:send, %{fate: fate, to: to}) when fate in [:cut, :dropped], do: to
  defp lost_target(_tag, _f), do: nil

  defp about_other(acc, tag, f) do
    case @about_other do
      %{^tag => field} -> List.wrap(acc.last[Map.fetch!(f, field)])
      _ -> []
    end
  end

  defp shared(acc, tag, f) do
    case objects(tag, f) do
      [] -> []
      touched -> Enum.flat_map(touched, &previous(acc, &1))
    end
  end

  # The last event on `object`, and for the whole-table and everything objects the last on
  # anything they cover.
  defp previous(acc, {:name, _} = object), do: List.wrap(acc.names[object])
  defp previous(acc, {:global, _} = object), do: List.wrap(acc.names[object])

  defp previous(acc, object) do
    acc.objects
    |> Enum.filter(fn {other, _} -> overlap?(object, other) end)
    |> Enum.map(fn {_, j} -> j end)
  end

  defp overlap?(:everything, _), do: true
  defp overlap?(_, :everything), do: true
  defp overlap?({:table, t}, {:table, t}), do: true
  defp overlap?({:table, t}, {:key, t, _}), do: true
  defp overlap?({:key, t, _}, {:table, t}), do: true
  defp overlap?(same, same), do: true
  defp overlap?(_, _), do: false

  defp objects(tag, f) when tag in [:register, :unregister, :whereis], do: [{:name, f.name}]

  defp objects(tag, f) when tag in [:global_register, :global_unregister, :global_whereis],
    do: [{:global, f.name}]

  defp objects(:nif, f), do: [nif_object(f.kind)]
  defp objects(_tag, _f), do: []

  # `{op, table, key}` (ETS keys, atomics and counters cells), `{op, table}` (a whole
  # table); anything else, or an operation stored inspected, could touch anything.
  defp nif_object({op, table, key}) when is_atom(op) and op not in [:"$inspected"],
    do: {:key, table, key}

  defp nif_object({op, table}) when is_atom(op) and op != :"$inspected", do: {:table, table}
  defp nif_object(_kind), do: :everything

  defp cluster(acc, tag) when tag in @cluster or tag in [:nodedown, :cut, :deferred],
    do: List.wrap(acc.cluster)

  defp cluster(_acc, _tag), do: []

  # A timer firing follows everything before it: the last event of each process active
  # since the previous firing, the arrivals and losses of messages since then, and that
  # firing (which follows the rest).
  defp idle(acc, :timer_fired) do
    List.wrap(acc.barrier) ++
      Enum.map(acc.active, &Map.fetch!(acc.last, &1)) ++ acc.arrivals_since
  end

  defp idle(_acc, _tag), do: []

  # What later events may depend on.
  defp note(acc, i, tag, f, proc) do
    acc =
      if tag in @network do
        %{acc | arrivals_since: [i | acc.arrivals_since]}
      else
        acc
        |> Map.update!(:last, &Map.put(&1, proc, i))
        |> Map.update!(:started, &MapSet.put(&1, proc))
        |> Map.update!(:active, &MapSet.put(&1, proc))
      end

    acc =
      if tag == :timer_fired,
        do: %{acc | barrier: i, active: MapSet.new(), arrivals_since: []},
        else: acc

    acc =
      case tag do
        t when t in [:spawn, :spawn_link] ->
          Map.update!(acc, :spawner, &Map.put_new(&1, f.child, i))

        t when t in @cluster ->
          %{acc | cluster: i}

        _ ->
          acc
      end

    acc =
      case lost_target(tag, f) do
        nil -> acc
        target -> Map.update!(acc, :lost, &Map.put(&1, target, i))
      end

    Enum.reduce(objects(tag, f), acc, fn
      {kind, _} = object, acc when kind in [:name, :global] ->
        Map.update!(acc, :names, &Map.put(&1, object, i))

      object, acc ->
        Map.update!(acc, :objects, &Map.put(&1, object, i))
    end)
  end

  @doc false
  # The process an event is about, or nil for an event of an unexpected shape.
  def actor(event) do
    case Trace.actor(event) do
      name when is_binary(name) -> name
      _ -> nil
    end
  rescue
    _ -> nil
  end

  defp tag(event) when is_tuple(event) and tuple_size(event) > 0, do: elem(event, 0)
  defp tag(_event), do: nil
end
