defmodule Mix.Tasks.Lockstep.Shrink do
  @shortdoc "Shrinks a saved failing Lockstep schedule"
  @moduledoc """
  Looks for a shorter schedule that still fails the same way and saves it beside the
  original as `*.shrunk.lockstep`, then prints its trace.

      mix lockstep.shrink PATH --run MyApp.RaceTest.body [--file test/support/bodies.ex]
                               [--max-attempts 500] [--time-budget-ms 30000]

  `--run Mod.fun` names the public zero-arity function that is the test body;
  `--file` loads the file that defines it first.
  """

  use Mix.Task

  @impl Mix.Task
  def run(args) do
    {opts, paths, invalid} =
      OptionParser.parse(args,
        strict: [run: :string, file: :keep, max_attempts: :integer, time_budget_ms: :integer]
      )

    usage =
      "usage: mix lockstep.shrink PATH --run Mod.fun [--file F] [--max-attempts N] [--time-budget-ms MS]"

    path =
      case {paths, invalid, opts[:run]} do
        {[path], [], run} when is_binary(run) -> path
        _ -> Mix.raise(usage)
      end

    Mix.Task.run("app.start")
    Enum.each(Keyword.get_values(opts, :file), &Code.require_file/1)
    fun = Lockstep.Tasks.resolve_fun!(opts[:run])

    shrink_opts =
      Keyword.take(opts, [:max_attempts, :time_budget_ms])
      |> Enum.map(fn {k, v} -> {k, v} end)

    result =
      try do
        Lockstep.shrink(fun, path, shrink_opts)
      rescue
        e in Lockstep.TraceError -> Mix.raise(Exception.message(e))
      end

    case result do
      {:ok, info} ->
        Mix.shell().info(
          "Shrunk #{path}: #{info.original_length} → #{info.new_length} decisions " <>
            "(#{info.attempts} attempts), saved to #{info.trace_path}\n"
        )

        Mix.shell().info(Exception.message(info.bug))

      {:error, {:does_not_reproduce, message}} ->
        Mix.raise("cannot shrink: " <> message)
    end
  end
end
