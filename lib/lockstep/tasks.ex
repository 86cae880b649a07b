defmodule Lockstep.Tasks do
  @moduledoc false
  # Shared helpers of the mix tasks: the test environment, argument parsing, loading a
  # trace, finding the test body, and turning every expected error into a one-line
  # Mix.Error (never a stack trace for bad input).

  alias Lockstep.TraceFile

  # Test environment -------------------------------------------------------------------

  @doc false
  # Test bodies (a ctest, a module under test/support) exist only in the test environment.
  # Elixir 1.14's Mix honours a task's @preferred_cli_env only for tasks it can load before
  # the project's dependencies are on the code path — never for a dependency's tasks, and
  # never for a project's own — so a task started in another environment, with MIX_ENV
  # not set, runs itself again in a `MIX_ENV=test mix` subprocess and exits with its
  # status. An explicit MIX_ENV is obeyed.
  def in_test_env(task, args, fun) do
    if reexec?(Mix.env(), System.get_env("MIX_ENV")) do
      reexec(task, args)
    else
      fun.()
    end
  end

  @doc false
  def reexec?(env, mix_env_var), do: env != :test and mix_env_var in [nil, ""]

  defp reexec(task, args) do
    mix =
      System.find_executable("mix") ||
        Mix.raise(
          "mix #{task} runs in the test environment, but no `mix` executable is on PATH to " <>
            "start it there; run MIX_ENV=test mix #{task} #{Enum.join(args, " ")}"
        )

    {_, status} =
      System.cmd(mix, [task | args], env: [{"MIX_ENV", "test"}], into: IO.stream(:stdio, :line))

    if status != 0, do: exit({:shutdown, status})
    :ok
  end

  # Arguments ----------------------------------------------------------------------------

  @doc false
  # OptionParser with every bad argument a usage error naming it.
  def parse!(args, switches, usage) do
    case OptionParser.parse(args, strict: switches) do
      {opts, [path], []} ->
        {path, opts}

      {_opts, paths, []} ->
        Mix.raise("expected one trace file, got #{length(paths)}. #{usage}")

      {_opts, _paths, [{switch, nil} | _]} ->
        Mix.raise("unknown option #{switch}. #{usage}")

      {_opts, _paths, [{switch, value} | _]} ->
        Mix.raise("invalid value #{inspect(value)} for #{switch}. #{usage}")
    end
  end

  @doc false
  def positive!(opts, key, flag) do
    case opts[key] do
      nil -> []
      n when n > 0 -> [{key, n}]
      n -> Mix.raise("#{flag} expects a positive integer, got #{n}")
    end
  end

  @doc false
  # Runs `fun`, turning the errors bad input can cause into one-line Mix errors.
  def one_line_errors(fun) do
    fun.()
  rescue
    e in [
      Lockstep.TraceError,
      ArgumentError,
      Code.LoadError,
      CompileError,
      SyntaxError,
      TokenMissingError,
      File.Error
    ] ->
      Mix.raise(one_line(Exception.message(e)))
  end

  @doc false
  def one_line(text), do: text |> String.trim() |> String.replace(~r/\s*\n\s*/, " ")

  # Trace files ----------------------------------------------------------------------------

  @doc false
  def load!(path, opts) do
    TraceFile.load!(path, Keyword.take(opts, [:max_trace_bytes]))
  rescue
    e in Lockstep.TraceError -> Mix.raise(one_line(Exception.message(e)))
  end

  @doc false
  def metadata(file) do
    """
    Lockstep trace #{file.name} (format v#{file.version}, written by Lockstep #{file.lockstep_version})
      kind: #{inspect(file.kind)}   process: #{file.process || "-"}
      seed: #{file.seed}   iteration: #{file.iteration}   iteration seed: #{file.iter_seed}
      strategy: #{inspect(file.strategy)}   options: #{inspect(file.options)}
      schedule: #{length(file.schedule)} decisions#{body_line(file.body)}
    """
  end

  defp body_line(nil), do: "   body: an anonymous function (not recorded)"
  defp body_line(%{module: m, function: f}), do: "   body: #{fun_text(m, f)}"

  @doc false
  def fun_text(module, function),
    do: "#{inspect(module)}.#{Macro.inspect_atom(:remote_call, function)}/0"

  @doc false
  def bug_from_file(file, path) do
    %Lockstep.BugFound{
      kind: file.kind,
      reason: {:"$inspected", file.reason || ""},
      process: file.process,
      details: file.history,
      iteration: file.iteration,
      seed: file.seed,
      iter_seed: file.iter_seed,
      strategy: file.strategy,
      fail_step: file.fail_step,
      schedule: file.schedule,
      trace: file.events,
      call_sites: file.call_sites,
      proc_labels: file.proc_labels,
      trace_path: path,
      name: file.name,
      nondeterminism: nil,
      steps: file.steps,
      proc_nodes: file.proc_nodes,
      replay_run: if(b = file.body, do: {b.module, b.function}),
      location: file.location
    }
  end

  # Test bodies ----------------------------------------------------------------------------

  @doc false
  # The body to replay: `--run` (after `--file`s) wins; otherwise the body the trace
  # recorded, loading its test file first when it is not compiled into the app. `nil`
  # when neither names one.
  def body!(opts, file) do
    Enum.each(Keyword.get_values(opts, :file), &require_file!/1)

    cond do
      target = opts[:run] -> resolve_fun!(target)
      body = file.body -> recorded_body!(body)
      true -> nil
    end
  end

  defp recorded_body!(%{module: module, function: function, source: source}) do
    unless exported?(module, function) do
      if is_binary(source) and String.ends_with?(source, ".exs") and File.regular?(source) do
        require_test_file!(source)
      end
    end

    unless exported?(module, function) do
      Mix.raise(
        "the trace's test body #{fun_text(module, function)} is not defined" <>
          if(source, do: " (it was in #{source})", else: "") <>
          ". It was renamed or removed, or its file is not loaded: pass --file F to load " <>
          "it, or --run Module.function to replay another body"
      )
    end

    Function.capture(module, function, 0)
  end

  defp exported?(module, function),
    do: Code.ensure_loaded?(module) and function_exported?(module, function, 0)

  # A test file (a ctest's module) is compiled the way `mix test` would: ExUnit started
  # without running anything, and the test_helper.exs of its test directory first.
  defp require_test_file!(source) do
    {:ok, _} = Application.ensure_all_started(:ex_unit)
    ExUnit.start(autorun: false)

    test_paths = Mix.Project.config()[:test_paths] || ["test"]
    source_abs = Path.expand(source)

    helper =
      Enum.find_value(test_paths, fn dir ->
        dir = Path.expand(dir)
        helper = Path.join(dir, "test_helper.exs")
        if String.starts_with?(source_abs, dir <> "/") and File.regular?(helper), do: helper
      end)

    if helper, do: require_file!(helper)
    require_file!(source)
  end

  defp require_file!(file) do
    Code.require_file(file)
  rescue
    e in [Code.LoadError, CompileError, SyntaxError, TokenMissingError, File.Error] ->
      Mix.raise("cannot load #{file}: " <> one_line(Exception.message(e)))
  end

  @doc false
  def resolve_fun!(target) do
    case Regex.run(~r/^(.+)\.([a-z_][A-Za-z0-9_]*[?!]?)$/, target) do
      [_, mod, fun] ->
        module = Module.concat([mod])

        unless exported_name?(module, fun) do
          Mix.raise(
            "#{target}/0 is not defined. --run needs a public zero-arity function; " <>
              "pass --file to load the file that defines it"
          )
        end

        Function.capture(module, String.to_existing_atom(fun), 0)

      _ ->
        Mix.raise(
          "--run expects Module.function (for example MyApp.RaceTest.body), got #{target}"
        )
    end
  end

  # Without creating the atom of a mistyped name.
  defp exported_name?(module, fun) do
    Code.ensure_loaded?(module) and
      Enum.any?(module.module_info(:exports), fn {name, arity} ->
        arity == 0 and Atom.to_string(name) == fun
      end)
  rescue
    _ -> false
  end
end
