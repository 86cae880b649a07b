defmodule Mix.Tasks.Lockstep.Shrink do
  @shortdoc "Shrinks a saved failing Lockstep schedule"
  @moduledoc """
  Looks for a shorter schedule that still fails the same way and saves it beside the
  original as `*.shrunk.lockstep`, then prints what shrank and its trace.

      mix lockstep.shrink PATH [--run MyApp.RaceTest.body [--file test/support/bodies.ex]]
                               [--max-attempts 500] [--time-budget-ms 30000]
                               [--timeout MS] [--max-trace-bytes N]

  The body is the one the trace recorded (a named function or a `ctest`), as for
  `mix lockstep.replay`; `--run Mod.fun` names another public zero-arity function, and
  `--file` loads the file that defines it first. Bad input is a one-line error and a
  non-zero exit status. Runs in the test environment unless `MIX_ENV` says otherwise.
  """

  use Mix.Task

  # Read by Mix only for tasks it can load before the project's dependencies (see
  # Lockstep.Tasks.in_test_env/3, which does the work).
  @preferred_cli_env :test

  @usage "usage: mix lockstep.shrink PATH [--run Mod.fun] [--file F] [--max-attempts N] " <>
           "[--time-budget-ms MS] [--timeout MS] [--max-trace-bytes N]"

  @switches [
    run: :string,
    file: :keep,
    max_attempts: :integer,
    time_budget_ms: :integer,
    timeout: :integer,
    max_trace_bytes: :integer
  ]

  @impl Mix.Task
  def run(args) do
    Lockstep.Tasks.in_test_env("lockstep.shrink", args, fn -> shrink(args) end)
  end

  defp shrink(args) do
    {path, opts} = Lockstep.Tasks.parse!(args, @switches, @usage)

    shrink_opts =
      Lockstep.Tasks.positive!(opts, :max_attempts, "--max-attempts") ++
        Lockstep.Tasks.positive!(opts, :time_budget_ms, "--time-budget-ms") ++
        Lockstep.Tasks.positive!(opts, :timeout, "--timeout") ++
        Lockstep.Tasks.positive!(opts, :max_trace_bytes, "--max-trace-bytes")

    file = Lockstep.Tasks.load!(path, shrink_opts)
    Mix.Task.run("app.start")

    fun =
      Lockstep.Tasks.one_line_errors(fn -> Lockstep.Tasks.body!(opts, file) end) ||
        Mix.raise(
          "the trace does not name its test body (it was an anonymous function): pass " <>
            "--run Module.function, a public zero-arity function running the same code. " <>
            @usage
        )

    case Lockstep.Tasks.one_line_errors(fn -> Lockstep.shrink(fun, path, shrink_opts) end) do
      {:ok, info} ->
        Mix.shell().info(Lockstep.Shrink.summary(path, info) <> "\n")
        Mix.shell().info(Exception.message(info.bug))

      {:error, {:does_not_reproduce, message}} ->
        Mix.raise("cannot shrink: " <> message)
    end
  end
end
