defmodule Lockstep.FreshVmTest do
  # Trace files and mix tasks in a VM that has never seen the program: a separate `elixir`
  # or `mix` process. Not async: the ctest module compiled here registers with ExUnit,
  # which must not pick it up and run it (see ctest_test.exs).
  use ExUnit.Case, async: false

  require Lockstep
  import Lockstep.TestSupport

  alias Lockstep.{BugFound, TraceFile}

  @moduletag timeout: 180_000

  @root Path.expand("../..", __DIR__)

  defp ebin, do: Path.join(:code.lib_dir(:lockstep), "ebin")

  # Runs `code` in a fresh `elixir` with Lockstep's modules on the code path.
  defp fresh_elixir(code, args) do
    System.cmd("elixir", ["-pa", ebin(), "-e", code, "--" | args], stderr_to_stdout: true)
  end

  # Atoms made at run time: they exist in this VM and in no other.
  defp fresh_atom(label), do: String.to_atom("#{label}_#{System.unique_integer([:positive])}")

  # A test module, written to a file and loaded, whose one ctest ("lost update") runs
  # Lockstep.RaceBodies.racy/0 under `use Lockstep.Test, <options>` and fails: its module,
  # its file and the bug. Lockstep.RaceBodies is test support: it exists only in the test
  # environment.
  defp ctest_bug!(label, options) do
    dir = tmp_dir!()
    mod = Module.concat(Lockstep.FreshVmTest, "#{label}#{System.unique_integer([:positive])}")
    file = Path.join(dir, "fresh_#{String.downcase(label)}_test.exs")

    File.write!(file, """
    defmodule #{inspect(mod)} do
      use Lockstep.Test, #{options}, trace_dir: #{inspect(dir)}

      ctest "lost update" do
        Lockstep.RaceBodies.racy()
      end
    end
    """)

    [{^mod, _}] = Code.require_file(file)

    on_exit(fn ->
      Code.unrequire_files([file])
      :code.purge(mod)
      :code.delete(mod)
    end)

    bug = assert_raise BugFound, fn -> apply(mod, :"test lost update", [%{}]) end
    {mod, file, bug}
  end

  test "a trace whose events and nodes hold atoms the loading VM lacks loads there" do
    name = fresh_atom("lockstep_fresh_name")
    node = fresh_atom("lockstep_fresh_node")
    node = :"#{node}@sim"

    body = fn ->
      Lockstep.Cluster.start_nodes([node])

      pid =
        Lockstep.spawn(
          fn -> Lockstep.receive(do: (:stop -> :ok)) end,
          node: node
        )

      Lockstep.Cluster.spawn(node, fn -> Lockstep.register(name, pid) end)
      Lockstep.yield()
      Lockstep.yield()
      raise "fails after registering #{name} on #{node}"
    end

    assert {:error, %BugFound{} = bug} =
             Lockstep.check(body, iterations: 1, seed: 3, trace_dir: tmp_dir!())

    saved = TraceFile.load!(bug.trace_path)
    assert Enum.any?(saved.events, &match?({_, {:register, _, ^name, _, true}}, &1))
    assert node in Map.values(saved.proc_nodes)

    code = ~S"""
    [path, name, node] = System.argv()
    false = Enum.any?([name, node], fn a ->
      try do
        String.to_existing_atom(a)
        true
      rescue
        ArgumentError -> false
      end
    end)
    file = Lockstep.TraceFile.load!(path)
    IO.puts("schedule #{length(file.schedule)} events #{length(file.events)}")
    IO.puts("nodes #{inspect(Map.values(file.proc_nodes))}")
    IO.puts("registered #{inspect(for {_, {:register, _, n, _, true}} <- file.events, do: n)}")
    """

    {out, status} = fresh_elixir(code, [bug.trace_path, "#{name}", "#{node}"])
    assert status == 0, out
    assert out =~ "schedule #{length(saved.schedule)} events #{length(saved.events)}"
    assert out =~ "nodes #{inspect(Map.values(saved.proc_nodes))}"
    assert out =~ "registered [#{inspect(name)}]"
  end

  test "a file listing a million atoms is refused in a fresh VM too" do
    {:error, bug} =
      Lockstep.check(ordering_race(), iterations: 100, seed: 5, trace_dir: tmp_dir!())

    {:lockstep_trace, 2, _atoms, payload} =
      bug.trace_path |> File.read!() |> :erlang.binary_to_term()

    atoms = for i <- 1..1_000_000, do: "lockstep_flood_#{i}"
    path = bug.trace_path <> ".flood"
    File.write!(path, :erlang.term_to_binary({:lockstep_trace, 2, atoms, payload}))

    code = ~S"""
    [path] = System.argv()
    before = :erlang.system_info(:atom_count)
    try do
      Lockstep.TraceFile.load!(path, max_trace_bytes: 64_000_000)
      IO.puts("loaded")
    rescue
      e in Lockstep.TraceError -> IO.puts(Exception.message(e))
    end
    IO.puts("new atoms #{:erlang.system_info(:atom_count) - before}")
    """

    {out, 0} = fresh_elixir(code, [path])
    assert out =~ "it lists 1000000 atoms to create"
    [_, created] = Regex.run(~r/new atoms (\d+)/, out)
    assert String.to_integer(created) < 1_000
  end

  describe "a ctest's trace, replayed by mix lockstep.replay PATH" do
    setup do
      {mod, file, bug} = ctest_bug!("Ctest", "iterations: 200, seed: 2026")
      assert bug.replay_run == {mod, :"ctest lost update"}
      %{mod: mod, test_file: file, bug: bug}
    end

    test "in this VM, loading the test file the trace names", %{
      mod: mod,
      test_file: file,
      bug: bug
    } do
      # As in a fresh VM: the module and its file are gone.
      Code.unrequire_files([file])
      :code.purge(mod)
      :code.delete(mod)
      refute Code.ensure_loaded?(mod)

      out =
        ExUnit.CaptureIO.capture_io(fn ->
          assert catch_exit(Mix.Tasks.Lockstep.Replay.run([bug.trace_path])) == {:shutdown, 1}
        end)

      assert out =~ ~s(body: #{inspect(mod)}."ctest lost update"/0)
      assert out =~ ~s(Replaying #{bug.trace_path} with #{inspect(mod)}."ctest lost update"/0)
      assert out =~ "The bug reproduces (exception)"
      assert out =~ "lost update"
    end

    test "from the shell, without MIX_ENV: the task runs itself in the test environment", %{
      mod: mod,
      bug: bug
    } do
      {out, status} =
        System.cmd("mix", ["lockstep.replay", bug.trace_path],
          cd: @root,
          env: [{"MIX_ENV", nil}],
          stderr_to_stdout: true
        )

      assert status == 1, out
      assert out =~ ~s(Replaying #{bug.trace_path} with #{inspect(mod)}."ctest lost update"/0)
      # The replayed failure is the lost update itself (outside the test environment the
      # body would fail on the missing Lockstep.RaceBodies instead).
      assert [_, replayed] = String.split(out, "The bug reproduces (exception):")
      assert replayed =~ "lost update: 2 clients incremented the counter"
      refute out =~ "UndefinedFunctionError"
    end
  end

  test "an exhaustive search's bug, found on two workers, replays from the shell" do
    {_mod, _file, bug} = ctest_bug!("Exhaustive", "strategy: :exhaustive, workers: 2")
    assert bug.strategy == :exhaustive

    {out, status} =
      System.cmd("mix", ["lockstep.replay", bug.trace_path],
        cd: @root,
        env: [{"MIX_ENV", nil}],
        stderr_to_stdout: true
      )

    assert status == 1, out
    assert [_, replayed] = String.split(out, "The bug reproduces (exception):")
    assert replayed =~ "lost update"
  end

  test "the test environment is chosen only when MIX_ENV is not set" do
    assert Lockstep.Tasks.reexec?(:dev, nil)
    assert Lockstep.Tasks.reexec?(:dev, "")
    refute Lockstep.Tasks.reexec?(:dev, "dev")
    refute Lockstep.Tasks.reexec?(:prod, "prod")
    refute Lockstep.Tasks.reexec?(:test, nil)
  end
end
