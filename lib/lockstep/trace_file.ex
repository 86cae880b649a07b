defmodule Lockstep.TraceFile do
  @moduledoc """
  Trace files: what a failing iteration leaves on disk so it can be replayed, shrunk and
  read later.

  A trace file is a map in Erlang's external term format, self-describing and versioned:

      %{
        format: :lockstep_trace,
        version: 1,
        lockstep_version: "0.1.0",
        name: "MyTest.test counter",       # the run's :name
        kind: :crash,                       # the failure kind
        reason: "** (RuntimeError) boom",   # formatted
        process: "P.2",                     # the failing process, when one failed
        iteration: 17, seed: 1234, iter_seed: 987_654_321,
        strategy: :pct,
        options: [max_steps: …, fail_on_max_steps: …, timeout: …, delivery: …, crash: …],
        fail_step: 23,
        schedule: [{:run, "P"}, {:deliver, "P.1", "P"}, {:random, 2}, …],
        events: [{1, {:start, "P"}}, …]     # payloads as {:"$inspected", text}
      }

  Payloads and reasons are stored inspected, so loading with `binary_to_term(bin, [:safe])`
  never needs atoms or functions of the program under test.
  """

  @version 1

  # Loading with [:safe] only accepts atoms that already exist. These are every atom a
  # trace file of this version may hold; naming them here creates them when this module
  # loads, even in a VM (a mix task) that never loaded the NIF.
  @trace_atoms [
    :lockstep_trace,
    :"$inspected",
    :start,
    :spawn,
    :spawn_link,
    :send,
    :deliver,
    :drop,
    :receive,
    :block,
    :yield,
    :random,
    :exit,
    :exit_signal,
    :external,
    :delivered,
    :in_flight,
    :dropped,
    :run,
    :normal,
    :killed_outside_lockstep,
    :"$lockstep_not_captured",
    :exception,
    :crash,
    :deadlock,
    :stuck,
    :max_steps,
    :pct,
    :pos,
    :fair_pct,
    :idpct,
    :instant,
    :delayed,
    :fail,
    :ignore,
    :bug_depth,
    :fair_switch,
    :d_min,
    :d_max,
    :fail_on_max_steps,
    :timeout,
    :delivery,
    :iterations,
    :timers,
    :on_idle,
    :anytime,
    :fire,
    :link,
    :unlink,
    :monitor,
    :demonitor,
    :trap_exit,
    :exit_sent,
    :exit_trapped,
    :exit_ignored,
    :down,
    :alive,
    :register,
    :unregister,
    :whereis,
    :send_unregistered,
    :send_dropped,
    :now,
    :sleep,
    :timer_started,
    :timer_fired,
    :timer_cancelled,
    :receive_timeout,
    :nif,
    :cut,
    :deferred,
    :node_started,
    :node_stopped,
    :partitioned,
    :healed,
    :tick,
    :nodedown,
    :monitor_node,
    :set_ticktime,
    :global_register,
    :global_unregister,
    :global_whereis,
    :global_conflict,
    :global_wait,
    :global_name_conflict,
    :noproc,
    :noconnection,
    :killed
  ]

  @doc false
  def trace_atoms, do: @trace_atoms

  @doc "The trace format version this Lockstep writes and reads."
  @spec version() :: pos_integer()
  def version, do: @version

  @doc false
  def save!(bug, cfg, path \\ nil) do
    dir = cfg.trace_dir
    File.mkdir_p!(dir)
    file = "#{slug(cfg.name)}-seed#{cfg.seed}-iter#{bug.iteration}.lockstep"
    path = path || Path.join(dir, file)

    data = %{
      format: :lockstep_trace,
      version: @version,
      lockstep_version: lockstep_version(),
      name: cfg.name,
      kind: bug.kind,
      reason: Lockstep.Report.format_reason(bug.reason),
      process: bug.process,
      iteration: bug.iteration,
      seed: bug.seed,
      iter_seed: bug.iter_seed,
      strategy: bug.strategy,
      options: [
        max_steps: cfg.max_steps,
        fail_on_max_steps: cfg.fail_on_max_steps,
        timeout: cfg.timeout,
        delivery: cfg.delivery,
        crash: cfg.crash,
        timers: cfg.timers
      ],
      fail_step: bug.fail_step,
      steps: bug.steps,
      proc_nodes: bug.proc_nodes,
      schedule: bug.schedule,
      events:
        (bug.trace || [])
        |> Lockstep.Report.display_trace(bug.pid_names)
        |> Enum.map(&sanitize_event/1)
    }

    tmp = path <> ".tmp"
    File.write!(tmp, :erlang.term_to_binary(data, compressed: 6))
    File.rename!(tmp, path)
    path
  end

  @doc """
  Loads and checks a trace file. Raises `Lockstep.TraceError` when it is missing, corrupt,
  not a Lockstep trace, or of a version this build cannot read.
  """
  @spec load!(Path.t()) :: map()
  def load!(path) do
    bin =
      case File.read(path) do
        {:ok, bin} ->
          bin

        {:error, reason} ->
          raise Lockstep.TraceError,
            path: path,
            reason:
              "#{:file.format_error(reason)} (is the path right? traces are saved " <>
                "under _build/lockstep/traces by default)"
      end

    term =
      try do
        :erlang.binary_to_term(bin, [:safe])
      rescue
        ArgumentError ->
          raise Lockstep.TraceError,
            path: path,
            reason: "the file is corrupt or not in Erlang's external term format"
      end

    case term do
      %{format: :lockstep_trace, version: @version} = data ->
        validate!(data, path)

      %{format: :lockstep_trace, version: other} ->
        raise Lockstep.TraceError,
          path: path,
          reason:
            "it is trace format version #{inspect(other)}, this Lockstep " <>
              "(#{lockstep_version()}) reads version #{@version}"

      _ ->
        raise Lockstep.TraceError, path: path, reason: "it is not a Lockstep trace file"
    end
  end

  defp validate!(data, path) do
    required = [:schedule, :seed, :iter_seed, :iteration, :options, :kind, :events]

    case Enum.reject(required, &Map.has_key?(data, &1)) do
      [] ->
        unless is_list(data.schedule) do
          raise Lockstep.TraceError, path: path, reason: "its schedule is not a list"
        end

        data

      missing ->
        raise Lockstep.TraceError,
          path: path,
          reason: "it lacks the fields #{inspect(missing)}"
    end
  end

  @doc false
  def sanitize_event({step, event}) do
    {step, event |> Tuple.to_list() |> Enum.map(&sanitize_field/1) |> List.to_tuple()}
  end

  defp sanitize_field(value) when is_binary(value) or is_atom(value) or is_integer(value),
    do: value

  defp sanitize_field({kind, _reason, _st} = reason) when kind in [:error, :exit, :throw],
    do: {:"$inspected", Lockstep.Report.format_reason(reason)}

  defp sanitize_field(other), do: {:"$inspected", Lockstep.Report.payload(other)}

  defp slug(name) do
    name
    |> to_string()
    |> String.replace(~r/[^A-Za-z0-9_.-]+/, "_")
    |> String.slice(0, 80)
  end

  defp lockstep_version do
    case Application.spec(:lockstep, :vsn) do
      nil -> "unknown"
      vsn -> to_string(vsn)
    end
  end
end
