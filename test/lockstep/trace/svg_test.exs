defmodule Lockstep.Trace.SVGTest do
  # Pictures of failing traces (issue 14, item 5): a message sequence chart in plain SVG.
  use ExUnit.Case, async: true

  require Lockstep
  import ExUnit.CaptureIO

  # P.1 and P.2 each send P two messages; P takes three and fails. Under :delayed, one
  # message may still be in flight, or delivered and never taken.
  def body do
    parent = self()

    for tag <- [:a, :b] do
      Lockstep.spawn(fn ->
        Lockstep.send(parent, {tag, 1})
        Lockstep.send(parent, {tag, 2})
      end)
    end

    for _ <- 1..3, do: Lockstep.receive(do: (m -> m))
    raise "three of four"
  end

  defp parse(svg) do
    # xmerl reads the UTF-8 bytes, as it would read the file
    {doc, []} = :xmerl_scan.string(:binary.bin_to_list(svg), quiet: true)
    doc
  end

  defp elements(doc, name, class) do
    :xmerl_xpath.string(~c"//#{name}[contains(concat(' ', @class, ' '), ' #{class} ')]", doc)
  end

  defp delivered(trace) do
    Enum.count(trace, fn
      {_, {:send, _, to, _, :delivered}} when is_binary(to) -> true
      {_, {:deliver, _, _, _}} -> true
      _ -> false
    end)
  end

  defp procs(trace) do
    trace |> Enum.map(fn {_, e} -> Lockstep.Trace.actor(e) end) |> Enum.uniq() |> length()
  end

  for delivery <- [:instant, :delayed] do
    test "one lane per process and one arrow per delivered message (delivery: #{delivery})" do
      {:error, bug} =
        Lockstep.check(&__MODULE__.body/0,
          delivery: unquote(delivery),
          iterations: 20,
          strategy: :random,
          seed: 11
        )

      doc = parse(Lockstep.TraceFile.to_svg(bug))
      assert length(elements(doc, "line", "lane")) == procs(bug.trace)
      assert length(elements(doc, "path", "msg")) == delivered(bug.trace)
      assert length(elements(doc, "rect", "failing")) == 1
      assert length(elements(doc, "g", "event")) == length(bug.trace)

      # Drawn from the trace file alone (terms stored inspected), the same chart.
      from_file = parse(Lockstep.TraceFile.to_svg(bug.trace_path))
      assert length(elements(from_file, "line", "lane")) == procs(bug.trace)
      assert length(elements(from_file, "path", "msg")) == delivered(bug.trace)
    end
  end

  test "a failing run writes the picture beside its trace file and the report names it" do
    {:error, bug} = Lockstep.check(&__MODULE__.body/0, iterations: 20, seed: 3)

    assert bug.picture_path == Path.rootname(bug.trace_path, ".lockstep") <> ".svg"

    assert Exception.message(bug) =~
             "A picture of this run (open it in a browser): #{bug.picture_path}"

    # The file, and the one drawn from the trace file alone, are the same chart.
    written = File.read!(bug.picture_path)
    parse(written)
    from_file = Lockstep.TraceFile.to_svg(bug.trace_path)
    assert length(elements(parse(from_file), "line", "lane")) == procs(bug.trace)
  end

  test "partitions are shaded bands, signals and :DOWNs are arrows" do
    {:error, bug} =
      Lockstep.check(
        fn ->
          Lockstep.Cluster.start_node(:b)
          pid = Lockstep.spawn(fn -> Lockstep.receive(do: (:never -> :ok)) end, node: :b)
          Lockstep.monitor(pid)
          Lockstep.exit(pid, :kill)
          Lockstep.receive(do: ({:DOWN, _, _, _, _} -> :ok))
          Lockstep.Cluster.partition([node()], [:b])
          Lockstep.Cluster.heal()
          raise "after the heal"
        end,
        iterations: 1,
        seed: 5
      )

    doc = parse(Lockstep.TraceFile.to_svg(bug))
    assert length(elements(doc, "rect", "partition")) >= 1
    from_file = parse(Lockstep.TraceFile.to_svg(bug.trace_path))

    assert length(elements(from_file, "rect", "partition")) ==
             length(elements(doc, "rect", "partition"))

    assert length(elements(doc, "path", "signal")) + length(elements(doc, "path", "down")) >= 1
  end

  test "text is escaped: messages with <, & and quotes stay well-formed XML" do
    {:error, bug} =
      Lockstep.check(
        fn ->
          Lockstep.send(self(), "<b>&\"'</b>")
          Lockstep.receive(do: (m -> m))
          raise "<&>"
        end,
        iterations: 1
      )

    parse(Lockstep.TraceFile.to_svg(bug))
  end

  test "a :linearizability failure's picture has the history's time-line" do
    {:error, bug} =
      Lockstep.check(&Lockstep.Examples.ReplicatedRegister.naive_body/0, iterations: 500, seed: 1)

    assert bug.kind == :linearizability
    doc = parse(File.read!(bug.picture_path))
    assert length(elements(doc, "rect", "history-op")) == length(bug.details.ops)

    # The trace file keeps the sub-history: its picture and its report show it too.
    from_file = parse(Lockstep.TraceFile.to_svg(bug.trace_path))
    assert length(elements(from_file, "rect", "history-op")) == length(bug.details.ops)

    dumped = capture_io(fn -> Mix.Tasks.Lockstep.DumpTrace.run([bug.trace_path]) end)
    assert dumped =~ "a history is not linearizable (Lockstep.Model.Register)"

    assert dumped =~
             "#{length(bug.details.ops)} of the #{bug.details.checked} operations cannot be linearized"
  end

  test "to_svg/2 says what it expects" do
    assert_raise ArgumentError, ~r/expects a %Lockstep.BugFound\{\} or the path/, fn ->
      Lockstep.TraceFile.to_svg(:nope)
    end
  end

  test "mix lockstep.dump_trace --format svg and --slice" do
    {:error, bug} = Lockstep.check(&__MODULE__.body/0, iterations: 20, seed: 4)

    out_path =
      Path.join(System.tmp_dir!(), "lockstep-svg-#{System.unique_integer([:positive])}.svg")

    out =
      capture_io(fn ->
        Mix.Tasks.Lockstep.DumpTrace.run([bug.trace_path, "--format", "svg", "--output", out_path])
      end)

    assert out =~ "wrote #{out_path}"
    parse(File.read!(out_path))
    File.rm(out_path)

    whole = capture_io(fn -> Mix.Tasks.Lockstep.DumpTrace.run([bug.trace_path]) end)
    refute whole =~ "causal slice"

    sliced = capture_io(fn -> Mix.Tasks.Lockstep.DumpTrace.run([bug.trace_path, "--slice"]) end)
    assert sliced =~ "causal slice"

    events =
      capture_io(fn ->
        Mix.Tasks.Lockstep.DumpTrace.run([bug.trace_path, "--format", "events", "--slice"])
      end)

    keep = Lockstep.Trace.Slice.indexes(bug.trace, bug.fail_step, bug.kind, bug.process)
    assert events |> String.split("\n", trim: true) |> length() == MapSet.size(keep)

    assert_raise Mix.Error, ~r/--output is for --format svg only/, fn ->
      Mix.Tasks.Lockstep.DumpTrace.run([bug.trace_path, "--output", "x.svg"])
    end
  end
end
