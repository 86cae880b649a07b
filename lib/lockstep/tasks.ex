defmodule Lockstep.Tasks do
  @moduledoc false
  # Shared helpers of the mix tasks.

  def bug_from_file(file, path) do
    %Lockstep.BugFound{
      kind: file.kind,
      reason: {:"$inspected", file[:reason] || ""},
      process: file[:process],
      details: nil,
      iteration: file.iteration,
      seed: file.seed,
      iter_seed: file.iter_seed,
      strategy: file[:strategy],
      fail_step: file[:fail_step],
      schedule: file.schedule,
      trace: file.events,
      trace_path: path,
      name: file[:name],
      nondeterminism: nil,
      steps: file[:steps] || length(file.schedule),
      proc_nodes: file[:proc_nodes] || %{}
    }
  end

  def resolve_fun!(target) do
    case Regex.run(~r/^(.+)\.([a-z_][A-Za-z0-9_]*[?!]?)$/, target) do
      [_, mod, fun] ->
        module = Module.concat([mod])
        fun = String.to_atom(fun)

        unless Code.ensure_loaded?(module) and function_exported?(module, fun, 0) do
          Mix.raise(
            "#{target}/0 is not defined. --run needs a public zero-arity function; " <>
              "pass --file to load the file that defines it"
          )
        end

        Function.capture(module, fun, 0)

      _ ->
        Mix.raise(
          "--run expects Module.function (for example MyApp.RaceTest.body), got #{target}"
        )
    end
  end
end
