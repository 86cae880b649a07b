defmodule Lockstep.TraceVocabularyTest.Programs do
  @moduledoc false
  # Programs that make the engine emit every kind of event and decision Lockstep.Trace
  # lists. Each runs under a controller with capture on, over a few fixed seeds (the
  # union of what they emit is the same on every run: same code, options and seeds give
  # the same trace).
  # its plain send and receive (the program `outside`) are instrumented
  use Lockstep.Instrumented
  require Lockstep
  alias Lockstep.{Cluster, Global}

  # A message from a process outside the run, taken by an instrumented receive.
  def outside do
    fn ->
      # a dynamic call is not rewritten: a real process, outside the run
      outside =
        :erlang.apply(Kernel, :spawn, [
          fn ->
            receive do
              {:ping, from} -> :erlang.send(from, :pong)
            end
          end
        ])

      send(outside, {:ping, self()})

      receive do
        :pong -> :ok
      end
    end
  end

  # Processes, messages, links, monitors, signals, names, time, shared state.
  def processes do
    fn ->
      root = self()
      _ = Lockstep.random(3)
      _ = Lockstep.now()
      Lockstep.sleep(5)
      Lockstep.yield()

      echo =
        Lockstep.spawn(fn ->
          Lockstep.receive do
            {:ping, from} -> Lockstep.send(from, :pong)
          end

          Lockstep.receive(do: (:stop -> :ok))
        end)

      Lockstep.register(:echo, echo)
      ^echo = Lockstep.whereis(:echo)
      Lockstep.send(:echo, {:ping, root})
      :pong = Lockstep.recv()
      true = Lockstep.unregister(:echo)
      Lockstep.send(echo, :stop)

      try do
        Lockstep.send(:nobody_has_this_name, :hello)
      rescue
        ArgumentError -> :ok
      end

      # A trapping process gets an exit signal as a message; a non-trapping one ignores
      # a :normal signal and dies of :kill.
      trapper =
        Lockstep.spawn(fn ->
          Lockstep.flag(:trap_exit, true)
          Lockstep.send(root, :trapping)
          Lockstep.receive(do: ({:EXIT, _, :bye} -> :ok))
        end)

      :trapping = Lockstep.recv()
      Lockstep.exit(trapper, :bye)

      victim = Lockstep.spawn(fn -> Lockstep.receive(do: (:never -> :ok)) end)
      ref = Lockstep.monitor(victim)
      true = Lockstep.alive?(victim)
      Lockstep.exit(victim, :normal)
      Lockstep.exit(victim, :kill)
      Lockstep.receive(do: ({:DOWN, ^ref, :process, _, _} -> :ok))

      # Link and unlink; monitor and demonitor.
      buddy = Lockstep.spawn_link(fn -> Lockstep.receive(do: (:stop -> :ok)) end)
      Lockstep.unlink(buddy)
      Lockstep.link(buddy)
      Lockstep.unlink(buddy)
      Lockstep.demonitor(Lockstep.monitor(buddy))
      Lockstep.send(buddy, :stop)

      # Timers: one fires, one is cancelled, a receive times out.
      Lockstep.send_after(root, :tick, 10)
      :tick = Lockstep.recv()
      t = Lockstep.send_after(root, :never, 1_000)
      _ = Lockstep.Instrument.Ops.Time.read_timer(t)
      Lockstep.cancel_timer(t)
      false = Lockstep.Instrument.Ops.Time.read_timer(t)
      Lockstep.receive(do: (:nothing -> :ok), after: (5 -> :ok))

      # Shared state.
      table = Lockstep.ETS.new(:vocabulary, [:named_table, :public])
      Lockstep.ETS.insert(table, {:k, 1})

      # A message to a process that exits before it is delivered (delivery: :delayed).
      short = Lockstep.spawn(fn -> :ok end)
      Lockstep.send(short, :late)
      Lockstep.sleep(1)
      Lockstep.send(short, :later)

      # Left blocked when the root returns: killed by the teardown.
      Lockstep.spawn(fn -> Lockstep.receive(do: (:never -> :ok)) end)
      :ok
    end
  end

  # Simulated nodes, partitions, node monitors, ticks.
  def cluster do
    fn ->
      root = self()
      Cluster.set_ticktime(1_000)
      [:a, :b] = Cluster.start_nodes([:a, :b])
      Lockstep.send({:nobody, :a}, :hello)

      on_b = Cluster.spawn(:b, fn -> Lockstep.receive(do: (:never -> :ok)) end)
      Cluster.monitor_node(:b)
      Lockstep.send(on_b, :dropped_by_the_cut)
      :ok = Cluster.partition([:nonode@nohost, :a], [:b], :drop)
      Lockstep.send(on_b, :sent_across_the_cut)
      Lockstep.sleep(5_000)
      Lockstep.receive(do: ({:nodedown, :b} -> :ok))
      :ok = Cluster.heal()

      on_a = Cluster.spawn(:a, fn -> Lockstep.receive(do: (:never -> :ok)) end)
      Lockstep.send(on_a, :held)
      :ok = Cluster.partition([:nonode@nohost], [:a], :defer)
      Lockstep.send(on_a, :held_too)
      :ok = Cluster.heal()
      _ = root
      :ok = Cluster.stop_node(:a)
      :ok
    end
  end

  # :global's split brain: two candidates on either side of a cut register one name; a
  # registration waits for the lock while the cut is not yet declared down, and the heal
  # finds the name held on both sides and kills one holder.
  def split_brain do
    fn ->
      [:a, :b] = Cluster.start_nodes([:a, :b])
      candidate = fn -> Lockstep.receive(do: (:stop -> :ok)) end

      candidates =
        for node <- [:a, :b] do
          Cluster.spawn(node, fn ->
            Global.register_name(:leader, self())
            candidate.()
          end)
        end

      :ok = Cluster.partition([:nonode@nohost, :a], [:b], :defer)
      Lockstep.sleep(20_000)
      :ok = Cluster.heal()
      Lockstep.sleep(10)
      Enum.each(candidates, &Lockstep.send(&1, :stop))
    end
  end

  # :global: registration, lookup, a send to a free name, unregistration.
  def global do
    fn ->
      [:a] = Cluster.start_nodes([:a])
      :yes = Global.register_name(:leader, self())
      _ = Global.whereis_name(:leader)

      try do
        Global.send(:nobody, :hello)
      catch
        :exit, {:badarg, {:nobody, :hello}} -> :ok
      end

      :ok = Global.unregister_name(:leader)
      :ok
    end
  end
