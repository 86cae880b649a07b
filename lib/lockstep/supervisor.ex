defmodule Lockstep.Supervisor do
  @moduledoc """
  A `Supervisor` for managed processes, built on `Lockstep.GenServer`, so that Lockstep
  explores how crashes, restarts and the clients of the restarted processes interleave.

  Only the `:one_for_one` strategy is simulated: a child that exits is restarted alone,
  according to its restart type. Children are started, listed, stopped and restarted with
  the functions of this module, which mirror `Supervisor`'s: `start_link/2`,
  `start_link/3`, `init/2`, `child_spec/2`, `which_children/1`, `count_children/1`,
  `start_child/2`, `terminate_child/2`, `restart_child/2`, `delete_child/2` and `stop/3`.

  ## Example

      defmodule Counter do
        use Lockstep.GenServer

        def start_link(initial),
          do: Lockstep.GenServer.start_link(__MODULE__, initial, name: :counter)

        @impl true
        def init(initial), do: {:ok, initial}

        @impl true
        def handle_call(:incr, _from, n), do: {:reply, n + 1, n + 1}

        @impl true
        def handle_cast(:crash, _n), do: raise("boom")
      end

      # A client increments the counter while another process crashes it. The second
      # call returns 2 only in some schedules: in others it finds no process under the
      # name (the supervisor has not restarted the counter yet) and exits with
      # {:noproc, _}, dies with the crashing server, or reaches the restarted counter and
      # gets 1 — its state was reset. Lockstep.run raises Lockstep.BugFound with such a
      # schedule. (crash: :ignore: the counter's crash is expected, not a bug.)
      Lockstep.run(
        fn ->
          {:ok, _sup} = Lockstep.Supervisor.start_link([{Counter, 0}], strategy: :one_for_one)
          1 = Lockstep.GenServer.call(:counter, :incr)
          Lockstep.spawn(fn -> Lockstep.GenServer.cast(:counter, :crash) end)
          2 = Lockstep.GenServer.call(:counter, :incr)
        end,
        crash: :ignore
      )

  A module-based supervisor uses `use Lockstep.Supervisor` and returns its children from
  `init/1`, as with `use Supervisor`:

      defmodule MySup do
        use Lockstep.Supervisor

        def start_link(arg), do: Lockstep.Supervisor.start_link(__MODULE__, arg, name: :my_sup)

        @impl true
        def init(_arg) do
          Lockstep.Supervisor.init([{Counter, 0}], strategy: :one_for_one, max_restarts: 1)
        end
      end

  ## Children

  A child is given as a child specification map or as something `child_spec/2` turns into
  one: `module` (`module.child_spec([])`) or `{module, arg}` (`module.child_spec(arg)`;
  modules that `use Lockstep.GenServer` or `use Lockstep.Supervisor` define it). The map
  has the keys of `Supervisor`'s child specifications:

    * `:id` (required) — any term, unique among the supervisor's children;
    * `:start` (required) — `{module, function, args}`: called in the supervisor, it must
      start a managed process *linked to the caller* (`Lockstep.spawn_link/1`,
      `Lockstep.GenServer.start_link/3`…) and return `{:ok, pid}`, `{:ok, pid, info}`,
      `:ignore` or `{:error, reason}`;
    * `:restart` — `:permanent` (default: always restarted), `:transient` (restarted only
      when it exits with a reason other than `:normal`, `:shutdown` or `{:shutdown, _}`)
      or `:temporary` (never restarted; forgotten when it exits);
    * `:shutdown` — `:brutal_kill`, a timeout in virtual ms (default 5 000 for workers) or
      `:infinity` (default for supervisors);
    * `:type` — `:worker` (default) or `:supervisor`;
    * `:modules` — defaults to `[module]` of `:start`.

  Children start in order; a child that fails to start makes the supervisor terminate the
  ones already started and fail with `{:shutdown, {:failed_to_start_child, id, reason}}`.

  ## Restarts and shutdown

  The supervisor traps exits. When a child exits, it is restarted (or not) according to its
  restart type; when more than `:max_restarts` restarts (default 3) happen within
  `:max_seconds` (default 5) — *virtual* seconds, measured with `Lockstep.now/0` — the
  supervisor gives up: it terminates its children and exits with `:shutdown`, as in OTP.

  A child is terminated as in OTP: the supervisor monitors and unlinks it, sends it an
  exit signal `:shutdown` and waits for it to exit; if it has not exited after its
  `:shutdown` virtual ms, it is killed (`:brutal_kill` kills it at once). When the
  supervisor itself stops (`stop/3`, its parent's exit, too many restarts), it terminates
  its children in reverse start order.

  A supervisor started with `start_link/2,3` is linked to its caller: if the caller exits,
  the supervisor terminates its children and exits with the same reason; if the supervisor
  exits (with `:shutdown` after too many restarts, say), a caller that does not trap exits
  is killed with that reason.

  ## Failures

  The client functions call the supervisor like `Lockstep.GenServer.call/3` with an
  `:infinity` timeout: a supervisor that is not running makes them exit with
  `{:noproc, {Lockstep.GenServer, :call, _}}`. A child that crashes on its own is reported
  as a `:crash` unless the run has `crash: :ignore` (which let-it-crash tests want);
  children terminated by their supervisor, and a supervisor exiting with `:shutdown`, are
  not crashes.
  """

  alias Lockstep.GenServer

  @typedoc "A supervisor: a pid or a name, as `t:Lockstep.GenServer.server/0`."
  @type supervisor :: GenServer.server()

  @typedoc "A child's restart type."
  @type restart :: :permanent | :transient | :temporary

  @typedoc "How a child is terminated: killed at once, or after that many virtual ms."
  @type shutdown :: :brutal_kill | non_neg_integer() | :infinity

  @typedoc "A child specification map."
  @type child_spec :: %{
          required(:id) => term(),
          required(:start) => {module(), atom(), [term()]},
          optional(:restart) => restart(),
          optional(:shutdown) => shutdown(),
          optional(:type) => :worker | :supervisor,
          optional(:modules) => [module()] | :dynamic
        }

  @typedoc "A child's process in `which_children/1`: its pid, or `:undefined` when not running."
  @type child :: pid() | :undefined

  @typedoc "The supervisor flags `init/2` returns (OTP's map form)."
  @type sup_flags :: %{
          strategy: :one_for_one,
          intensity: non_neg_integer(),
          period: pos_integer()
        }

  @typedoc "Options of `init/2` (and of `start_link/2`)."
  @type init_option ::
          {:strategy, :one_for_one}
          | {:max_restarts, non_neg_integer()}
          | {:max_seconds, pos_integer()}

  @typedoc "Options of `start_link/3`: those of `Lockstep.GenServer.start_link/3`."
  @type option :: GenServer.option()

  @typedoc "What `start_link/2,3` return."
  @type on_start :: {:ok, pid()} | :ignore | {:error, term()}

  @typedoc "What `start_child/2` and `restart_child/2` return."
  @type on_start_child ::
          {:ok, child()}
          | {:ok, child(), info :: term()}
          | {:error, {:already_started, pid()} | :already_present | term()}

  @doc """
  Returns the children and flags of a supervisor: called from `init/1` of a module that
  uses `Lockstep.Supervisor`.
  """
  @callback init(init_arg :: term()) ::
              {:ok, {sup_flags() | map() | tuple(), [child_spec()]}} | :ignore

  @doc """
  Makes the current module a `Lockstep.Supervisor` callback module (it must define
  `init/1`).

  Defines `child_spec/1`: `%{id: __MODULE__, start: {__MODULE__, :start_link, [arg]},
  type: :supervisor}`, overridden by the options given to `use`, like `use Supervisor`.
  """
  @spec __using__(keyword()) :: Macro.t()
  defmacro __using__(opts) do
    quote location: :keep, bind_quoted: [opts: opts] do
      @behaviour Lockstep.Supervisor
      @lockstep_sup_child_spec_overrides opts

      unless Module.has_attribute?(__MODULE__, :doc) do
        @doc """
        Returns a specification to start this module under a supervisor.
        """
      end

      def child_spec(init_arg) do
        default = %{
          id: __MODULE__,
          start: {__MODULE__, :start_link, [init_arg]},
          type: :supervisor
        }

        Lockstep.Supervisor.child_spec(default, @lockstep_sup_child_spec_overrides)
      end

      defoverridable child_spec: 1
    end
  end

  # Starting --------------------------------------------------------------------------------

  @doc """
  Starts a supervisor linked to the caller with `children`; mirrors
  `Supervisor.start_link/2`.

  `opts` are those of `init/2` (`:strategy`, required and `:one_for_one`; `:max_restarts`;
  `:max_seconds`) and of `Lockstep.GenServer.start_link/3` (`:name`, `:timeout`). Raises
  `ArgumentError` (in the caller) for a missing or unsupported strategy or a malformed
  child.

  Returns `{:ok, pid}` once every child has started;
  `{:error, {:shutdown, {:failed_to_start_child, id, reason}}}` when one fails to start
  (those already started are terminated first); `{:error, {:start_spec, reason}}` for an
  invalid child specification (`{:duplicate_child_name, id}`, `:missing_id`,
  `{:invalid_restart_type, value}`…); `{:error, {:supervisor_data, reason}}` for invalid
  flags; `{:error, {:already_started, pid}}` when the name is taken. As with OTP, a
  supervisor that fails to start exits with the reason, which reaches its (linked) caller.

  `start_link(module, init_arg)` (no options) is `start_link/3`.
  """
  @spec start_link([child_spec() | {module(), term()} | module()], [init_option() | option()]) ::
          on_start()
  @spec start_link(module(), term()) :: on_start()
  def start_link(children, opts) when is_list(children) and is_list(opts) do
    {sup_opts, start_opts} = Keyword.split(opts, [:strategy, :max_restarts, :max_seconds])
    init_result = init(children, sup_opts)
    GenServer.start_link(__MODULE__.Server, {:static, init_result}, start_opts)
  end

  def start_link(module, init_arg) when is_atom(module), do: start_link(module, init_arg, [])

  @doc """
  Starts a module-based supervisor linked to the caller; mirrors `Supervisor.start_link/3`.

  `module.init(init_arg)` runs in the supervisor (which already traps exits) and returns
  `{:ok, {flags, children}}`, usually through `init/2`, or `:ignore`. `opts` are those of
  `Lockstep.GenServer.start_link/3` (`:name`, `:timeout`). Returns as `start_link/2`, and
  `{:error, {:bad_return, {module, :init, value}}}` for any other return value of `init/1`.
  Flags naming a strategy other than `:one_for_one` make `init/1` raise `ArgumentError`.
  """
  @spec start_link(module(), term(), [option()]) :: on_start()
  def start_link(module, init_arg, opts) when is_atom(module) and is_list(opts) do
    GenServer.start_link(__MODULE__.Server, {:callback, module, init_arg}, opts)
  end

  @doc """
  Builds the value `init/1` of a module-based supervisor returns: normalises `children`
  with `child_spec/2` and turns `opts` into supervisor flags; mirrors `Supervisor.init/2`.

  Options: `:strategy` (required; only `:one_for_one` is simulated, anything else raises
  `ArgumentError`), `:max_restarts` (3) and `:max_seconds` (5, virtual seconds).

      iex> Lockstep.Supervisor.init([%{id: :a, start: {M, :start_link, []}}], strategy: :one_for_one)
      {:ok, {%{strategy: :one_for_one, intensity: 3, period: 5}, [%{id: :a, start: {M, :start_link, []}}]}}
  """
  @spec init([child_spec() | {module(), term()} | module()], [init_option()]) ::
          {:ok, {sup_flags(), [child_spec()]}}
  def init(children, opts) when is_list(children) and is_list(opts) do
    strategy =
      case Keyword.fetch(opts, :strategy) do
        {:ok, :one_for_one} -> :one_for_one
        {:ok, other} -> raise ArgumentError, only_one_for_one(other)
        :error -> raise ArgumentError, "expected :strategy option to be given"
      end

    flags = %{
      strategy: strategy,
      intensity: Keyword.get(opts, :max_restarts, 3),
      period: Keyword.get(opts, :max_seconds, 5)
    }

    {:ok, {flags, Enum.map(children, &child_spec(&1, []))}}
  end

  @doc false
  @spec only_one_for_one(term()) :: String.t()
  def only_one_for_one(strategy) do
    "Lockstep.Supervisor simulates only the :one_for_one strategy, got: #{inspect(strategy)}"
  end

  @doc """
  Builds a child specification from `module`, `{module, arg}` or a map, and applies
  `overrides`; mirrors `Supervisor.child_spec/2`.

  `module` stands for `{module, []}`, and `{module, arg}` for `module.child_spec(arg)`.
  `overrides` may set `:id`, `:start`, `:restart`, `:shutdown`, `:type` and `:modules`;
  another key, or a module without `child_spec/1`, raises `ArgumentError`.

      iex> Lockstep.Supervisor.child_spec(%{id: :a, start: {M, :start_link, []}}, restart: :temporary)
      %{id: :a, start: {M, :start_link, []}, restart: :temporary}
  """
  @spec child_spec(child_spec() | {module(), term()} | module(), keyword()) :: child_spec()
  def child_spec(spec, overrides) when is_list(overrides) do
    Enum.reduce(overrides, normalize_child(spec), fn
      {key, value}, acc when key in [:id, :start, :restart, :shutdown, :type, :modules] ->
        Map.put(acc, key, value)

      {key, _value}, _acc ->
        raise ArgumentError,
              "unknown key #{inspect(key)} in child specification override (expected " <>
                ":id, :start, :restart, :shutdown, :type or :modules)"
    end)
  end

  defp normalize_child(%{} = map), do: map
  defp normalize_child(module) when is_atom(module), do: normalize_child({module, []})

  defp normalize_child({module, arg}) when is_atom(module) do
    module.child_spec(arg)
  rescue
    e in UndefinedFunctionError ->
      case __STACKTRACE__ do
        [{^module, :child_spec, [^arg], _} | _] ->
          raise ArgumentError,
                "the module #{inspect(module)} was given as a child to Lockstep.Supervisor " <>
                  "but it does not implement child_spec/1 (use Lockstep.GenServer and use " <>
                  "Lockstep.Supervisor define it), so give a child specification map instead: " <>
                  "%{id: #{inspect(module)}, start: {#{inspect(module)}, :start_link, [arg]}}"

        stack ->
          reraise e, stack
      end
  end

  defp normalize_child(other) do
    raise ArgumentError,
          "Lockstep.Supervisor expects each child to be a child specification map, a module " <>
            "or {module, arg}, got: #{inspect(other)}"
  end

  # Client API ------------------------------------------------------------------------------

  @doc """
  Adds a child to `supervisor` and starts it; mirrors `Supervisor.start_child/2`.

  `child` is a map, `module` or `{module, arg}` (see `child_spec/2`). Returns `{:ok, pid}`
  (or `{:ok, pid, info}`); `{:ok, :undefined}` when the start function returned `:ignore`
  (the specification is kept unless the child is `:temporary`);
  `{:error, {:already_started, pid}}` or `{:error, :already_present}` when a child with
  that id exists (running or not); `{:error, reason}` for an invalid specification; and
  `{:error, {reason, child_spec}}` when the start function failed with `reason` (the child
  is not added).
  """
  @spec start_child(supervisor(), child_spec() | {module(), term()} | module()) ::
          on_start_child()
  def start_child(supervisor, child) do
    call(supervisor, {:start_child, child_spec(child, [])})
  end

  @doc """
  Terminates the child with id `child_id` (see "Restarts and shutdown"); mirrors
  `Supervisor.terminate_child/2`. Its specification is kept, so `restart_child/2` can start
  it again, unless it is `:temporary`. Returns `:ok` or `{:error, :not_found}`.
  """
  @spec terminate_child(supervisor(), term()) :: :ok | {:error, :not_found}
  def terminate_child(supervisor, child_id), do: call(supervisor, {:terminate_child, child_id})

  @doc """
  Starts again the child with id `child_id`, which must have been terminated; mirrors
  `Supervisor.restart_child/2`.

  Returns `{:ok, pid}` (or `{:ok, pid, info}`, or `{:ok, :undefined}` when the start
  function returned `:ignore`), `{:error, :running}`, `{:error, :restarting}`,
  `{:error, :not_found}` or `{:error, reason}` when the start function failed.
  """
  @spec restart_child(supervisor(), term()) ::
          {:ok, child()} | {:ok, child(), term()} | {:error, term()}
  def restart_child(supervisor, child_id), do: call(supervisor, {:restart_child, child_id})

  @doc """
  Removes the specification of the terminated child `child_id`; mirrors
  `Supervisor.delete_child/2`. Returns `:ok`, `{:error, :running}`, `{:error, :restarting}`
  or `{:error, :not_found}`.
  """
  @spec delete_child(supervisor(), term()) :: :ok | {:error, :running | :restarting | :not_found}
  def delete_child(supervisor, child_id), do: call(supervisor, {:delete_child, child_id})

  @doc """
  Lists the children, most recently started first, as `{id, child, type, modules}`, where
  `child` is the pid, `:restarting` (a restart failed and will be tried again) or
  `:undefined`; mirrors `Supervisor.which_children/1`.
  """
  @spec which_children(supervisor()) :: [
          {term(), child() | :restarting, :worker | :supervisor, [module()] | :dynamic}
        ]
  def which_children(supervisor), do: call(supervisor, :which_children)

  @doc """
  Counts the children; mirrors `Supervisor.count_children/1`. `:specs` counts every child,
  `:active` the ones whose process is alive, `:supervisors` and `:workers` those of each
  type.
  """
  @spec count_children(supervisor()) :: %{
          specs: non_neg_integer(),
          active: non_neg_integer(),
          supervisors: non_neg_integer(),
          workers: non_neg_integer()
        }
  def count_children(supervisor), do: call(supervisor, :count_children)

  @doc """
  Stops `supervisor` with `reason` (after it terminates its children, in reverse start
  order) and waits up to `timeout` virtual ms; mirrors `Supervisor.stop/3` (see
  `Lockstep.GenServer.stop/3` for what it returns and how it exits).
  """
  @spec stop(supervisor(), term(), GenServer.timeout_ms()) :: :ok
  def stop(supervisor, reason \\ :normal, timeout \\ :infinity) do
    GenServer.stop(supervisor, reason, timeout)
  end

  defp call(supervisor, request), do: GenServer.call(supervisor, request, :infinity)

  defmodule Server do
    @moduledoc false
    # The supervisor process: a Lockstep.GenServer that traps exits. Its state keeps the
    # children's ids most recently started first (the order of which_children/1 and of
    # termination, as in OTP) and each child's record by id.

    use Lockstep.GenServer

    require Lockstep

    @impl true
    def init(arg) do
      Lockstep.flag(:trap_exit, true)

      result =
        case arg do
          {:static, result} -> {Lockstep.Supervisor, result}
          {:callback, module, init_arg} -> {module, module.init(init_arg)}
        end

      case result do
        {_module, {:ok, {flags, specs}}} ->
          with {:ok, state} <- check_flags(flags),
               {:ok, children} <- check_specs(specs) do
            start_children(children, state)
          else
            {:error, reason} -> {:stop, reason}
          end

        {_module, :ignore} ->
          :ignore

        {module, other} ->
          {:stop, {:bad_return, {module, :init, other}}}
      end
    end

    # Flags --------------------------------------------------------------------------------

    defp check_flags({strategy, intensity, period}),
      do: check_flags(%{strategy: strategy, intensity: intensity, period: period})

    defp check_flags(%{} = flags) do
      strategy = Map.get(flags, :strategy, :one_for_one)
      intensity = Map.get(flags, :intensity, 1)
      period = Map.get(flags, :period, 5)

      cond do
        strategy in [:one_for_all, :rest_for_one, :simple_one_for_one] ->
          raise ArgumentError, Lockstep.Supervisor.only_one_for_one(strategy)

        strategy != :one_for_one ->
          {:error, {:supervisor_data, {:invalid_strategy, strategy}}}

        not (is_integer(intensity) and intensity >= 0) ->
          {:error, {:supervisor_data, {:invalid_intensity, intensity}}}

        not (is_integer(period) and period > 0) ->
          {:error, {:supervisor_data, {:invalid_period, period}}}

        true ->
          {:ok, %{ids: [], children: %{}, intensity: intensity, period: period, restarts: []}}
      end
    end

    defp check_flags(other), do: {:error, {:supervisor_data, {:invalid_type, other}}}

    # Child specifications -----------------------------------------------------------------

    defp check_specs(specs) when is_list(specs) do
      Enum.reduce_while(specs, {:ok, [], MapSet.new()}, fn spec, {:ok, acc, ids} ->
        case check_spec(spec) do
          {:ok, child} ->
            if MapSet.member?(ids, child.id) do
              {:halt, {:error, {:start_spec, {:duplicate_child_name, child.id}}}}
            else
              {:cont, {:ok, [child | acc], MapSet.put(ids, child.id)}}
            end

          {:error, reason} ->
            {:halt, {:error, {:start_spec, reason}}}
        end
      end)
      |> case do
        {:ok, children, _ids} -> {:ok, Enum.reverse(children)}
        error -> error
      end
    end

    defp check_specs(other), do: {:error, {:start_spec, {:invalid_child_spec, other}}}

    # {:ok, child} | {:error, reason}, with OTP's reasons.
    defp check_spec(%{id: id, start: start} = spec) do
      type = Map.get(spec, :type, :worker)
      default_shutdown = if type == :supervisor, do: :infinity, else: 5000
      restart = Map.get(spec, :restart, :permanent)
      shutdown = Map.get(spec, :shutdown, default_shutdown)

      modules =
        case {Map.fetch(spec, :modules), start} do
          {{:ok, modules}, _} -> modules
          {:error, {m, _, _}} -> [m]
          {:error, _} -> []
        end

      cond do
        not valid_mfa?(start) ->
          {:error, {:invalid_mfa, start}}

        restart not in [:permanent, :transient, :temporary] ->
          {:error, {:invalid_restart_type, restart}}

        type not in [:worker, :supervisor] ->
          {:error, {:invalid_child_type, type}}

        not valid_shutdown?(shutdown) ->
          {:error, {:invalid_shutdown, shutdown}}

        not valid_modules?(modules) ->
          {:error, {:invalid_modules, modules}}

        true ->
          {:ok,
           %{
             id: id,
             pid: :undefined,
             start: start,
             restart: restart,
             shutdown: shutdown,
             type: type,
             modules: modules
           }}
      end
    end

    defp check_spec(%{id: _}), do: {:error, :missing_start}
    defp check_spec(%{}), do: {:error, :missing_id}
    defp check_spec(other), do: {:error, {:invalid_child_spec, other}}

    defp valid_mfa?({m, f, a}), do: is_atom(m) and is_atom(f) and is_list(a)
    defp valid_mfa?(_), do: false

    defp valid_shutdown?(:brutal_kill), do: true
    defp valid_shutdown?(:infinity), do: true
    defp valid_shutdown?(ms), do: is_integer(ms) and ms >= 0

    defp valid_modules?(:dynamic), do: true
    defp valid_modules?(modules), do: is_list(modules) and Enum.all?(modules, &is_atom/1)

    # Starting children --------------------------------------------------------------------

    # In order; a failure terminates the children already started (newest first).
    defp start_children([], state), do: {:ok, state}

    defp start_children([child | rest], state) do
      case start_mfa(child) do
        {:ok, pid, _info} ->
          start_children(rest, put_new_child(state, %{child | pid: pid}))

        {:ok, :undefined} ->
          state = if child.restart == :temporary, do: state, else: put_new_child(state, child)
          start_children(rest, state)

        {:error, reason} ->
          terminate_children(state)
          {:stop, {:shutdown, {:failed_to_start_child, child.id, reason}}}
      end
    end

    defp put_new_child(state, child) do
      %{state | ids: [child.id | state.ids], children: Map.put(state.children, child.id, child)}
    end

    # Calls the child's start function in the supervisor, as OTP's do_start_child_i:
    # {:ok, pid, info | nil} | {:ok, :undefined} (:ignore) | {:error, reason}.
    defp start_mfa(%{start: {m, f, a}}) do
      start_result(apply(m, f, a))
    catch
      :throw, value ->
        start_result(value)

      :exit, reason ->
        {:error, {:EXIT, reason}}

      :error, reason ->
        {:error, {:EXIT, {Exception.normalize(:error, reason, __STACKTRACE__), __STACKTRACE__}}}
    end

    defp start_result({:ok, pid}) when is_pid(pid), do: {:ok, pid, nil}
    defp start_result({:ok, pid, info}) when is_pid(pid), do: {:ok, pid, info}
    defp start_result(:ignore), do: {:ok, :undefined}
    defp start_result({:error, reason}), do: {:error, reason}
    defp start_result(other), do: {:error, other}

    defp started_reply({:ok, pid, nil}), do: {:ok, pid}
    defp started_reply({:ok, pid, info}), do: {:ok, pid, info}
    defp started_reply(other), do: other

    # Calls ----------------------------------------------------------------------------------

    @impl true
    def handle_call(:which_children, _from, state) do
      children =
        Enum.map(state.ids, fn id ->
          child = Map.fetch!(state.children, id)
          {id, child.pid, child.type, child.modules}
        end)

      {:reply, children, state}
    end

    def handle_call(:count_children, _from, state) do
      counts =
        Enum.reduce(state.ids, %{specs: 0, active: 0, supervisors: 0, workers: 0}, fn id, acc ->
          child = Map.fetch!(state.children, id)
          kind = if child.type == :supervisor, do: :supervisors, else: :workers
          active = if is_pid(child.pid) and Lockstep.alive?(child.pid), do: 1, else: 0

          %{acc | specs: acc.specs + 1, active: acc.active + active}
          |> Map.update!(kind, &(&1 + 1))
        end)

      {:reply, counts, state}
    end

    def handle_call({:start_child, spec}, _from, state) do
      case check_spec(spec) do
        {:error, reason} ->
          {:reply, {:error, reason}, state}

        {:ok, child} ->
          case Map.fetch(state.children, child.id) do
            {:ok, %{pid: pid}} when is_pid(pid) ->
              {:reply, {:error, {:already_started, pid}}, state}

            {:ok, _} ->
              {:reply, {:error, :already_present}, state}

            :error ->
              start_new_child(child, spec, state)
          end
      end
    end

    def handle_call({:terminate_child, id}, _from, state) do
      case Map.fetch(state.children, id) do
        {:ok, child} ->
          shutdown_child(child)
          {:reply, :ok, stopped(state, child)}

        :error ->
          {:reply, {:error, :not_found}, state}
      end
    end

    def handle_call({:restart_child, id}, _from, state) do
      case Map.fetch(state.children, id) do
        {:ok, %{pid: :undefined} = child} ->
          case start_mfa(child) do
            {:ok, pid, _info} = started ->
              {:reply, started_reply(started), put_child(state, %{child | pid: pid})}

            other ->
              {:reply, other, state}
          end

        {:ok, %{pid: :restarting}} ->
          {:reply, {:error, :restarting}, state}

        {:ok, _running} ->
          {:reply, {:error, :running}, state}

        :error ->
          {:reply, {:error, :not_found}, state}
      end
    end

    def handle_call({:delete_child, id}, _from, state) do
      case Map.fetch(state.children, id) do
        {:ok, %{pid: :undefined}} -> {:reply, :ok, delete(state, id)}
        {:ok, %{pid: :restarting}} -> {:reply, {:error, :restarting}, state}
        {:ok, _running} -> {:reply, {:error, :running}, state}
        :error -> {:reply, {:error, :not_found}, state}
      end
    end

    defp start_new_child(child, spec, state) do
      case start_mfa(child) do
        {:ok, pid, _info} = started ->
          {:reply, started_reply(started), put_new_child(state, %{child | pid: pid})}

        {:ok, :undefined} ->
          state = if child.restart == :temporary, do: state, else: put_new_child(state, child)
          {:reply, {:ok, :undefined}, state}

        {:error, reason} ->
          {:reply, {:error, {reason, spec}}, state}
      end
    end

    defp put_child(state, child),
      do: %{state | children: Map.put(state.children, child.id, child)}

    defp delete(state, id) do
      %{state | ids: List.delete(state.ids, id), children: Map.delete(state.children, id)}
    end

    # A child that is no longer running: forgotten if temporary, else kept as :undefined.
    defp stopped(state, %{restart: :temporary} = child), do: delete(state, child.id)
    defp stopped(state, child), do: put_child(state, %{child | pid: :undefined})

    # Exits and restarts -------------------------------------------------------------------

    @impl true
    def handle_info({:EXIT, pid, reason}, state) do
      case Enum.find(Map.values(state.children), &(&1.pid == pid)) do
        nil -> {:noreply, state}
        child -> child_exited(child, reason, state)
      end
    end

    def handle_info({:"$lockstep_sup_try_again", id}, state) do
      case Map.fetch(state.children, id) do
        {:ok, %{pid: :restarting} = child} -> restart(child, state)
        _ -> {:noreply, state}
      end
    end

    def handle_info(_msg, state), do: {:noreply, state}

    defp child_exited(%{restart: :temporary} = child, _reason, state),
      do: {:noreply, delete(state, child.id)}

    defp child_exited(%{restart: :transient} = child, reason, state)
         when reason == :normal or reason == :shutdown or
                (is_tuple(reason) and tuple_size(reason) == 2 and elem(reason, 0) == :shutdown) do
      {:noreply, put_child(state, %{child | pid: :undefined})}
    end

    defp child_exited(child, _reason, state), do: restart(child, state)

    # One restart (counted against the intensity): the supervisor gives up with :shutdown
    # when there are too many; a start that fails is tried again through a message to
    # itself, as OTP's try_again_restart.
    defp restart(child, state) do
      case add_restart(state) do
        {:ok, state} ->
          case start_mfa(child) do
            {:ok, pid, _info} ->
              {:noreply, put_child(state, %{child | pid: pid})}

            {:ok, :undefined} ->
              {:noreply, put_child(state, %{child | pid: :undefined})}

            {:error, _reason} ->
              Lockstep.send(self(), {:"$lockstep_sup_try_again", child.id})
              {:noreply, put_child(state, %{child | pid: :restarting})}
          end

        {:shutdown, state} ->
          {:stop, :shutdown, put_child(state, %{child | pid: :undefined})}
      end
    end

    # OTP's restart intensity, in virtual time: the restarts of the last `period` seconds,
    # this one included, may number at most `intensity`.
    defp add_restart(state) do
      now = Lockstep.now()
      threshold = now - state.period * 1000
      restarts = [now | Enum.take_while(state.restarts, &(&1 >= threshold))]
      state = %{state | restarts: restarts}
      if length(restarts) <= state.intensity, do: {:ok, state}, else: {:shutdown, state}
    end

    # Terminating children -----------------------------------------------------------------

    @impl true
    def terminate(_reason, state) do
      terminate_children(state)
    end

    # Newest first: the reverse of the start order.
    defp terminate_children(state) do
      Enum.each(state.ids, fn id -> shutdown_child(Map.fetch!(state.children, id)) end)
    end

    defp shutdown_child(%{pid: pid, shutdown: shutdown}) when is_pid(pid) do
      # As OTP's monitor_child: once unlinked, the child's exit reaches the supervisor as a
      # :DOWN only; an :EXIT already queued means it had exited by itself.
      mref = Lockstep.monitor(pid)
      Lockstep.unlink(pid)

      Lockstep.receive do
        {:EXIT, ^pid, reason} ->
          await_down(mref, pid)
          reason
      after
        0 -> stop_child(pid, mref, shutdown)
      end
    end

    defp shutdown_child(_not_running), do: :ok

    defp stop_child(pid, mref, :brutal_kill) do
      Lockstep.exit(pid, :kill)
      await_down(mref, pid)
    end

    defp stop_child(pid, mref, timeout) do
      Lockstep.exit(pid, :shutdown)

      Lockstep.receive do
        {:DOWN, ^mref, :process, ^pid, reason} -> reason
      after
        timeout ->
          Lockstep.exit(pid, :kill)
          await_down(mref, pid)
      end
    end

    defp await_down(mref, pid) do
      Lockstep.receive do
        {:DOWN, ^mref, :process, ^pid, reason} -> reason
      end
    end
  end
end
