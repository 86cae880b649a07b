defmodule Lockstep.Instrument do
  @moduledoc """
  Runs unmodified modules under Lockstep's control (SPEC §9).

  `instrument!/1` reads a module's debug info (its Erlang abstract code: Elixir and Erlang
  modules alike), rewrites the operations whose outcome depends on the interleaving —
  `send`, `receive`, `spawn*`, links, monitors, exit signals, registered names, timers,
  virtual time, `:ets`, `:atomics`, `:counters`, `:persistent_term`, `:rand.uniform/1` —
  into sync points, and loads the result in place of the original. You rarely call it
  yourself: the `:instrument` option of `Lockstep.run/2`, `Lockstep.check/2`,
  `Lockstep.replay/3`, `Lockstep.shrink/3` and `use Lockstep.Test` does.

      Lockstep.run(fn -> MyApp.RateLimiter.hit("k") end, instrument: [MyApp.RateLimiter])

  Rules the rewritten code keeps:

    * In a process that is not managed by a run, it does exactly what the original does
      (same results, same exceptions, same messages) at the cost of one process-dictionary
      look-up per operation: ExUnit, Logger and your application's processes keep working.
    * Each module is instrumented at most once per VM: a second run pays one
      `module_info(:md5)` check. A module recompiled since is instrumented again.
    * Modules read from disk are cached on disk too, under `_build/lockstep/instrumented/`
      (keyed by the module's MD5 and by Lockstep's instrumenter; the directory is the
      `:lockstep` application's `:instrument_cache_dir`): a fresh VM loads OTP's
      instrumented modules in milliseconds instead of rewriting them for seconds.
    * Nothing is ever purged while a process may run it: no process outside a run is
      killed by instrumentation. Concurrent instrumentation of the same module (two async
      test modules) is serialised.
    * Line numbers survive: stack traces point at your file and line.

  Modules that cannot be instrumented raise `Lockstep.InstrumentError` naming the module
  and the fix: one that does not exist, one compiled without debug info, a NIF module,
  Lockstep's own modules and the runtime system's (`:erlang`, `:kernel`'s modules).

  Test modules are compiled in memory and `mix test` strips their debug info:
  `use Lockstep.Test` (always) and `use Lockstep.Instrumented` (any module) turn debug info
  on and instrument the module from its bytecode as soon as it is compiled.
  """

  alias Lockstep.Instrument.Rewrite
  alias Lockstep.InstrumentError

  @ops_modules [
    Lockstep.Instrument.Ops.Processes,
    Lockstep.Instrument.Ops.Time,
    Lockstep.Instrument.Ops.State
  ]

  @marker :lockstep_instrumented

  # OTP's process machinery (SPEC §9 "OTP comes along"): instrumented whenever `:instrument`
  # is non-empty, and alone with `instrument: [:otp]`. In place: a managed process's
  # GenServer.call, Task.async or Supervisor restart are then sync points, wherever the
  # call comes from; every other process runs them exactly as before.
  @otp_modules [
    :proc_lib,
    :gen,
    :gen_server,
    :gen_statem,
    :gen_event,
    :supervisor,
    :supervisor_bridge,
    :sys,
    :timer,
    GenServer,
    Agent,
    Agent.Server,
    Task,
    Task.Supervised,
    Task.Supervisor,
    Supervisor,
    DynamicSupervisor,
    Registry,
    Registry.Partition,
    Registry.Supervisor,
    PartitionSupervisor
  ]

  @typedoc "What `:instrument` accepts: module atoms and `{:app, app}` (every module of `app`)."
  @type spec :: module() | {:app, atom()}

  @doc """
  Instruments every module `specs` names and returns the modules, in order.

  Raises `Lockstep.InstrumentError` for a module that cannot be instrumented, and
  `ArgumentError` for something that is not a module or `{:app, app}`.
  """
  @spec instrument!(spec() | [spec()]) :: [module()]
  def instrument!(specs) do
    modules = modules!(specs)
    Enum.each(modules, &instrument_module!/1)
    modules
  end

  @doc """
  Whether the loaded code of `module` is Lockstep's instrumented version.
  """
  @spec instrumented?(module()) :: boolean()
  def instrumented?(module) when is_atom(module) do
    :erlang.module_loaded(module) and
      Keyword.has_key?(module.module_info(:attributes), @marker)
  end

  def instrumented?(_other), do: false

  @doc """
  OTP's process machinery, instrumented along with any module (`instrument: [:otp]` alone).
  """
  @spec otp_modules() :: [module()]
  def otp_modules, do: @otp_modules

  @doc """
  Expands `specs` (module atoms, `{:app, app}` and `:otp`) into the list of modules,
  validating the shape but not instrumenting. A non-empty list includes OTP's process
  machinery (`otp_modules/0`), last.
  """
  @spec modules!(spec() | :otp | [spec() | :otp]) :: [module()]
  def modules!(specs) do
    case specs |> List.wrap() |> Enum.flat_map(&entry!/1) |> Enum.uniq() do
      [] -> []
      modules -> Enum.uniq((modules -- @otp_modules) ++ @otp_modules)
    end
  end

  defp entry!(spec) do
    case spec do
      :otp ->
        @otp_modules

      {:app, app} when is_atom(app) ->
        app_modules!(app)

      module when is_atom(module) and module not in [nil, true, false] ->
        [module]

      other ->
        raise ArgumentError,
              "invalid :instrument entry #{inspect(other)}: expected a module (MyApp.Server, " <>
                ":my_erlang_module), {:app, app} for every module of an application, or :otp"
    end
  end

  defp app_modules!(app) do
    case Application.load(app) do
      :ok -> :ok
      {:error, {:already_loaded, ^app}} -> :ok
      {:error, reason} -> raise InstrumentError, module: app, reason: {:app, reason}
    end

    Application.spec(app, :modules) || []
  end

  @doc false
  # From `use Lockstep.Test` and `use Lockstep.Instrumented`: the module was just compiled
  # (in memory, perhaps), and `binary` is its bytecode.
  def after_compile!(module, binary) do
    with_lock(module, fn -> load_instrumented!(module, binary, :in_memory) end)
  end

  @doc false
  # The ops table: `{module, function, arity}` => `{ops_module, target}`.
  def table do
    case :persistent_term.get({__MODULE__, :table}, nil) do
      nil ->
        table =
          for ops <- @ops_modules,
              Code.ensure_loaded?(ops),
              {mfa, target} <- ops.__ops__(),
              into: %{},
              do: {mfa, {ops, target}}

        :persistent_term.put({__MODULE__, :table}, table)
        table

      table ->
        table
    end
  end

  # Instrumenting one module --------------------------------------------------------------

  defp instrument_module!(module) do
    refuse_ours!(module)

    unless current?(module) do
      with_lock(module, fn ->
        unless current?(module), do: load_instrumented!(module, object_code!(module), :disk)
      end)
    end
  end

  # Already instrumented, from the code loaded now.
  defp current?(module) do
    case :persistent_term.get({__MODULE__, module}, nil) do
      nil -> false
      md5 -> :erlang.module_loaded(module) and module.module_info(:md5) == md5
    end
  end

  @doc false
  # OTP's and Elixir's own modules: those of `otp_modules/0` and any loaded from the Erlang
  # or Elixir installation. The report shows their operations at the user's line that
  # called into them.
  @spec library?(module()) :: boolean()
  def library?(module) do
    module in @otp_modules or
      case :code.which(module) do
        path when is_list(path) ->
          path = List.to_string(path)
          Enum.any?(library_roots(), &String.starts_with?(path, &1))

        _ ->
          false
      end
  end

  defp library_roots do
    elixir =
      case :code.lib_dir(:elixir) do
        dir when is_list(dir) -> [dir |> List.to_string() |> Path.dirname()]
        _ -> []
      end

    [List.to_string(:code.root_dir()) | elixir]
  end

  @doc false
  # Lockstep's own runtime and ops modules (see `refuse_ours!/1`).
  @spec ours?(module()) :: boolean()
  def ours?(module), do: lockstep_name?(module) and own_source?(module)

  # Lockstep's own modules are the `Lockstep`-named modules compiled from its lib/
  # (`lib/lockstep.ex`, `lib/lockstep/…`, its mix tasks); its test support and examples are user code like
  # any other. Judged from the module's own name and source path alone, so it holds
  # wherever the project was built.
  defp refuse_ours!(module) do
    if ours?(module), do: raise(InstrumentError, module: module, reason: :lockstep)
  end

  defp own_source?(module) do
    Code.ensure_loaded?(module) and
      case module.module_info(:compile)[:source] do
        source when is_list(source) ->
          source = List.to_string(source)

          String.contains?(source, ["/lib/lockstep/", "/lib/mix/tasks/lockstep."]) or
            String.ends_with?(source, "/lib/lockstep.ex")

        _ ->
          false
      end
  end

  defp lockstep_name?(Lockstep), do: true

  defp lockstep_name?(module),
    do:
      String.starts_with?(Atom.to_string(module), [
        "Elixir.Lockstep.",
        "Elixir.Mix.Tasks.Lockstep."
      ])

  defp object_code!(module) do
    case Code.ensure_loaded(module) do
      {:module, ^module} -> :ok
      {:error, _} -> raise InstrumentError, module: module, reason: :not_found
    end

    if runtime_system?(module) do
      raise InstrumentError, module: module, reason: :runtime_system
    end

    case :code.get_object_code(module) do
      {^module, binary, _file} -> binary
      :error -> raise InstrumentError, module: module, reason: :in_memory
    end
  end

  defp runtime_system?(module) do
    case :code.which(module) do
      :preloaded ->
        true

      path when is_list(path) ->
        path = List.to_string(path)

        Enum.any?([:erts, :kernel], fn app ->
          case :code.lib_dir(app) do
            {:error, _} -> false
            dir -> String.starts_with?(path, List.to_string(dir) <> "/")
          end
        end)

      _ ->
        false
    end
  end

  defp load_instrumented!(module, binary, origin) do
    {:ok, {^module, original_md5}} = :beam_lib.md5(binary)
    cache = if origin == :disk, do: cache_path(module, original_md5)

    instrumented =
      case cache && cached(cache, module, original_md5) do
        bin when is_binary(bin) ->
          bin

        _ ->
          bin = compile_instrumented!(module, binary, origin, original_md5)
          if cache, do: store(cache, bin)
          bin
      end

    load!(module, instrumented)
  end

  defp compile_instrumented!(module, binary, origin, original_md5) do
    forms = abstract_code!(module, binary, origin)

    if nif?(forms), do: raise(InstrumentError, module: module, reason: :nif)

    {forms, _operations} = Rewrite.forms(forms, table(), library?(module))
    forms = mark(forms, original_md5)

    # The compile info keeps naming the user's source file (trace files, mix tasks and
    # stack traces read it).
    source =
      case :beam_lib.chunks(binary, [:compile_info]) do
        {:ok, {^module, [compile_info: info]}} -> List.wrap(Keyword.take(info, [:source]))
        _ -> []
      end

    options = [:binary, :return_errors, :no_spawn_compiler_process | source]

    case :compile.forms(forms, options) do
      {:ok, ^module, instrumented} ->
        instrumented

      {:ok, ^module, instrumented, _warnings} ->
        instrumented

      {:error, errors, _warnings} ->
        raise InstrumentError, module: module, reason: {:compile, errors}
    end
  end

  defp load!(module, instrumented) do
    # The original stays loaded as old code for processes still in it; an older version
    # still in use by some process cannot be replaced without killing it.
    unless :code.soft_purge(module) do
      raise InstrumentError, module: module, reason: :old_code_in_use
    end

    file =
      case :code.which(module) do
        path when is_list(path) -> path
        _ -> ~c"#{module}.beam"
      end

    # stdlib's modules are sticky (protected from accidental replacement): unstick for the
    # load only.
    sticky? = :code.is_sticky(module)
    if sticky?, do: :code.unstick_mod(module)

    try do
      case :code.load_binary(module, file, instrumented) do
        {:module, ^module} -> :ok
        {:error, reason} -> raise InstrumentError, module: module, reason: {:load, reason}
      end
    after
      if sticky?, do: :code.stick_mod(module)
    end

    :persistent_term.put({__MODULE__, module}, module.module_info(:md5))
    :ok
  end

  # The disk cache (SPEC §9): instrumenting OTP's modules costs seconds in every fresh VM
  # (every `mix test`), loading their instrumented code from _build milliseconds. An entry
  # is keyed by the original module's MD5 and by the instrumenter's own code (the rewrite
  # and the ops modules: a new Lockstep rewrites again), and checked when read: its marker
  # must name the original MD5. The cache is best effort: an entry that cannot be read or
  # written is instrumented again.
  defp cache_path(module, original_md5) do
    dir = Application.get_env(:lockstep, :instrument_cache_dir, "_build/lockstep/instrumented")
    Path.join(dir, "#{module}-#{hex(original_md5)}-#{instrumenter_key()}.beam")
  end

  defp instrumenter_key do
    case :persistent_term.get({__MODULE__, :instrumenter_key}, nil) do
      nil ->
        md5s = for m <- [__MODULE__, Rewrite | @ops_modules], do: m.module_info(:md5)
        key = binary_part(hex(:erlang.md5(md5s)), 0, 12)
        :persistent_term.put({__MODULE__, :instrumenter_key}, key)
        key

      key ->
        key
    end
  end

  defp hex(bin), do: Base.encode16(bin, case: :lower)

  defp cached(path, module, original_md5) do
    with {:ok, bin} <- File.read(path),
         {:ok, {^module, [attributes: attributes]}} <- :beam_lib.chunks(bin, [:attributes]),
         [^original_md5] <- attributes[@marker] do
      bin
    else
      _ -> nil
    end
  end

  defp store(path, bin) do
    tmp = path <> ".tmp#{System.unique_integer([:positive])}"

    with :ok <- File.mkdir_p(Path.dirname(path)),
         :ok <- File.write(tmp, bin) do
      File.rename(tmp, path)
    end

    File.rm(tmp)
    :ok
  end

  defp abstract_code!(module, binary, origin) do
    case :beam_lib.chunks(binary, [:debug_info]) do
      {:ok, {^module, [debug_info: {:debug_info_v1, _backend, :none}]}} ->
        raise InstrumentError, module: module, reason: {:no_debug_info, origin}

      {:ok, {^module, [debug_info: {:debug_info_v1, backend, data}]}} ->
        case backend.debug_info(:erlang_v1, module, data, []) do
          {:ok, forms} -> forms
          {:error, _} -> raise InstrumentError, module: module, reason: {:no_debug_info, origin}
        end

      _ ->
        raise InstrumentError, module: module, reason: {:no_debug_info, origin}
    end
  end

  defp nif?(forms) do
    Enum.any?(forms, &match?({:attribute, _, :on_load, _}, &1)) and
      calls_load_nif?(forms)
  end

  defp calls_load_nif?(term) when is_tuple(term) do
    match?({:call, _, {:remote, _, {:atom, _, :erlang}, {:atom, _, :load_nif}}, _}, term) or
      term |> Tuple.to_list() |> calls_load_nif?()
  end

  defp calls_load_nif?(list) when is_list(list), do: Enum.any?(list, &calls_load_nif?/1)
  defp calls_load_nif?(_), do: false

  # `-lockstep_instrumented(OriginalMd5).`, after `-module`.
  defp mark(forms, md5) do
    Enum.flat_map(forms, fn
      {:attribute, anno, :module, _} = form -> [form, {:attribute, anno, @marker, md5}]
      form -> [form]
    end)
  end

  # Two test modules may instrument the same module at once: one does, the other waits.
  defp with_lock(module, fun) do
    :global.trans({{__MODULE__, module}, self()}, fun, [node()], :infinity)
  end
end
