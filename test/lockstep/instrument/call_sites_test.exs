defmodule Lockstep.Instrument.CallSitesTest.InMemory do
  @moduledoc false
  # Compiled in memory with the test file and instrumented as it is compiled: its sites
  # are lines of this file.
  use Lockstep.Instrumented

  def first_of_two do
    me = self()
    spawn(fn -> send(me, :a) end)
    spawn(fn -> send(me, :b) end)

    receive do
      first -> first
    end
  end
end

defmodule Lockstep.Instrument.CallSitesTest do
  # Trace events of instrumented code show where in the source they come from (issue 11,
  # item 5): in the report, in the trace file, in `mix lockstep.dump_trace` and on replay;
  # events of code written against the Lockstep API show none.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  import Lockstep.TestSupport

  require Lockstep

  alias Lockstep.{BugFound, TraceFile}
  alias Lockstep.TestSupport.PlainCounter
  alias Mix.Tasks.Lockstep.DumpTrace

  @counter_file "test/support/instrumented/plain_counter.ex"

  # The line of the first line of `file` that contains `text` (after line `after_line`).
  defp line_of(file, text, after_line \\ 0) do
    file
    |> File.read!()
    |> String.split("\n")
    |> Enum.with_index(1)
    |> Enum.find_value(fn {line, n} -> n > after_line and String.contains?(line, text) && n end)
    |> Kernel.||(flunk("#{text} is not in #{file}"))
  end

  # Two clients increment through the plain get/put server: one update is lost.
  def lost_update do
    c = PlainCounter.start(0)

    for _ <- 1..2 do
      Lockstep.spawn(fn -> PlainCounter.increment(c) end) |> Lockstep.monitor()
    end

    for _ <- 1..2 do
      Lockstep.receive do
        {:DOWN, _, :process, _, _} -> :ok
      end
    end

    2 = PlainCounter.value(c)
  end

  defp lost_update_bug(dir) do
    assert {:error, %BugFound{} = bug} =
             Lockstep.check(&lost_update/0,
               iterations: 500,
               seed: 11,
               instrument: [PlainCounter],
               trace_dir: dir
             )

    bug
  end

  # `{event, site}` for every event of the bug's trace (site nil when it has none).
  defp sited(bug) do
    bug.trace
    |> Enum.with_index()
    |> Enum.map(fn {{_step, event}, i} -> {event, bug.call_sites[i]} end)
  end

  defp site(line), do: "#{@counter_file}:#{line}"

  setup do
    %{dir: tmp_dir!("ls_call_sites")}
  end

  test "the report of an instrumented lost update shows each send and receive at its line",
       %{dir: dir} do
    bug = lost_update_bug(dir)
    loop = line_of(@counter_file, "receive do")
    reply = line_of(@counter_file, "send(from, {:value, value})")
    increment = line_of(@counter_file, "def increment")
    get = line_of(@counter_file, "send(counter, {:get, self()})", increment)
    take = line_of(@counter_file, "receive do", increment)
    put = line_of(@counter_file, "send(counter, {:put, value + 1})")
    spawn_line = line_of(@counter_file, "def start(value)")

    events = sited(bug)

    # Every operation of the instrumented module is located, at the line that made it.
    expected = fn
      {:send, _, _, {:get, _}, _} -> site(get)
      {:send, _, _, {:value, _}, _} -> site(reply)
      {:send, _, _, {:put, _}, _} -> site(put)
      {:receive, _, _, {:get, _}} -> site(loop)
      {:receive, _, _, {:put, _}} -> site(loop)
      {:receive, _, _, {:value, _}} -> site(take)
      _ -> :any
    end

    checked =
      for {event, at} <- events, (want = expected.(event)) != :any do
        assert at == want, "#{inspect(event)} at #{inspect(at)}, expected #{want}"
      end

    assert length(checked) >= 8
    assert {{:spawn, "P", "P.1"}, site(spawn_line)} in events

    # The Lockstep API calls of the body (spawn, monitor, Lockstep.receive) have none.
    for {event, at} <- events, elem(event, 0) in [:monitor, :start] do
      assert at == nil, "#{inspect(event)} at #{inspect(at)}"
    end

    assert Enum.any?(events, &match?({{:receive, "P", _, {:DOWN, _, _, _, _}}, nil}, &1))
    assert Enum.any?(events, &match?({{:spawn, "P", _}, nil}, &1))

    # The report appends the site to the event's line.
    message = Exception.message(bug)
    assert message =~ ~r/sends \{:get, P\.\d\} to P\.1  at #{Regex.escape(site(get))}$/m
    assert message =~ ~r/receives \{:value, 0\} from P\.1  at #{Regex.escape(site(take))}$/m
    assert message =~ ~r/receives \{:DOWN, .* from P\.\d$/m
    refute message =~ ~r/monitors .* at /
  end

  test "the trace file keeps the sites, dump_trace prints them and replay reproduces them",
       %{dir: dir} do
    bug = lost_update_bug(dir)
    file = TraceFile.load!(bug.trace_path)
    assert file.call_sites == bug.call_sites
    assert map_size(file.call_sites) > 0

    pretty = capture_io(fn -> DumpTrace.run([bug.trace_path]) end)
    assert pretty =~ "  at #{@counter_file}:"

    out = capture_io(fn -> DumpTrace.run([bug.trace_path, "--format", "events"]) end)
    lines = String.split(out, "\n", trim: true)
    assert length(lines) == length(file.events)

    for {line, i} <- Enum.with_index(lines) do
      # Still one term per line: the site is an Elixir comment after it.
      assert {{_step, _event}, []} = Code.eval_string(line)

      case file.call_sites[i] do
        nil -> refute line =~ ~r/  # \S+:\d+$/
        site -> assert String.ends_with?(line, "  # " <> site)
      end
    end

    replayed = assert_raise BugFound, fn -> Lockstep.replay(&lost_update/0, bug.trace_path) end
    assert replayed.call_sites == bug.call_sites
    assert Exception.message(replayed) =~ "  at #{@counter_file}:"
  end

  test "a shrunk failure keeps the sites of its events", %{dir: dir} do
    bug = lost_update_bug(dir)
    assert {:ok, info} = Lockstep.shrink(&lost_update/0, bug.trace_path)
    assert map_size(info.bug.call_sites) > 0
    assert TraceFile.load!(info.trace_path).call_sites == info.bug.call_sites
    # the compact report joins a process's consecutive events, each with its site
    assert Exception.message(info.bug) =~
             ~r/sends \{:get, P\.\d\} to P\.1  at #{@counter_file}:\d+/
  end

  test "the same seed gives the same sites", %{dir: dir} do
    assert lost_update_bug(dir).call_sites == lost_update_bug(dir).call_sites
  end

  test "an Erlang module's events are located in its .erl file", %{dir: dir} do
    assert {:error, bug} =
             Lockstep.check(&:ls_patterns.lost_update/0,
               iterations: 500,
               seed: 3,
               instrument: [:ls_patterns],
               trace_dir: dir
             )

    erl = "test/support/erlang/ls_patterns.erl"
    get = line_of(erl, "C ! {get, self()},")
    take = line_of(erl, "receive {value, N} -> C ! {put, N + 1} end.")
    events = sited(bug)

    get_site = "#{erl}:#{get}"
    gets = for {{:send, _, "P.1", {:get, _}, _}, at} <- events, do: at
    # two clients, then the root reading the result
    root_get = "#{erl}:#{line_of(erl, "C ! {get, self()},", get)}"
    assert gets == [get_site, get_site, root_get]

    put_site = "#{erl}:#{take}"
    assert Enum.any?(events, &match?({{:send, _, _, {:put, _}, _}, ^put_site}, &1))
    # The root's body is the module's too: every event of the run is located but starts.
    assert Enum.all?(events, fn {event, at} ->
             elem(event, 0) in [:start, :exit, :down] or at != nil
           end)
  end

  test "a module compiled in memory is located in its source file", %{dir: dir} do
    alias Lockstep.Instrument.CallSitesTest.InMemory

    assert {:error, bug} =
             Lockstep.check(fn -> :a = InMemory.first_of_two() end,
               iterations: 100,
               seed: 1,
               trace_dir: dir
             )

    file = "test/lockstep/instrument/call_sites_test.exs"
    send_b = line_of(file, "spawn(fn -> send(me, :b) end)")
    take = line_of(file, "receive do")

    assert {{:send, _, "P", :b, :delivered}, at} =
             bug |> sited() |> Enum.find(&match?({{:send, _, _, :b, _}, _}, &1))

    assert at == "#{file}:#{send_b}"

    assert {_, at} = bug |> sited() |> Enum.find(&match?({{:receive, "P", _, :b}, _}, &1))
    assert at == "#{file}:#{take}"
  end

  test "code written against the Lockstep API alone has no sites", %{dir: dir} do
    assert {:error, bug} =
             Lockstep.check(ordering_race(), iterations: 100, seed: 5, trace_dir: dir)

    assert bug.call_sites == %{}
    assert TraceFile.load!(bug.trace_path).call_sites == %{}
    refute Exception.message(bug) =~ ~r/  at \S+:\d+$/m
  end

  test "only the capturing re-run of a failing iteration notes sites" do
    # Every iteration of a passing run is a fast one: nothing in the dictionary.
    Lockstep.run(fn -> nil = Process.get(:"$lockstep_sites") end,
      iterations: 5,
      instrument: [PlainCounter]
    )

    # The report's re-run captures: its processes note sites.
    assert {:error, bug} =
             Lockstep.check(fn -> raise "sites: #{inspect(Process.get(:"$lockstep_sites"))}" end,
               iterations: 1
             )

    assert {:error, %RuntimeError{message: "sites: true"}, _} = bug.reason
  end
end
