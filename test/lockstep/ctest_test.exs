defmodule Lockstep.CtestTest do
  # Not async: compiling a module that uses ExUnit.Case registers it with the ExUnit
  # server. While the suite's async phase runs (test files may still be loading) a module
  # registered then could be picked up and run by ExUnit itself — including its failing
  # ctest. In the sync phase a late registration is never run.
  use ExUnit.Case, async: false

  alias Lockstep.BugFound
  import Lockstep.TestSupport

  # Compiles a test module that uses Lockstep.Test; returns the module. `use_opts` and the
  # body of the module are Elixir source.
  defp compile_ctest_module(use_opts, body) do
    mod = Module.concat(Lockstep.CtestTest, "Generated#{System.unique_integer([:positive])}")

    source = """
    defmodule #{inspect(mod)} do
      use Lockstep.Test, #{use_opts}

      alias Lockstep.Examples.CounterRace, warn: false

    #{body}
    end
    """

    [{^mod, _bytecode}] = Code.compile_string(source, "generated_ctest_module.exs")

    on_exit(fn ->
      :code.purge(mod)
      :code.delete(mod)
    end)

    mod
  end

  defp run_ctest(mod, name), do: apply(mod, :"test #{name}", [%{}])

  setup do
    dir = tmp_dir!()

    mod =
      compile_ctest_module(
        ~s(iterations: 40, strategy: :random, trace_dir: #{inspect(dir)}),
        """
          # Each iteration reports a value drawn from the strategy (Lockstep.random/1) to
          # the test process: the sequence pins down iterations, strategy and seed.
          defp report(value) do
            Lockstep.send(:persistent_term.get({__MODULE__, :listener}), {:ran, value})
          end

          ctest "atomic counter" do
            report(Lockstep.random(1_000_000))
            CounterRace.test_body(:atomic).()
          end

          ctest "atomic counter, overridden", iterations: 7, strategy: :pos, seed: 5 do
            report(Lockstep.random(1_000_000))
            CounterRace.test_body(:atomic).()
          end

          ctest "racy counter" do
            CounterRace.test_body(:racy).()
          end

          ctest "racy counter, overridden", strategy: {:pct, bug_depth: 2}, seed: 123 do
            CounterRace.test_body(:racy).()
          end

          ctest "racy counter, one iteration", iterations: 1, seed: 8 do
            CounterRace.test_body(:racy).()
          end

          test "a plain test still works" do
            assert 1 + 1 == 2
          end
        """
      )

    %{mod: mod, dir: dir}
  end

  test "ctest defines ordinary ExUnit tests", %{mod: mod} do
    names = mod.__ex_unit__().tests |> Enum.map(& &1.name) |> Enum.sort()

    assert names ==
             Enum.sort([
               :"test atomic counter",
               :"test atomic counter, overridden",
               :"test racy counter",
               :"test racy counter, overridden",
               :"test racy counter, one iteration",
               :"test a plain test still works"
             ])

    assert run_ctest(mod, "a plain test still works")
  end

  # What the same body reports when run through Lockstep.run/2 directly with `opts`.
  defp expected_reports(opts) do
    me = self()

    Lockstep.run(
      fn ->
        Lockstep.send(me, {:expected, Lockstep.random(1_000_000)})
        Lockstep.Examples.CounterRace.test_body(:atomic).()
      end,
      opts
    )

    collect(:expected)
  end

  defp collect(tag) do
    receive do
      {^tag, value} -> [value | collect(tag)]
    after
      0 -> []
    end
  end

  test "a passing body runs many times with the module defaults and ExUnit's seed", %{mod: mod} do
    :persistent_term.put({mod, :listener}, self())
    on_exit(fn -> :persistent_term.erase({mod, :listener}) end)

    assert :ok = run_ctest(mod, "atomic counter")
    reports = collect(:ran)
    assert length(reports) == 40
    assert length(Enum.uniq(reports)) > 1

    seed = ExUnit.configuration()[:seed]
    assert is_integer(seed)
    assert reports == expected_reports(iterations: 40, strategy: :random, seed: seed)
  end

  test "per-test options override the module defaults", %{mod: mod} do
    :persistent_term.put({mod, :listener}, self())
    on_exit(fn -> :persistent_term.erase({mod, :listener}) end)

    assert :ok = run_ctest(mod, "atomic counter, overridden")
    reports = collect(:ran)
    assert length(reports) == 7
    assert reports == expected_reports(iterations: 7, strategy: :pos, seed: 5)
  end

  test "a failing ctest raises BugFound whose message is the Lockstep report", %{
    mod: mod,
    dir: dir
  } do
    bug = assert_raise BugFound, fn -> run_ctest(mod, "racy counter") end

    assert bug.kind == :exception
    assert bug.strategy == :random
    assert bug.seed == ExUnit.configuration()[:seed]
    assert bug.iteration in 1..40
    assert bug.name == "#{inspect(mod)} racy counter"
    assert Path.dirname(bug.trace_path) == dir

    message = Exception.message(bug)
    assert message =~ "lost update"
    assert message =~ "Replay this exact schedule"
    assert message =~ bug.trace_path
    assert message =~ "#{inspect(mod)} racy counter"

    # ExUnit shows it as a normal failure with the report.
    formatted =
      ExUnit.Formatter.format_test_failure(
        %ExUnit.Test{
          name: :"test racy counter",
          module: mod,
          tags: %{file: "generated_ctest_module.exs", line: 1}
        },
        [{:error, bug, []}],
        1,
        100,
        fn _, msg -> msg end
      )

    assert formatted =~ "Replay this exact schedule"
    assert formatted =~ "lost update"
  end

  test "a failing ctest with overrides reports them", %{mod: mod} do
    bug = assert_raise BugFound, fn -> run_ctest(mod, "racy counter, overridden") end
    assert bug.strategy == {:pct, bug_depth: 2}
    assert bug.seed == 123
    assert bug.iteration in 1..40

    # The saved trace replays against the same body.
    body = Lockstep.Examples.CounterRace.test_body(:racy)
    replayed = assert_raise BugFound, fn -> Lockstep.replay(body, bug.trace_path) end
    assert replayed.schedule == bug.schedule
  end

  test "iterations: 1 runs a single iteration", %{mod: mod} do
    # One iteration either finds the bug in iteration 1 or passes: never more.
    case Lockstep.check(Lockstep.Examples.CounterRace.test_body(:racy),
           iterations: 1,
           seed: 8,
           strategy: :random,
           trace_dir: tmp_dir!()
         ) do
      {:error, _} ->
        bug = assert_raise BugFound, fn -> run_ctest(mod, "racy counter, one iteration") end
        assert bug.iteration == 1

      {:ok, _} ->
        assert :ok = run_ctest(mod, "racy counter, one iteration")
    end
  end

  test "ctest output says when more than a tenth of the iterations were inconclusive" do
    mod =
      compile_ctest_module("iterations: 20, max_steps: 40", """
        def example, do: CounterRace

        defp spin do
          Lockstep.yield()
          spin()
        end

        # Every second iteration spins until :max_steps; the counter lives outside the run.
        ctest "half spin" do
          counter = :persistent_term.get({__MODULE__, :counter})
          :counters.add(counter, 1, 1)
          if rem(:counters.get(counter, 1), 2) == 0, do: spin()
        end

        ctest "always spins" do
          spin()
        end
      """)

    :persistent_term.put({mod, :counter}, :counters.new(1, []))
    on_exit(fn -> :persistent_term.erase({mod, :counter}) end)

    stderr = ExUnit.CaptureIO.capture_io(:stderr, fn -> run_ctest(mod, "half spin") end)
    assert stderr =~ "#{inspect(mod)} half spin"
    assert stderr =~ "generated_ctest_module.exs:"
    assert stderr =~ "10 of 20 iterations"
    assert stderr =~ ":max_steps"

    # None completed: the test fails, with what happened and the knobs to turn.
    error = assert_raise Lockstep.InconclusiveError, fn -> run_ctest(mod, "always spins") end
    assert Exception.message(error) =~ "all 20 iterations"
    assert Exception.message(error) =~ ":fair_pct"
  end

  test "use Lockstep.Test keeps ExUnit's :async out of the Lockstep defaults" do
    mod =
      compile_ctest_module("async: true, iterations: 3", """
        ctest "atomic" do
          CounterRace.test_body(:atomic).()
        end
      """)

    # Lockstep.run/2 would raise ArgumentError on an unknown :async option.
    assert :ok = run_ctest(mod, "atomic")
  end

  describe "the ctest body is a named function" do
    test "the trace records it and the report prints commands that replay it", %{
      mod: mod,
      dir: dir
    } do
      bug = assert_raise BugFound, fn -> run_ctest(mod, "racy counter") end
      body = :"ctest racy counter"

      assert bug.replay_run == {mod, body}
      assert function_exported?(mod, body, 0)

      assert %{module: ^mod, function: ^body, source: "generated_ctest_module.exs"} =
               Lockstep.TraceFile.load!(bug.trace_path).body

      message = Exception.message(bug)
      refute message =~ "MyModule.body_fun"
      refute message =~ "--run"
      assert message =~ "    mix lockstep.replay #{bug.trace_path}\n"
      assert message =~ "mix test generated_ctest_module.exs:"

      # The printed Elixir command is valid code that replays the bug.
      [command] = Regex.run(~r/Lockstep\.replay\(&.+\)$/m, message)

      assert command ==
               "Lockstep.replay(&#{inspect(mod)}.\"ctest racy counter\"/0, #{inspect(bug.trace_path)})"

      replayed = assert_raise BugFound, fn -> Code.eval_string(command) end
      assert replayed.schedule == bug.schedule
      assert Path.dirname(replayed.trace_path) == dir
    end

    test "ctests of one name in two describes, and ctests made in a for, get their own body" do
      mod =
        compile_ctest_module("iterations: 3", """
          describe "a" do
            ctest "same" do
              :ok
            end
          end

          describe "b" do
            ctest "same" do
              raise "b"
            end
          end

          for n <- [1, 2] do
            ctest "made in a for \#{n}" do
              if unquote(n) == 2, do: raise("two")
              :ok
            end
          end
        """)

      assert :ok = mod."ctest same"()
      assert_raise RuntimeError, "b", fn -> mod."ctest same (2)"() end
      assert :ok = mod."ctest made in a for 1"()
      assert_raise RuntimeError, "two", fn -> mod."ctest made in a for 2"() end

      assert :ok = run_ctest(mod, "a same")
      bug = assert_raise BugFound, fn -> run_ctest(mod, "b same") end
      assert bug.replay_run == {mod, :"ctest same (2)"}
      bug = assert_raise BugFound, fn -> run_ctest(mod, "made in a for 2") end
      assert bug.replay_run == {mod, :"ctest made in a for 2"}
    end
  end
end