end

defmodule Lockstep.TraceVocabularyTest do
  # STYLE 14: one vocabulary, walked by a test. Lockstep.Trace lists every kind of event
  # and decision once on the Elixir side; this walks one of each (built from that list)
  # through every consumer — the report, the replay divergence message, a saved trace
  # file and `mix lockstep.dump_trace` — and checks the list against what the NIF emits.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  import Lockstep.TestSupport, only: [tmp_dir!: 0]

  alias Lockstep.{BugFound, Controller, ReplayDivergence, Report, Session, Trace, TraceFile}
  alias Lockstep.TraceVocabularyTest.Programs
  alias Mix.Tasks.Lockstep.DumpTrace

  # Events and decisions, one of each kind and value -----------------------------------------

  # Values for a field of each type: the first makes the kind's base event; each other
  # value, and each atom Lockstep.Trace lists for the type, makes one more variant.
  defp values(:proc), do: ["P.1"]
  defp values(:proc_or_nil), do: ["P.2"]
  defp values(:dest), do: ["P.1"]

  # OTP's traffic too (Trace.otp_message/1): a call, a cast, a reply to an alias, a
  # :proc_lib ack and a :sys message, which a report words as what they mean.
  defp values(:term) do
    from = {%Lockstep.ProcRef{name: "P.2"}, [:alias | make_ref()]}

    [
      {:value, 1},
      "text",
      %Lockstep.ProcRef{name: "P.2"},
      :"$lockstep_not_captured",
      {:"$gen_call", from, {:withdraw, 60}},
      {:"$gen_cast", {:put, 1}},
      {[:alias | make_ref()], {:ok, 40}},
      {:ack, %Lockstep.ProcRef{name: "P.2"}, {:ok, %Lockstep.ProcRef{name: "P.2"}}},
      {:system, from, :get_state}
    ]
  end

  defp values(:reason) do
    [
      {:error, %RuntimeError{message: "boom"}, []},
      {:throw, :ball, []},
      {:exit, :shutdown, []},
      {:shutdown, :done},
      :"$lockstep_not_captured"
    ]
  end

  defp values(:integer), do: [42, 0]
  defp values(:integer_or_nil), do: [42]
  defp values(:boolean), do: []
  defp values(:name), do: [:echo]
  defp values(:name_at), do: [{:echo, :a@host}]
  defp values(:send_name), do: [:echo, {:global, {:leader, 1}}]
  defp values(:node), do: [:a@host]
  defp values(:nodes), do: [[:nonode@nohost, :a@host]]
  defp values(:global_name), do: [{:leader, 1}, :leader]
  defp values(type) when type in [:fate, :mode], do: []
  defp values(:u32), do: [2, 0, 4_294_967_295]
  defp values(:u64), do: [3, 0, 18_446_744_073_709_551_615]

  defp values_of(type), do: Enum.uniq(values(type) ++ Keyword.fetch!(Trace.types(), type))

  defp variants({tag, fields}) do
    base = Enum.map(fields, fn {_name, type} -> hd(values_of(type)) end)

    others =
      for {{_name, type}, i} <- Enum.with_index(fields),
          value <- tl(values_of(type)),
          do: List.replace_at(base, i, value)

    Enum.uniq(for values <- [base | others], do: List.to_tuple([tag | values]))
  end

  defp sample_events, do: Enum.flat_map(Trace.events(), &variants/1)
  defp sample_decisions, do: Enum.flat_map(Trace.decisions(), &variants/1)

  defp numbered(events), do: Enum.with_index(events, fn event, i -> {i + 1, event} end)

  # A report falls back to `inspect` of an event it cannot describe: a text starting
  # with "{:" in a line's text column (two spaces after the process). Nor may a field's
  # own encoding show through (a trace file's {:"$inspected", text}, an uncaptured value).
  defp refute_fallback(text) do
    refute text =~ ~r/  \{:/, "an event was shown inspected:\n#{text}"
    refute text =~ "$inspected", "a field was shown in its file encoding:\n#{text}"
    refute text =~ "$lockstep", "a marker was shown as it is:\n#{text}"
  end

  defp bug(trace, schedule) do
    BugFound.new(
      kind: :crash,
      reason: {:error, %RuntimeError{message: "walked"}, []},
      process: "P.1",
      details: nil,
      iteration: 1,
      seed: 7,
      iter_seed: 11,
      strategy: :random,
      schedule: schedule,
      trace: trace,
      name: "vocabulary walk",
      nondeterminism: nil,
      steps: length(trace),
      pid_names: %{},
      proc_nodes: %{},
      replay_run: nil,
      location: nil
    )
  end

  describe "the vocabulary" do
    test "lists each kind once, with `proc` (the process a line is about) in every event" do
      tags = Enum.map(Trace.events(), &elem(&1, 0))
      assert tags == Enum.uniq(tags)

      for {tag, fields} <- Trace.events() do
        assert Keyword.has_key?(fields, :proc), "#{tag} has no :proc field"
        assert Enum.all?(fields, fn {_, type} -> Keyword.has_key?(Trace.types(), type) end)
      end

      assert Enum.map(Trace.decisions(), &elem(&1, 0)) == [:run, :deliver, :fire, :random]
    end

    test "every atom it names loads from a trace file" do
      assert Trace.atoms() -- TraceFile.trace_atoms() == []
    end
  end

  describe "every event kind" do
    test "is described in words, never inspected" do
      for event <- sample_events() do
        assert Trace.known?(event)
        refute_fallback("  " <> Trace.describe(event))
        assert Trace.actor(event) == elem(event, 1 + field_index(event, :proc))
      end
    end

    test "goes through the report, full and compact" do
      events = sample_events()
      bug = bug(numbered(events), [{:run, "P"}])
      # The report names a process as its left column does (a :register event of the
      # samples registers P.1 as :echo): OTP calls name their server that way.
      labels = %{"P.1" => "P.1 (:echo)"}

      for style <- [:full, :compact] do
        report = Report.format(bug, colour: false, style: style, slice: false)
        refute_fallback(report)

        for event <- events, style == :full do
          assert String.contains?(report, "  " <> Trace.describe(event, labels)),
                 "the report does not show #{inspect(event)}"
        end
      end
    end

    test "goes through the replay divergence message" do
      events = numbered(sample_events())

      message =
        Exception.message(%ReplayDivergence{
          step: length(events) + 1,
          expected: {:run, "P"},
          got: [{:run, "P.1"}],
          path: "walk.lockstep",
          events: events
        })

      refute_fallback(message)

      for {step, event} <- events do
        assert String.contains?(
                 message,
                 "#{step}  #{Trace.actor(event)}  #{Trace.describe(event)}"
               )
      end
    end

    test "goes through a saved trace file and every format of mix lockstep.dump_trace" do
      dir = tmp_dir!()
      events = sample_events()
      cfg = Lockstep.Options.validate!(fn -> :ok end, name: "vocabulary walk", trace_dir: dir)
      assert {:ok, path} = TraceFile.save(bug(numbered(events), sample_decisions()), cfg)

      # Saved, every event keeps its kind (fields that are not strings, atoms or integers
      # are stored inspected) and still reads as words.
      file = TraceFile.load!(path)
      assert length(file.events) == length(events)

      for {{_step, saved}, event} <- Enum.zip(file.events, events) do
        assert elem(saved, 0) == elem(event, 0)
        assert Trace.known?(saved)
        refute_fallback("  " <> Trace.describe(saved))
      end

      pretty = capture_io(fn -> DumpTrace.run([path]) end)
      refute_fallback(pretty)

      for {_step, saved} <- file.events do
        assert String.contains?(pretty, "  " <> Trace.describe(saved)),
               "dump_trace does not show #{inspect(saved)}"
      end

      refute_fallback(capture_io(fn -> DumpTrace.run([path, "--format", "compact"]) end))

      lines =
        capture_io(fn -> DumpTrace.run([path, "--format", "events"]) end)
        |> String.split("\n", trim: true)

      assert Enum.map(lines, &elem(Code.eval_string(&1), 0)) == file.events
    end
  end

  describe "every decision kind" do
    test "is valid in a schedule and described in words" do
      for decision <- sample_decisions() do
        assert Trace.decision?(decision), inspect(decision)
        refute String.starts_with?(Trace.describe_decision(decision), "{")
      end

      refute Trace.decision?({:run, "Q"})
      refute Trace.decision?({:fire, "P", 4_294_967_296})
      refute Trace.decision?({:teleport, "P"})
    end

    test "goes through the replay divergence message" do
      decisions = sample_decisions()

      for expected <- [nil | decisions], got <- [[], decisions] do
        message =
          Exception.message(%ReplayDivergence{
            step: 3,
            expected: expected,
            got: got,
            path: "walk.lockstep"
          })

        refute message =~ "{:", message

        for d <- [expected | got], d != nil do
          assert String.contains?(message, Trace.describe_decision(d))
        end
      end
    end

    test "goes through the report's nondeterminism warning" do
      decisions = sample_decisions()

      for expected <- [nil | decisions] do
        divergence = %Session.Divergence{step: 3, expected: expected, got: decisions}

        note =
          Lockstep.Runner.nondeterminism_note(%{kind: :crash}, %{
            kind: :pass,
            outcome: {:diverged, divergence}
          })

        report = Report.format(%{bug([], decisions) | nondeterminism: note}, colour: false)
        assert report =~ "WARNING: re-running the failing schedule"
        assert String.contains?(report, Trace.describe_decisions(decisions))
        refute note =~ "{:"
      end
    end

    test "goes through a saved trace file and mix lockstep.dump_trace --format schedule" do
      dir = tmp_dir!()
      decisions = sample_decisions()
      cfg = Lockstep.Options.validate!(fn -> :ok end, name: "vocabulary walk", trace_dir: dir)
      assert {:ok, path} = TraceFile.save(bug([], decisions), cfg)
      assert TraceFile.load!(path).schedule == decisions

      lines =
        capture_io(fn -> DumpTrace.run([path, "--format", "schedule"]) end)
        |> String.split("\n", trim: true)

      assert lines ==
               decisions
               |> Enum.with_index(1)
               |> Enum.map(fn {d, i} -> "#{i}  #{Trace.describe_decision(d)}" end)
    end
  end

  # What the NIF emits -------------------------------------------------------------------

  @seeds 1..12

  defp run(program, opts) do
    {:ok, ctl} = Controller.start_link(opts)
    Controller.spawn_root(ctl, program)
    result = Controller.await_done(ctl)
    GenServer.stop(ctl)
    result
  end

  defp emitted do
    for {program, opts} <- [
          {Programs.processes(), [delivery: :delayed, timers: :anytime]},
          {Programs.processes(), []},
          {Programs.cluster(), []},
          {Programs.global(), []},
          {Programs.split_brain(), []},
          {Programs.outside(), []}
        ],
        seed <- @seeds do
      result = run(program, [strategy: :random, seed: seed] ++ opts)

      assert result.kind in [:pass, :exception],
             inspect({result.kind, result.reason, opts, Enum.take(result.trace || [], -5)})

      {result.trace, result.schedule}
    end
  end

  # The NIF's raw fields, against the field types the vocabulary declares.
  defp conforms?(:proc, v), do: Trace.proc_name?(v)
  defp conforms?(:proc_or_nil, v), do: v == nil or Trace.proc_name?(v)
  defp conforms?(:dest, v), do: v == :external or Trace.proc_name?(v)
  defp conforms?(type, _v) when type in [:term, :reason, :global_name], do: true
  defp conforms?(:integer, v), do: is_integer(v) and v >= 0
  defp conforms?(:integer_or_nil, v), do: v == nil or (is_integer(v) and v >= 0)
  defp conforms?(:boolean, v), do: is_boolean(v)
  defp conforms?(:name, v), do: is_atom(v)
  defp conforms?(:name_at, v), do: match?({n, node} when is_atom(n) and is_atom(node), v)
  defp conforms?(:send_name, v), do: is_atom(v) or match?({:global, _}, v)
  defp conforms?(:node, v), do: is_atom(v)
  defp conforms?(:nodes, v), do: is_list(v) and Enum.all?(v, &is_atom/1)

  defp conforms?(type, v) when type in [:fate, :mode],
    do: v in Keyword.fetch!(Trace.types(), type)

  defp field_index(event, field) do
    {_tag, fields} = List.keyfind(Trace.events(), elem(event, 0), 0)
    Enum.find_index(fields, &(elem(&1, 0) == field))
  end

  test "the vocabulary is what the NIF emits, kind for kind and field for field" do
    runs = emitted()
    events = for {trace, _} <- runs, {_step, event} <- trace, do: event
    decisions = for {_, schedule} <- runs, decision <- schedule, do: decision

    for event <- events do
      assert {:ok, tag, values} = Trace.fields(event), "unlisted: #{inspect(event)}"
      {^tag, fields} = List.keyfind(Trace.events(), tag, 0)

      for {field, type} <- fields do
        assert conforms?(type, values[field]),
               "#{inspect(event)}: #{field} is not a #{type}"
      end

      refute String.starts_with?(Trace.describe(event), "{")
    end

    for decision <- decisions, do: assert(Trace.decision?(decision), inspect(decision))

    listed = MapSet.new(Trace.events(), &elem(&1, 0))
    seen = MapSet.new(events, &elem(&1, 0))
    assert MapSet.difference(listed, seen) == MapSet.new(), "listed but never emitted"
    assert MapSet.difference(seen, listed) == MapSet.new(), "emitted but not listed"

    assert MapSet.new(decisions, &elem(&1, 0)) == MapSet.new(Trace.decisions(), &elem(&1, 0))
  end
end
