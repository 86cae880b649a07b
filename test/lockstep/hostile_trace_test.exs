defmodule Lockstep.HostileTraceTest do
  # Malformed and hostile trace files. Every one gives a Lockstep.TraceError saying what is
  # wrong — from TraceFile.load!/2, from replay/3 and shrink/3 — and a one-line Mix error
  # from the mix tasks; never a crash, a NIF panic or a silent pass.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  import Lockstep.TestSupport

  alias Lockstep.{TraceError, TraceFile}
  alias Mix.Tasks.Lockstep.{DumpTrace, Replay}

  setup_all do
    dir = Path.join(System.tmp_dir!(), "lockstep_hostile_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    {:error, bug} = Lockstep.check(ordering_race(), iterations: 100, seed: 5, trace_dir: dir)

    {:lockstep_trace, 2, atoms, payload} =
      bug.trace_path |> File.read!() |> :erlang.binary_to_term()

    %{dir: dir, bug: bug, data: :erlang.binary_to_term(payload), atoms: atoms}
  end

  defp envelope(data, atoms),
    do: :erlang.term_to_binary({:lockstep_trace, 2, atoms, :erlang.term_to_binary(data)})

  defp write!(dir, bin) do
    path = Path.join(dir, "hostile-#{System.unique_integer([:positive])}.lockstep")
    File.write!(path, bin)
    path
  end

  # The same file through every consumer: each must refuse it with `message`.
  defp assert_refused(dir, bin, message, opts \\ []) do
    path = write!(dir, bin)

    error = assert_raise TraceError, fn -> TraceFile.load!(path, opts) end
    assert error.path == path
    assert Exception.message(error) =~ message
    refute Exception.message(error) =~ "\n"

    assert_raise TraceError, message_regex(message), fn ->
      Lockstep.replay(ordering_race(), path, opts)
    end

    assert_raise TraceError, message_regex(message), fn ->
      Lockstep.shrink(ordering_race(), path, opts)
    end

    mix_opts =
      if opts[:max_trace_bytes], do: ["--max-trace-bytes", "#{opts[:max_trace_bytes]}"], else: []

    for task <- [DumpTrace, Replay] do
      capture_io(fn ->
        mix_error = assert_raise Mix.Error, fn -> task.run([path | mix_opts]) end
        assert mix_error.message =~ message
        refute mix_error.message =~ "\n"
      end)
    end

    error
  end

  defp message_regex(message), do: Regex.compile!(Regex.escape(message))

  @u64 18_446_744_073_709_551_616

  # {field, bad value, what the message says}
  @wrong_fields [
    {:schedule, [{:run, "P"} | :improper_tail], "its schedule is an improper list"},
    {:schedule, %{1 => {:run, "P"}},
     "its schedule is %{1 => {:run, \"P\"}}, expected a list of decisions"},
    {:schedule, [{:run, 5}], "its schedule entry 1 is {:run, 5}"},
    {:schedule, [{:run, "P"}, {:run, "Q.1"}], "its schedule entry 2 is {:run, \"Q.1\"}"},
    {:schedule, [{:run, "P.0"}], "its schedule entry 1 is {:run, \"P.0\"}"},
    {:schedule, [{:run, "P.01"}], "its schedule entry 1 is {:run, \"P.01\"}"},
    {:schedule, [{:run, "P.99999999999"}], "its schedule entry 1 is {:run, \"P.99999999999\"}"},
    {:schedule, [{:deliver, "P"}], "its schedule entry 1 is {:deliver, \"P\"}"},
    {:schedule, [{:deliver, "P", 1}], "its schedule entry 1 is {:deliver, \"P\", 1}"},
    {:schedule, [{:random, -1}], "its schedule entry 1 is {:random, -1}"},
    {:schedule, [{:random, @u64}], "its schedule entry 1 is {:random, #{@u64}}"},
    {:schedule, [{:fire, "P", -1}], "its schedule entry 1 is {:fire, \"P\", -1}"},
    {:schedule, [:run], "its schedule entry 1 is :run"},
    {:schedule, [{:teleport, "P"}], "its schedule entry 1 is {:teleport, \"P\"}"},
    {:seed, -1, "its seed is -1, expected an integer in 0..2^64-1"},
    {:seed, @u64, "its seed is #{@u64}, expected an integer in 0..2^64-1"},
    {:seed, "5", "its seed is \"5\", expected an integer"},
    {:iter_seed, 1.5, "its iter_seed is 1.5, expected an integer"},
    {:iteration, 0, "its iteration is 0, expected a positive integer"},
    {:iteration, nil, "its iteration is nil, expected a positive integer"},
    {:options, %{max_steps: 100},
     "its options is %{max_steps: 100}, expected a keyword list (a map is not accepted)"},
    {:options, [{:max_steps, 100} | :tail], "its options is an improper list"},
    {:options, [max_steps: 0], "its options hold max_steps: 0, expected a positive integer"},
    {:options, [delivery: :sometimes],
     "its options hold delivery: :sometimes, expected :instant or :delayed"},
    {:options, [crash: "fail"], "its options hold crash: \"fail\""},
    {:options, [timers: nil], "its options hold timers: nil, expected :on_idle or :anytime"},
    {:options, [fail_on_max_steps: 1],
     "its options hold fail_on_max_steps: 1, expected true or false"},
    {:options, [bogus: 1], "its options hold the unknown option :bogus"},
    {:options, [1, 2], "its options hold 1, expected {key, value} pairs"},
    {:kind, :bogus, "its kind is :bogus, expected one of :exception, :crash"},
    {:kind, "exception", "its kind is \"exception\""},
    {:events, :none, "its events is :none, expected a list of {step, event} pairs"},
    {:events, [{1, {:start, "P"}} | :tail], "its events is an improper list"},
    {:events, [{:one, {:start, "P"}}], "its events entry 1 is {:one, {:start, \"P\"}}"},
    {:events, [{1, :start}], "its events entry 1 is {1, :start}"},
    {:events, [{1, {}}], "its events entry 1 is {1, {}}"},
    {:events, [{1, {"start", "P"}}], "its events entry 1 is {1, {\"start\", \"P\"}}"},
    {:events, [{1, {:start, %{a: 1}}}], "its events entry 1 is {1, {:start, %{a: 1}}}"},
    {:events, [{1, {:send, "P", "P.1", {:"$inspected", 5}, :delivered}}], "its events entry 1"},
    {:events, [{1, {:start, [1, 2]}}], "its events entry 1 is {1, {:start, [1, 2]}}"},
    # Only the kinds Lockstep.Trace lists, each with its number of fields.
    {:events, [{1, {:teleport, "P"}}], "its events entry 1 is {1, {:teleport, \"P\"}}"},
    {:events, [{1, {:start, "P", "P.1"}}], "its events entry 1 is {1, {:start, \"P\", \"P.1\"}}"},
    {:events, [{1, {:send, "P", "P.1", :delivered}}], "its events entry 1"},
    {:lockstep_version, 1, "its lockstep_version is 1, expected a string"},
    {:name, :atom_name, "its name is :atom_name, expected a string"},
    {:reason, {:error, :boom}, "its reason is {:error, :boom}, expected a string"},
    {:process, "Q", "its process is \"Q\", expected a process name"},
    {:strategy, "pct",
     "its strategy is \"pct\", expected a strategy name or {name, keyword list}"},
    {:strategy, {:pct, %{bug_depth: 2}}, "its strategy is {:pct, %{bug_depth: 2}}"},
    {:strategy, {:pct, [bug_depth: [1]]}, "its strategy is {:pct, [bug_depth: [1]]}"},
    {:fail_step, -1, "its fail_step is -1, expected a non-negative integer"},
    {:steps, "41", "its steps is \"41\", expected a non-negative integer"},
    {:proc_nodes, [], "its proc_nodes is [], expected a map of process names to node atoms"},
    {:proc_nodes, %{"P" => "b@host"}, "its proc_nodes is %{\"P\" => \"b@host\"}"},
    {:body, {Lockstep.RaceBodies, :racy},
     "its body is {Lockstep.RaceBodies, :racy}, expected %{module: atom"},
    {:body, %{module: "Mod", function: :f}, "its body is %{function: :f, module: \"Mod\"}"},
    {:location, 12, "its location is 12, expected a string"},
    {:call_sites, [{1, "x.ex:1"}],
     "its call_sites is [{1, \"x.ex:1\"}], expected a map of event indexes"},
    {:call_sites, %{-1 => "x.ex:1"}, "its call_sites is %{-1 => \"x.ex:1\"}, expected a map"},
    {:call_sites, %{1 => :line}, "its call_sites is %{1 => :line}, expected a map"},
    {:proc_labels, %{"P.1" => :mod}, "its proc_labels is %{\"P.1\" => :mod}, expected a map"},
    {:proc_labels, [], "its proc_labels is [], expected a map of process names"},
    {:history, %{ops: []}, "its history is %{ops: []}, expected nil or a map with :model"},
    {:history,
     %{model: M, consistency: :linearizable, checked: 1, minimal: true, ops: [%{op: :read}]},
     "expected nil or a map with :model"}
  ]

  describe "a field of the wrong type" do
    test "every field is checked", %{dir: dir, data: data, atoms: atoms} do
      for {field, value, message} <- @wrong_fields do
        assert_refused(dir, envelope(Map.put(data, field, value), atoms), message)
      end
    end

    test "every field of the file is covered by the table", %{data: data} do
      checked = @wrong_fields |> Enum.map(&elem(&1, 0)) |> MapSet.new()

      written =
        data |> Map.keys() |> MapSet.new() |> MapSet.difference(MapSet.new([:format, :version]))

      assert MapSet.subset?(written, checked),
             "unchecked: #{inspect(MapSet.difference(written, checked))}"
    end

    test "a missing required field is named", %{dir: dir, data: data, atoms: atoms} do
      for field <- [:schedule, :seed, :iter_seed, :iteration, :options, :kind, :events] do
        assert_refused(
          dir,
          envelope(Map.delete(data, field), atoms),
          "it lacks the field #{inspect(field)}"
        )
      end
    end

    test "a version 1 file (a bare map) is checked the same way", %{dir: dir, data: data} do
      v1 = Map.put(data, :version, 1)
      assert TraceFile.load!(write!(dir, :erlang.term_to_binary(v1))).schedule == data.schedule

      # The options-as-a-map file that used to replay silently with default options.
      assert_refused(
        dir,
        :erlang.term_to_binary(%{v1 | options: Map.new(data.options)}),
        "expected a keyword list (a map is not accepted)"
      )

      assert_refused(
        dir,
        :erlang.term_to_binary(%{v1 | schedule: [{:run, "P"} | "tail"]}),
        "improper list"
      )
    end
  end

  describe "a file that is not a trace" do
    test "unknown versions, truncation, foreign terms", %{
      dir: dir,
      bug: bug,
      data: data,
      atoms: atoms
    } do
      full = File.read!(bug.trace_path)
      good_payload = :erlang.term_to_binary(data, compressed: 6)

      cases = [
        {envelope(data, atoms)
         |> then(fn _ -> :erlang.term_to_binary({:lockstep_trace, 99, [], <<>>}) end),
         "it is trace format version 99; this Lockstep"},
        {:erlang.term_to_binary(%{format: :lockstep_trace, version: 7}),
         "it is trace format version 7"},
        {:erlang.term_to_binary(%{format: :lockstep_trace, version: "2"}),
         "it is trace format version \"2\""},
        {binary_part(full, 0, div(byte_size(full), 2)), "the file is corrupt or truncated"},
        {binary_part(full, 0, 3), "the file is corrupt or truncated"},
        {full <> "junk", "the file has 4 stray bytes after its end"},
        {"", "the file is corrupt or not in Erlang's external term format"},
        {"garbage", "the file is corrupt or not in Erlang's external term format"},
        {:erlang.term_to_binary({:hello, [1, 2, 3]}), "it is not a Lockstep trace file"},
        {:erlang.term_to_binary({:lockstep_trace, 2, atoms, 5}),
         "its payload is 5, expected a binary"},
        {:erlang.term_to_binary({:lockstep_trace, 2, atoms, :erlang.term_to_binary([1])}),
         "its payload is [1], expected a Lockstep trace map"},
        {:erlang.term_to_binary({:lockstep_trace, 2, atoms, binary_part(good_payload, 0, 40)}),
         "its payload is corrupt or truncated"},
        {:erlang.term_to_binary({:lockstep_trace, 2, :atoms, good_payload}),
         "its atom list is :atoms, expected a list of strings"},
        {:erlang.term_to_binary({:lockstep_trace, 2, ["ok" | "tail"], good_payload}),
         "its atom list is [\"ok\" | \"tail\"]"},
        {:erlang.term_to_binary({:lockstep_trace, 2, [42], good_payload}),
         "its atom list holds 42, expected atom texts"},
        {:erlang.term_to_binary({:lockstep_trace, 2, [String.duplicate("a", 256)], good_payload}),
         "expected atom texts (UTF-8 strings of at most 255 characters)"},
        {:erlang.term_to_binary({:lockstep_trace, 2, [<<255, 0>>], good_payload}),
         "expected atom texts"}
      ]

      for {bin, message} <- cases, do: assert_refused(dir, bin, message)
    end

    test "a payload holding an atom the file does not list", %{dir: dir, data: data} do
      # The text of an atom that exists here, rewritten into one that exists nowhere.
      placeholder = "lockstep_hostile_placeholder_aaaaaaaaaaaaaaaa"
      node = String.to_atom(placeholder)
      payload = :erlang.term_to_binary(%{data | proc_nodes: %{"P.1" => node}})
      unknown = String.replace(placeholder, "a", "q")
      payload = :binary.replace(payload, placeholder, unknown)

      assert_refused(
        dir,
        :erlang.term_to_binary({:lockstep_trace, 2, [], payload}),
        "holds atoms it does not list"
      )

      assert_raise ArgumentError, fn -> String.to_existing_atom(unknown) end

      # Listed, the same atom is created and the file loads.
      path = write!(dir, :erlang.term_to_binary({:lockstep_trace, 2, [unknown], payload}))
      assert TraceFile.load!(path).proc_nodes == %{"P.1" => String.to_existing_atom(unknown)}
    end

    test "the NIF refuses a malformed schedule with an error, not a panic" do
      for schedule <- [
            [{:run, "P"} | :tail],
            [{:run, "P"}, {:run, "x"}],
            :nope,
            [{:random, -1}],
            [{:fire, "P", -1}]
          ] do
        error =
          assert_raise Lockstep.InternalError, fn ->
            Lockstep.Native.strategy_new({:replay, schedule})
          end

        assert error.message =~ "invalid schedule"
      end
    end
  end

  describe "size limits" do
    test "a small file that decodes to more than the limit is refused before decoding", %{
      dir: dir,
      data: data,
      atoms: atoms
    } do
      # 20 MiB of reason text compresses to about 20 KB.
      huge = %{data | reason: :binary.copy("x", 20 * 1024 * 1024)}
      payload = :erlang.term_to_binary(huge, compressed: 9)
      bin = :erlang.term_to_binary({:lockstep_trace, 2, atoms, payload})
      assert byte_size(bin) < 100_000

      error = assert_refused(dir, bin, "its payload decodes to")

      assert Exception.message(error) =~
               "over the limit of #{TraceFile.default_max_bytes()} bytes"

      assert Exception.message(error) =~ "max_trace_bytes"
      assert Exception.message(error) =~ "--max-trace-bytes"

      # Raising the limit loads it.
      path = write!(dir, bin)

      assert byte_size(TraceFile.load!(path, max_trace_bytes: 32 * 1024 * 1024).reason) ==
               20 * 1024 * 1024
    end

    test "a file larger than the limit is refused before it is read", %{dir: dir, bug: bug} do
      full = File.read!(bug.trace_path)

      error =
        assert_refused(dir, full, "it is #{byte_size(full)} bytes, over the limit of 100 bytes",
          max_trace_bytes: 100
        )

      assert Exception.message(error) =~ "raise the limit"
    end

    test "a file listing a million atoms is refused without creating any", %{dir: dir, data: data} do
      prefix = "lockstep_hostile_#{System.unique_integer([:positive])}_"
      atoms = for i <- 1..1_000_000, do: prefix <> Integer.to_string(i)
      bin = :erlang.term_to_binary({:lockstep_trace, 2, atoms, :erlang.term_to_binary(data)})

      error =
        assert_raise TraceError, fn ->
          TraceFile.load!(write!(dir, bin), max_trace_bytes: 64 * 1024 * 1024)
        end

      assert Exception.message(error) =~ "it lists 1000000 atoms to create"
      assert Exception.message(error) =~ "at most 10000"

      for i <- [1, 500_000, 1_000_000] do
        assert_raise ArgumentError, fn -> String.to_existing_atom(prefix <> "#{i}") end
      end
    end

    test ":max_trace_bytes must be a positive integer", %{bug: bug} do
      assert_raise ArgumentError, ~r/max_trace_bytes/, fn ->
        TraceFile.load!(bug.trace_path, max_trace_bytes: 0)
      end

      assert_raise ArgumentError, ~r/max_trace_bytes/, fn ->
        Lockstep.replay(ordering_race(), bug.trace_path, max_trace_bytes: :big)
      end

      assert_raise ArgumentError, ~r/max_trace_bytes/, fn ->
        Lockstep.shrink(ordering_race(), bug.trace_path, max_trace_bytes: -1)
      end
    end
  end
end
