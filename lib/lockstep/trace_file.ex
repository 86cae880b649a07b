defmodule Lockstep.TraceFile do
  @moduledoc """
  Trace files: what a failing iteration leaves on disk so it can be replayed, shrunk and
  read later.

  A trace file (format version 2) is an *envelope* in Erlang's external term format,

      {:lockstep_trace, 2, atoms, payload}

  where `atoms` lists, as strings, the atoms the payload holds beyond Lockstep's own
  vocabulary (registered names, node names, the test body's module and function), and
  `payload` is the compressed external term format of a self-describing map:

      %{
        format: :lockstep_trace,
        version: 2,
        lockstep_version: "0.1.0",
        name: "MyTest.test counter",       # the run's :name
        kind: :crash,                       # the failure kind
        reason: "** (RuntimeError) boom",   # formatted
        process: "P.2",                     # the failing process, when one failed
        iteration: 17, seed: 1234, iter_seed: 987_654_321,
        strategy: :pct,
        options: [max_steps: …, fail_on_max_steps: …, timeout: …, delivery: …, crash: …,
                  timers: …, blocked_at_end: …, strict_control: …],
        fail_step: 23, steps: 41,
        proc_nodes: %{"P.2" => :b@host},
        schedule: [{:run, "P"}, {:deliver, "P.1", "P"}, {:random, 2}, …],
        events: [{1, {:start, "P"}}, …],   # payloads as {:"$inspected", text}
        call_sites: %{4 => "lib/my_app/counter.ex:12"},   # events of instrumented code,
                                            # by 0-based index in events
        proc_labels: %{"P.1" => "MyApp.Account"},   # modules of OTP behaviour processes
        body: %{module: MyTest, function: :"ctest counter", source: "test/my_test.exs"},
        location: "test/my_test.exs:12"     # the ctest, when there is one
      }

  Payloads and reasons are stored inspected. Loading creates the listed atoms (at most
  #{10_000}, each a plain atom text) and then decodes the payload with
  `binary_to_term(bin, [:safe])`, so a file written in one VM loads in a fresh one while a
  hostile file cannot exhaust the atom table. Every field is checked; anything malformed
  raises `Lockstep.TraceError` saying what is wrong. Files and decoded payloads larger
  than `:max_trace_bytes` (#{div(16 * 1024 * 1024, 1024 * 1024)} MiB by default) are
  refused before they are decoded. Version 1 files (a bare map) still load.

  The same envelope, without the events, Base64-encoded (URL alphabet, no padding) is the
  *encoded schedule* a report prints when the file could not be written:
  `Lockstep.replay(body, {:schedule, text})` replays it.
  """

  alias Lockstep.TraceFile.Check

  @version 2
  @max_new_atoms 10_000
  @default_max_bytes 16 * 1024 * 1024

  # Loading with [:safe] only accepts atoms that already exist. These are the atoms of
  # Lockstep's own vocabulary: the events and decisions of Lockstep.Trace, with every
  # atom their fields may hold, then the failure kinds, strategies, options and fields of
  # the file. Naming them here creates them when this module loads, even in a VM (a mix
  # task) that never loaded the NIF. Any other atom a file holds (a registered name, a
  # node, the test body's module) is listed in the file's envelope.
  @trace_atoms Lockstep.Trace.atoms() ++
                 [
                   :lockstep_trace,
                   # failure kinds
                   :exception,
                   :crash,
                   :deadlock,
                   :stuck,
                   :max_steps,
                   :linearizability,
                   :uncontrolled,
                   # strategies and their options
                   :pct,
                   :pos,
                   :fair_pct,
                   :idpct,
                   :bug_depth,
                   :fair_switch,
                   :d_min,
                   :d_max,
                   # run options and their values
                   :iterations,
                   :fail_on_max_steps,
                   :timeout,
                   :delivery,
                   :instant,
                   :delayed,
                   :fail,
                   :ignore,
                   :strict,
                   :timers,
                   :on_idle,
                   :anytime,
                   :blocked_at_end,
                   :kill,
                   :strict_control,
                   # the body
                   :module,
                   :function,
                   :source,
                   # the fields of the file
                   :format,
                   :version,
                   :lockstep_version,
                   :name,
                   :kind,
                   :reason,
                   :process,
                   :iteration,
                   :seed,
                   :iter_seed,
                   :strategy,
                   :options,
                   :fail_step,
                   :steps,
                   :proc_nodes,
                   :schedule,
                   :events,
                   :call_sites,
                   :proc_labels,
                   :history,
                   :body,
                   :location
                 ]

  @doc false
  def trace_atoms, do: @trace_atoms

  @doc "The trace format version this Lockstep writes (it reads versions 1 and 2)."
  @spec version() :: pos_integer()
  def version, do: @version

  @doc "The default of `:max_trace_bytes`: the largest file and decoded payload loaded."
  @spec default_max_bytes() :: pos_integer()
  def default_max_bytes, do: @default_max_bytes

  @doc false
  # The options of a run that a trace file records, and replay reuses. One table for the
  # writer and the reader: a key written here is a key `load!/2` accepts.
  def saved_options, do: Check.saved_options()

  # Writing --------------------------------------------------------------------------------

  @doc false
  # Saves the failing iteration. Returns `{:ok, path}`, or `{:error, why}` when the file
  # cannot be written (the caller then reports the encoded schedule instead): a trace
  # that cannot be saved must never replace the bug.
  @spec save(Lockstep.BugFound.t(), map(), Path.t() | nil) ::
          {:ok, Path.t()} | {:error, String.t()}
  def save(bug, cfg, path \\ nil) do
    dir = cfg.trace_dir

    with :ok <- check_dir(dir, path),
         path = path || Path.join(dir, file_name(cfg.name, cfg.seed, bug.iteration)),
         :ok <- mkdir(Path.dirname(path)),
         :ok <- write_atomically(path, envelope(data(bug, cfg, true))) do
      {:ok, path}
    end
  end

  @doc false
  # The encoded schedule: everything replay needs (seeds, options, schedule, body), as
  # printable text. `Lockstep.replay(body, {:schedule, text})` reads it.
  @spec encode(Lockstep.BugFound.t(), map()) :: String.t()
  def encode(bug, cfg) do
    bug |> data(cfg, false) |> envelope() |> Base.url_encode64(padding: false)
  end

  defp data(bug, cfg, events?) do
    data = %{
      format: :lockstep_trace,
      version: @version,
      lockstep_version: lockstep_version(),
      name: cfg.name,
      kind: bug.kind,
      process: bug.process,
      iteration: bug.iteration,
      seed: bug.seed,
      iter_seed: bug.iter_seed,
      strategy: bug.strategy,
      options: for({key, _check} <- Check.saved_options(), do: {key, Map.fetch!(cfg, key)}),
      fail_step: bug.fail_step,
      steps: bug.steps,
      proc_nodes: bug.proc_nodes || %{},
      schedule: bug.schedule,
      body: body(bug.replay_run),
      location: cfg[:location]
    }

    if events? do
      Map.merge(data, %{
        reason: Lockstep.Report.format_reason(bug.reason),
        events:
          (bug.trace || [])
          |> Lockstep.Report.display_trace(bug.pid_names)
          |> Enum.map(&sanitize_event/1),
        call_sites: bug.call_sites || %{},
        proc_labels: bug.proc_labels || %{},
        history: history(bug)
      })
    else
      Map.merge(data, %{
        reason: nil,
        events: [],
        call_sites: %{},
        proc_labels: %{},
        history: nil
      })
    end
  end

  defp body({module, function}) do
    source =
      try do
        case module.module_info(:compile)[:source] do
          nil -> nil
          source -> source |> to_string() |> Path.relative_to_cwd()
        end
      rescue
        _ -> nil
      end

    %{module: module, function: function, source: source}
  end

  defp body(nil), do: nil

  defp envelope(data) do
    own = MapSet.new([true, false, nil | @trace_atoms])

    atoms =
      data
      |> atoms_in(MapSet.new())
      |> MapSet.difference(own)
      |> Enum.map(&Atom.to_string/1)
      |> Enum.sort()

    payload = :erlang.term_to_binary(data, compressed: 6)
    :erlang.term_to_binary({:lockstep_trace, @version, atoms, payload})
  end

  defp atoms_in(atom, acc) when is_atom(atom), do: MapSet.put(acc, atom)
  defp atoms_in([head | tail], acc), do: atoms_in(tail, atoms_in(head, acc))
  defp atoms_in(tuple, acc) when is_tuple(tuple), do: atoms_in(Tuple.to_list(tuple), acc)

  defp atoms_in(map, acc) when is_map(map),
    do: map |> Map.to_list() |> atoms_in(acc)

  defp atoms_in(_other, acc), do: acc

  defp check_dir(_dir, path) when is_binary(path), do: :ok

  defp check_dir("", _path) do
    {:error,
     "the trace directory is an empty string (is LOCKSTEP_TRACE_DIR set to \"\"?); " <>
       "unset it or point it, or the :trace_dir option, at a writable directory"}
  end

  defp check_dir(dir, _path) do
    if String.contains?(dir, <<0>>),
      do: {:error, "the trace directory #{inspect(dir)} contains a NUL byte"},
      else: :ok
  end

  defp mkdir(dir) do
    case File.mkdir_p(dir) do
      :ok ->
        :ok

      {:error, reason} ->
        {:error,
         "cannot create the trace directory #{inspect(dir)}: #{:file.format_error(reason)}; " <>
           "point :trace_dir (or LOCKSTEP_TRACE_DIR) at a writable directory"}
    end
  end

  # Runs sharing a name and seed (async tests calling one helper) fail at the same moment:
  # the OS pid and a VM-unique integer make every run's file its own.
  defp file_name(name, seed, iteration) do
    unique = "#{System.pid()}-#{System.unique_integer([:positive])}"
    "#{slug(name)}-seed#{seed}-iter#{iteration}-#{unique}.lockstep"
  end

  # Written under a temporary name of its own, then renamed: a reader never sees half a
  # file, and two writers of one path never share a temporary file.
  defp write_atomically(path, bin) do
    tmp = "#{path}.#{System.unique_integer([:positive])}.tmp"

    result =
      with {:error, reason} <- File.write(tmp, bin) do
        {:error, "cannot write #{inspect(tmp)}: #{:file.format_error(reason)}"}
      end

    result =
      with :ok <- result,
           {:error, reason} <- File.rename(tmp, path) do
        {:error,
         "cannot rename #{inspect(tmp)} to #{inspect(path)}: #{:file.format_error(reason)}"}
      end

    File.rm(tmp)

    with {:error, why} <- result do
      {:error, why <> "; point :trace_dir (or LOCKSTEP_TRACE_DIR) at a writable directory"}
    end
  end

  # Loading --------------------------------------------------------------------------------

  @doc """
  A message sequence chart of a failing iteration, as an SVG document (a binary): one lane
  per process (its symbolic name, with its registered name or module and node), one row
  per event, arrows for messages (from the send to the receive that took it), exit signals
  and `:DOWN`s, timers as dotted stretches of their owner's lane, partitions and stopped
  nodes as shaded bands, the failing step in red and the causal slice
  (`Lockstep.Trace.Slice`) drawn in full with the other events faded. Each mark's
  `<title>` holds the event's full text (a browser shows it on hover).

  `source` is a `Lockstep.BugFound` or the path of a trace file; `opts` are passed to
  `load!/2` for a path. A failing run writes this beside its trace file
  (`svg_path/1`) and its report prints the path.
  """
  @spec to_svg(Lockstep.BugFound.t() | Path.t(), keyword()) :: binary()
  def to_svg(source, opts \\ [])

  def to_svg(%Lockstep.BugFound{} = bug, _opts) do
    Lockstep.Trace.SVG.render(%{
      bug
      | trace: Lockstep.Report.display_trace(bug.trace || [], bug.pid_names || %{})
    })
  end

  def to_svg(path, opts) when is_binary(path) do
    path |> load!(opts) |> Lockstep.Tasks.bug_from_file(path) |> to_svg()
  end

  def to_svg(other, _opts) do
    raise ArgumentError,
          "Lockstep.TraceFile.to_svg/2 expects a %Lockstep.BugFound{} or the path of a " <>
            "trace file, got: #{inspect(other)}"
  end

  @doc "Where the picture of the trace file at `path` goes: `path` with `.svg` for `.lockstep`."
  @spec svg_path(Path.t()) :: Path.t()
  def svg_path(path), do: Path.rootname(path, ".lockstep") <> ".svg"

  @doc """
  Loads and checks a trace file, or an encoded schedule given as `{:schedule, text}`.

  Raises `Lockstep.TraceError` when the file is missing, corrupt, malformed, not a
  Lockstep trace, of a version this build cannot read, or larger than
  `:max_trace_bytes` (default #{div(16 * 1024 * 1024, 1024 * 1024)} MiB), the limit on
  both the file and its decoded payload.
  """
  @spec load!(Path.t() | {:schedule, String.t()}, keyword()) :: map()
  def load!(source, opts \\ []) do
    max = max_bytes!(opts)

    {label, bin} = read!(source, max)
    load_binary!(bin, label, max)
  end

  defp max_bytes!(opts) do
    case Keyword.get(opts, :max_trace_bytes, @default_max_bytes) do
      n when is_integer(n) and n > 0 ->
        n

      other ->
        raise ArgumentError,
              "invalid value for :max_trace_bytes: got #{inspect(other)}, expected a " <>
                "positive integer (bytes)"
    end
  end

  defp read!({:schedule, text}, max) when is_binary(text) do
    label = "(encoded schedule)"
    text = String.trim(text)

    if byte_size(text) > max do
      fail!(label, too_big("it is #{byte_size(text)} bytes", max))
    end

    case Base.url_decode64(text, padding: false) do
      {:ok, bin} ->
        {label, bin}

      :error ->
        fail!(
          label,
          "it is not an encoded schedule (Base64, URL alphabet) as a Lockstep report " <>
            "prints it; copy the whole text after {:schedule,"
        )
    end
  end

  defp read!(path, max) when is_binary(path) or is_list(path) do
    path = to_string(path)

    case File.stat(path) do
      {:ok, %File.Stat{type: :regular, size: size}} when size > max ->
        fail!(path, too_big("it is #{size} bytes", max))

      _ ->
        :ok
    end

    case File.read(path) do
      {:ok, bin} ->
        {path, bin}

      {:error, reason} ->
        fail!(
          path,
          "#{:file.format_error(reason)} (is the path right? traces are saved under " <>
            "_build/lockstep/traces by default, or :trace_dir / LOCKSTEP_TRACE_DIR)"
        )
    end
  end

  defp read!(other, _max) do
    raise ArgumentError,
          "expected the path of a trace file or {:schedule, text} (the encoded schedule a " <>
            "report prints), got: #{inspect(other, limit: 5)}"
  end

  defp load_binary!(bin, label, max) do
    case decode!(bin, label, max, "the file") do
      {:lockstep_trace, @version, atoms, payload} when is_binary(payload) ->
        create_atoms!(atoms, label)

        case decode!(payload, label, max, "its payload") do
          %{format: :lockstep_trace, version: @version} = data ->
            Check.check!(data, @version, label)

          other ->
            damaged!(
              label,
              "its payload is #{Check.show(other)}, expected a Lockstep trace map " <>
                "(format: :lockstep_trace, version: #{@version})"
            )
        end

      %{format: :lockstep_trace, version: 1} = data ->
        Check.check!(data, 1, label)

      %{format: :lockstep_trace, version: version} ->
        fail!(label, unknown_version(version))

      {:lockstep_trace, @version, _atoms, payload} ->
        damaged!(label, "its payload is #{Check.show(payload)}, expected a binary")

      {:lockstep_trace, version, _, _} ->
        fail!(label, unknown_version(version))

      _ ->
        damaged!(
          label,
          "it is not a Lockstep trace file (no {:lockstep_trace, version, …} envelope)"
        )
    end
  end

  defp unknown_version(version) do
    "it is trace format version #{Check.show(version)}; this Lockstep " <>
      "(#{lockstep_version()}) reads versions 1 and #{@version}. Open it with the Lockstep " <>
      "that wrote it, or re-run the search to save a fresh trace"
  end

  # External term format, checked before it is decoded: a compressed term declares its
  # decoded size in its header, so a small file cannot expand past the limit.
  defp decode!(bin, label, max, what) do
    case bin do
      <<131, 80, size::32, _::binary>> when size > max ->
        fail!(label, too_big("#{what} decodes to #{size} bytes", max))

      <<131, _::binary>> ->
        try do
          :erlang.binary_to_term(bin, [:safe, :used])
        rescue
          ArgumentError ->
            damaged!(
              label,
              "#{what} is corrupt or truncated, or holds atoms it does not list " <>
                "(not valid external term format in [:safe] mode)"
            )
        else
          {term, used} when used == byte_size(bin) ->
            term

          {_term, used} ->
            damaged!(label, "#{what} has #{byte_size(bin) - used} stray bytes after its end")
        end

      _ ->
        damaged!(label, "#{what} is corrupt or not in Erlang's external term format")
    end
  end

  defp too_big(what, max) do
    "#{what}, over the limit of #{max} bytes. If you trust the file, raise the limit: " <>
      "max_trace_bytes: N for Lockstep.replay/3, shrink/3 and TraceFile.load!/2, or " <>
      "--max-trace-bytes N for the mix tasks"
  end

  # Creates the atoms the payload needs, refusing lists no Lockstep writer makes.
  defp create_atoms!(atoms, label) do
    cond do
      not is_list(atoms) or List.improper?(atoms) ->
        damaged!(label, "its atom list is #{Check.show(atoms)}, expected a list of strings")

      length(atoms) > @max_new_atoms ->
        damaged!(
          label,
          "it lists #{length(atoms)} atoms to create; a Lockstep trace needs a few dozen " <>
            "and loading creates at most #{@max_new_atoms}"
        )

      bad = Enum.find(atoms, &(not atom_text?(&1))) ->
        damaged!(
          label,
          "its atom list holds #{Check.show(bad)}, expected atom texts (UTF-8 strings of " <>
            "at most 255 characters)"
        )

      true ->
        Enum.each(atoms, &String.to_atom/1)
    end
  end

  defp atom_text?(text) when is_binary(text) and byte_size(text) <= 1020,
    do: String.valid?(text) and String.length(text) <= 255

  defp atom_text?(_), do: false

  @doc false
  def fail!(label, reason), do: raise(Lockstep.TraceError, path: label, reason: reason)

  defp damaged!(label, reason), do: fail!(label, reason <> Check.hint())

  @doc false
  # A :linearizability failure's sub-history, so that the file's report shows it too:
  # operations, arguments and results inspected like payloads.
  defp history(%{kind: :linearizability, details: %{ops: ops} = d}) when is_list(ops) do
    %{
      model: d.model,
      consistency: d.consistency,
      checked: d.checked,
      minimal: d.minimal,
      key: if(d.key == nil, do: nil, else: sanitize_field(d.key)),
      history: d[:history] || 1,
      histories: d[:histories] || 1,
      ops:
        Enum.map(ops, fn op ->
          %{
            op
            | op: sanitize_field(op.op),
              arg: if(op.arg == nil, do: nil, else: sanitize_field(op.arg)),
              result: if(op.result == nil, do: nil, else: sanitize_field(op.result)),
              process: sanitize_field(op.process)
          }
        end)
    }
  rescue
    _ -> nil
  end

  defp history(_bug), do: nil

  @doc false
  def sanitize_event({step, event}) do
    {step, event |> Tuple.to_list() |> Enum.map(&sanitize_field/1) |> List.to_tuple()}
  end

  defp sanitize_field(value) when is_binary(value) or is_atom(value) or is_integer(value),
    do: value

  defp sanitize_field({kind, _reason, _st} = reason) when kind in [:error, :exit, :throw],
    do: {:"$inspected", Lockstep.Report.format_reason(reason)}

  defp sanitize_field(other), do: {:"$inspected", Lockstep.Trace.payload(other)}

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
