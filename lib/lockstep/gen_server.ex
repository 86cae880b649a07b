defmodule Lockstep.GenServer do
  @moduledoc """
  A `GenServer` whose every step is a Lockstep sync point, so that Lockstep explores the
  interleavings of its clients.

  Write the callback module as you would for `GenServer`, with `use Lockstep.GenServer`,
  and start and talk to it with the functions of this module from inside
  `Lockstep.run/2`. The callbacks, their return values and the client functions mirror
  `GenServer`: `init/1`, `handle_call/3`, `handle_cast/2`, `handle_info/2`,
  `handle_continue/2` and `terminate/2`; `start_link/3`, `start/3`, `call/3`, `cast/2`,
  `reply/2`, `stop/3` and `whereis/1`.

  ## Example

      defmodule Counter do
        use Lockstep.GenServer

        def start_link(initial), do: Lockstep.GenServer.start_link(__MODULE__, initial)

        @impl true
        def init(initial), do: {:ok, initial}

        @impl true
        def handle_call(:get, _from, n), do: {:reply, n, n}
        def handle_call({:put, n}, _from, _old), do: {:reply, :ok, n}
        def handle_call(:incr, _from, n), do: {:reply, n + 1, n + 1}
      end

      # Two clients read the counter and write back the value plus one: Lockstep finds
      # the schedule in which both read 0 and an increment is lost.
      Lockstep.run(fn ->
        {:ok, counter} = Counter.start_link(0)
        me = self()

        for _ <- 1..2 do
          Lockstep.spawn(fn ->
            n = Lockstep.GenServer.call(counter, :get)
            Lockstep.GenServer.call(counter, {:put, n + 1})
            Lockstep.send(me, :done)
          end)
        end

        Lockstep.receive(do: (:done -> :ok))
        Lockstep.receive(do: (:done -> :ok))
        2 = Lockstep.GenServer.call(counter, :get)
      end)

  ## Servers and names

  A server is a pid or a name given with the `:name` option:

    * an atom, registered with `Lockstep.register/2` on the caller's simulated node;
      reach it as `atom` or `{atom, node}` (from any node; see `Lockstep.Cluster`);
    * `{:global, term}`, registered cluster-wide in `Lockstep.Global`;
    * `{:via, module, term}`, handed to `module`'s `register_name/2`, `unregister_name/1`,
      `whereis_name/1` and `send/2`, as in OTP.

  A call to `{atom, node}` on another node looks the name up in that node's registry and
  monitors the process, so it ends with the reply, `:noproc`, the server's exit reason or
  the timeout, as in OTP.

  Starting a server under a name that is taken returns `{:error, {:already_started, pid}}`:
  the new process registers the name itself, atomically, before `init/1` runs.

  ## Timeouts are virtual

  The timeouts of `call/3`, `stop/3` and of callback return values such as
  `{:noreply, state, 1_000}` count virtual milliseconds (see `Lockstep.sleep/1`): they cost
  no wall time, and a server that does not answer within a call's timeout makes the caller
  exit with `{:timeout, {Lockstep.GenServer, :call, [server, request, timeout]}}`. The call
  goes through an alias of the caller (`Lockstep.Runtime.alias/0`), which is turned off when
  the call ends, so a reply that arrives later is dropped instead of reaching the mailbox.

  ## Failures

  Like OTP, client functions *exit* (they do not raise): a call to a server that is not
  running exits with `{:noproc, {Lockstep.GenServer, :call, args}}`, and a server that
  dies during a call makes the caller exit with `{reason, {Lockstep.GenServer, :call,
  args}}`. A callback that raises makes the server call `terminate/2` and exit with the
  exception as reason; Lockstep reports that as a `:crash` unless the run has
  `crash: :ignore`. A server started with `start_link/3` is linked to its starter, and if
  it traps exits and its starter (its parent) exits, it terminates with the same reason.
  """

  require Lockstep

  alias Lockstep.{Runtime, Timeout}
  import Lockstep.Timeout, only: [is_timeout: 1]

  @typedoc "A server: a pid, a registered atom, `{atom, node}`, `{:global, term}` or `{:via, module, term}`."
  @type server :: pid() | atom() | {atom(), node()} | {:global, term()} | {:via, module(), term()}

  @typedoc "A server name for the `:name` option."
  @type name :: atom() | {:global, term()} | {:via, module(), term()}

  @typedoc "The caller of a `call/3`, as passed to `handle_call/3`; give it to `reply/2`."
  @type from :: {alias_dest() | pid(), reference()}

  @typedoc "An alias of a caller (see `Lockstep.Runtime.alias/0`): a destination for `Lockstep.send/2`."
  @type alias_dest :: {:"$lockstep_alias", pid(), pos_integer()}

  @typedoc "What `start/3` and `start_link/3` return."
  @type on_start :: {:ok, pid()} | :ignore | {:error, {:already_started, pid() | nil} | term()}

  @typedoc "A server timeout in virtual milliseconds."
  @type timeout_ms :: non_neg_integer() | :infinity

  @typedoc "Options of `start/3` and `start_link/3`."
  @type option :: {:name, name()} | {:timeout, timeout_ms()} | {atom(), term()}

  @doc "Initialises the server state; see `c:GenServer.init/1`."
  @callback init(init_arg :: term()) ::
              {:ok, state}
              | {:ok, state, timeout() | :hibernate | {:continue, term()}}
              | :ignore
              | {:stop, reason :: term()}
            when state: term()

  @doc "Handles a `call/3`; see `c:GenServer.handle_call/3`."
  @callback handle_call(request :: term(), from(), state :: term()) ::
              {:reply, reply, new_state}
              | {:reply, reply, new_state, timeout() | :hibernate | {:continue, term()}}
              | {:noreply, new_state}
              | {:noreply, new_state, timeout() | :hibernate | {:continue, term()}}
              | {:stop, reason, reply, new_state}
              | {:stop, reason, new_state}
            when reply: term(), new_state: term(), reason: term()

  @doc "Handles a `cast/2`; see `c:GenServer.handle_cast/2`."
  @callback handle_cast(request :: term(), state :: term()) ::
              {:noreply, new_state}
              | {:noreply, new_state, timeout() | :hibernate | {:continue, term()}}
              | {:stop, reason :: term(), new_state}
            when new_state: term()

  @doc "Handles any other message, and `:timeout`; see `c:GenServer.handle_info/2`."
  @callback handle_info(msg :: :timeout | term(), state :: term()) ::
              {:noreply, new_state}
              | {:noreply, new_state, timeout() | :hibernate | {:continue, term()}}
              | {:stop, reason :: term(), new_state}
            when new_state: term()

  @doc "Handles a `{:continue, arg}` instruction; see `c:GenServer.handle_continue/2`."
  @callback handle_continue(continue_arg :: term(), state :: term()) ::
              {:noreply, new_state}
              | {:noreply, new_state, timeout() | :hibernate | {:continue, term()}}
              | {:stop, reason :: term(), new_state}
            when new_state: term()

  @doc "Called when the server is about to exit; see `c:GenServer.terminate/2`."
  @callback terminate(reason :: term(), state :: term()) :: term()

  @optional_callbacks handle_call: 3,
                      handle_cast: 2,
                      handle_info: 2,
                      handle_continue: 2,
                      terminate: 2

  @doc """
  Makes the current module a `Lockstep.GenServer` callback module.

  Defines `child_spec/1` (`%{id: __MODULE__, start: {__MODULE__, :start_link, [arg]}}`,
  overridden by the options given to `use`) and overridable default callbacks like
  `use GenServer`: `handle_call/3` and `handle_cast/2` raise (the server crashes),
  `handle_continue/2` raises, `handle_info/2` ignores the message and `terminate/2`
  returns `:ok`. `init/1` has no default.
  """
  @spec __using__(keyword()) :: Macro.t()
  defmacro __using__(opts) do
    quote location: :keep, bind_quoted: [opts: opts] do
      @behaviour Lockstep.GenServer
      @lockstep_child_spec_overrides opts

      unless Module.has_attribute?(__MODULE__, :doc) do
        @doc """
        Returns a specification to start this module under a supervisor.
        """
      end

      def child_spec(init_arg) do
        default = %{id: __MODULE__, start: {__MODULE__, :start_link, [init_arg]}}
        Supervisor.child_spec(default, @lockstep_child_spec_overrides)
      end

      defoverridable child_spec: 1

      @doc false
      def handle_call(msg, _from, _state) do
        raise "attempted to call Lockstep.GenServer #{inspect(self())} (#{inspect(__MODULE__)}) " <>
                "but no handle_call/3 clause was provided for #{inspect(msg)}"
      end

      @doc false
      def handle_cast(msg, _state) do
        raise "attempted to cast Lockstep.GenServer #{inspect(self())} (#{inspect(__MODULE__)}) " <>
                "but no handle_cast/2 clause was provided for #{inspect(msg)}"
      end

      @doc false
      def handle_info(_msg, state), do: {:noreply, state}

      @doc false
      def handle_continue(continue_arg, _state) do
        raise "attempted to continue Lockstep.GenServer #{inspect(self())} " <>
                "(#{inspect(__MODULE__)}) with #{inspect(continue_arg)} but no " <>
                "handle_continue/2 clause was provided"
      end

      @doc false
      def terminate(_reason, _state), do: :ok

      defoverridable handle_call: 3,
                     handle_cast: 2,
                     handle_info: 2,
                     handle_continue: 2,
                     terminate: 2
    end
  end

  # Client API -----------------------------------------------------------------------------

  @doc """
  Starts a server process linked to the caller, runs `module.init(init_arg)` in it and
  waits for the result; mirrors `GenServer.start_link/3`.

  Returns `{:ok, pid}`, `:ignore` (init returned `:ignore`), `{:error, reason}` (init
  returned `{:stop, reason}`, raised, or returned something else), or
  `{:error, {:already_started, pid}}` when the `:name` is taken. Like OTP, when init fails
  the server exits with the reason, which also reaches the (linked) caller.

  Options: `:name` (see the moduledoc) and `:timeout` (virtual ms to wait for init,
  default `:infinity`; on expiry the server is killed and `{:error, :timeout}` returned).
  """
  @spec start_link(module(), term(), [option()]) :: on_start()
  def start_link(module, init_arg, opts \\ []) when is_atom(module) and is_list(opts) do
    do_start(:link, module, init_arg, opts)
  end

  @doc "Like `start_link/3` but without a link to the caller; mirrors `GenServer.start/3`."
  @spec start(module(), term(), [option()]) :: on_start()
  def start(module, init_arg, opts \\ []) when is_atom(module) and is_list(opts) do
    do_start(:nolink, module, init_arg, opts)
  end

  @doc """
  Sends `request` to `server` and waits up to `timeout` virtual ms for its reply; mirrors
  `GenServer.call/3`.

  Exits the caller (does not raise) with `{:timeout, {Lockstep.GenServer, :call, [server,
  request, timeout]}}` when no reply comes in time (a later reply is dropped),
  `{:noproc, {…}}` when the server is not running, `{reason, {…}}` when the server exits
  during the call, and `{:calling_self, {…}}` when a server calls itself.

  A bad `timeout` fails as in `GenServer.call/3`: a `FunctionClauseError` unless it is
  `:infinity` or a non-negative integer, and `ErlangError` `:timeout_value` (after the
  request is sent, when the caller would wait) above 4_294_967_295 ms.
  """
  @spec call(server(), term(), timeout_ms()) :: term()
  def call(server, request, timeout \\ 5000) when is_timeout(timeout) do
    mfa = {__MODULE__, :call, [server, request, timeout]}

    case resolve(server) do
      nil ->
        exit({:noproc, mfa})

      pid when pid == self() ->
        exit({:calling_self, mfa})

      pid when is_pid(pid) ->
        call_monitored(pid, request, timeout, mfa)

      {:send_to, dest} ->
        call_unmonitored(dest, request, timeout, mfa)
    end
  end

  defp call_monitored(pid, request, timeout, mfa) do
    mref = Lockstep.monitor(pid)
    reply_to = Runtime.alias()
    Lockstep.send(pid, {:"$gen_call", {reply_to, mref}, request})

    Lockstep.receive do
      {^mref, reply} ->
        Runtime.unalias(reply_to)
        Lockstep.demonitor(mref, [:flush])
        reply

      {:DOWN, ^mref, _, _, reason} ->
        Runtime.unalias(reply_to)
        exit({reason, mfa})
    after
      timeout ->
        Runtime.unalias(reply_to)
        Lockstep.demonitor(mref, [:flush])
        flush_reply(mref)
        exit({:timeout, mfa})
    end
  end

  # A server known only by a destination Lockstep.send accepts (a name on another node):
  # no monitor, so only the reply or the timeout ends the call.
  defp call_unmonitored(dest, request, timeout, mfa) do
    ref = make_ref()
    reply_to = Runtime.alias()

    case send_or_noproc(dest, {:"$gen_call", {reply_to, ref}, request}) do
      :noproc ->
        Runtime.unalias(reply_to)
        exit({:noproc, mfa})

      :ok ->
        Lockstep.receive do
          {^ref, reply} ->
            Runtime.unalias(reply_to)
            reply
        after
          timeout ->
            Runtime.unalias(reply_to)
            flush_reply(ref)
            exit({:timeout, mfa})
        end
    end
  end

  defp flush_reply(ref) do
    Lockstep.receive do
      {^ref, _} -> :ok
    after
      0 -> :ok
    end
  end

  @doc """
  Sends `request` to `server` without waiting; mirrors `GenServer.cast/2`. Always returns
  `:ok`, even when the server is not running (the message is dropped).
  """
  @spec cast(server(), term()) :: :ok
  def cast(server, request) do
    msg = {:"$gen_cast", request}

    case server do
      pid when is_pid(pid) ->
        Lockstep.send(pid, msg)
        :ok

      name when is_atom(name) ->
        send_or_noproc(name, msg)
        :ok

      other ->
        case resolve(other) do
          nil -> :ok
          pid when is_pid(pid) -> Lockstep.send(pid, msg)
          {:send_to, dest} -> send_or_noproc(dest, msg)
        end

        :ok
    end
  end

  @doc """
  Replies to a caller from a callback; mirrors `GenServer.reply/2`. Use it when
  `handle_call/3` returned `{:noreply, state}`. A reply to a call that has already timed
  out is dropped. Returns `:ok`.
  """
  @spec reply(from(), term()) :: :ok
  def reply({dest, ref} = _from, reply) do
    Lockstep.send(dest, {ref, reply})
    :ok
  end

  @doc """
  Stops `server` with `reason` and waits (up to `timeout` virtual ms) for it to exit;
  mirrors `GenServer.stop/3`. The server calls `terminate(reason, state)` and exits with
  `reason`.

  Returns `:ok` when the server exits with `reason`. Exits the caller with
  `{:noproc, {Lockstep.GenServer, :stop, [server, reason, timeout]}}` when the server is
  not running, `{other_reason, {…}}` when it exits with another reason, and
  `{:timeout, {…}}` when it has not exited in time.

  A bad `timeout` exits the caller as `GenServer.stop/3` does on OTP 25 (whose
  `:sys.terminate/3` fails): with `{{{:function_clause, stacktrace}, {:sys, :terminate,
  [server, reason, timeout]}}, {Lockstep.GenServer, :stop, [server, reason, timeout]}}`
  when it is not `:infinity` or a non-negative integer (the server is left running), and
  the same with `:timeout_value` above 4_294_967_295 ms (the stop request is sent first,
  so the server stops).
  """
  @spec stop(server(), term(), timeout_ms()) :: :ok
  def stop(server, reason \\ :normal, timeout \\ :infinity) do
    mfa = {__MODULE__, :stop, [server, reason, timeout]}

    case resolve(server) do
      nil ->
        exit({:noproc, mfa})

      pid when pid == self() ->
        exit({:calling_self, mfa})

      pid when is_pid(pid) ->
        stop_monitored(pid, reason, timeout, mfa)

      {:send_to, dest} ->
        stop_unmonitored(dest, reason, timeout, mfa)
    end
  end

  defp stop_monitored(pid, reason, timeout, mfa) do
    bad_stop_type!(pid, reason, timeout, mfa)
    mref = Lockstep.monitor(pid)
    Lockstep.send(pid, {:system, nil, {:terminate, reason}})

    with {:bad, _} <- Timeout.receive_timeout(timeout) do
      Lockstep.demonitor(mref, [:flush])
      bad_stop!(:timeout_value, pid, reason, timeout, mfa)
    end

    Lockstep.receive do
      {:DOWN, ^mref, _, _, ^reason} ->
        :ok

      {:DOWN, ^mref, _, _, other} ->
        exit({other, mfa})
    after
      timeout ->
        Lockstep.demonitor(mref, [:flush])
        exit({:timeout, mfa})
    end
  end

  # A server known only by {name, node}: it acknowledges the stop with its pid (after
  # terminate/2, through an alias); then a monitor waits for the exit itself, so that, as
  # with a local server, stop/3 returns once the server is gone.
  defp stop_unmonitored(dest, reason, timeout, mfa) do
    bad_stop_type!(dest, reason, timeout, mfa)
    ref = make_ref()
    reply_to = Runtime.alias()

    case send_or_noproc(dest, {:system, {reply_to, ref}, {:terminate, reason}}) do
      :noproc ->
        Runtime.unalias(reply_to)
        exit({:noproc, mfa})

      :ok ->
        with {:bad, _} <- Timeout.receive_timeout(timeout) do
          Runtime.unalias(reply_to)
          bad_stop!(:timeout_value, dest, reason, timeout, mfa)
        end

        Lockstep.receive do
          {^ref, {:stopping, pid}} ->
            Runtime.unalias(reply_to)
            mref = Lockstep.monitor(pid)

            Lockstep.receive do
              {:DOWN, ^mref, _, _, down} when down in [reason, :noproc] -> :ok
              {:DOWN, ^mref, _, _, other} -> exit({other, mfa})
            end
        after
          timeout ->
            Runtime.unalias(reply_to)
            flush_reply(ref)
            exit({:timeout, mfa})
        end
    end
  end

  # OTP's stop runs `:sys.terminate(server, reason, timeout)`, whose `:gen.call/4` guard
  # refuses a bad timeout (`:function_clause`) before sending, and whose receive refuses a
  # too large one (`:timeout_value`) after; `:sys` wraps either in `{reason, mfa}`.
  defp bad_stop_type!(server, reason, timeout, mfa) do
    unless is_timeout(timeout), do: bad_stop!(:function_clause, server, reason, timeout, mfa)
  end

  defp bad_stop!(error, server, reason, timeout, mfa) do
    {:current_stacktrace, [_info | stacktrace]} = Process.info(self(), :current_stacktrace)
    exit({{{error, stacktrace}, {:sys, :terminate, [server, reason, timeout]}}, mfa})
  end

  @doc """
  The pid of `server`, or `nil` when no process is registered under its name; mirrors
  `GenServer.whereis/1`. A pid is returned as is; a name on another simulated node is
  returned as `{name, node}`. A sync point when a name is looked up.
  """
  @spec whereis(server()) :: pid() | {atom(), node()} | nil
  def whereis({name, node} = server) when is_atom(name) and name != :global and is_atom(node) do
    if node == Lockstep.node(), do: resolve(name), else: server
  end

  def whereis(server), do: resolve(server)

  # Resolving servers ----------------------------------------------------------------------
  #
  # Every server form is handled by one clause of resolve/1 (and one of register_name/1 and
  # unregister_name/1 for the :name option): pid | nil for a local process, {:send_to, dest}
  # for one Lockstep.send reaches but that cannot be monitored by pid.

  defp resolve(pid) when is_pid(pid), do: pid

  defp resolve(name) when is_atom(name) and name not in [nil, :undefined],
    do: Lockstep.whereis(name)

  defp resolve({:global, name}), do: resolve({:via, Lockstep.Global, name})

  defp resolve({name, node}) when is_atom(name) and is_atom(node) do
    cond do
      node == Lockstep.node() -> resolve(name)
      # A node this run never started has no processes: :noproc, as for a dead node.
      node not in Lockstep.Cluster.nodes() -> nil
      true -> Lockstep.Runtime.cluster({:whereis, name, node})
    end
  end

  defp resolve({:via, mod, name}) when is_atom(mod) do
    case mod.whereis_name(name) do
      pid when is_pid(pid) -> pid
      _ -> nil
    end
  end

  defp resolve(other) do
    raise ArgumentError,
          "Lockstep.GenServer expects a server as a pid, a registered atom, {atom, node}, " <>
            "{:global, term} or {:via, module, term}, got: #{inspect(other)}"
  end

  defp send_or_noproc({:via, mod, name}, msg) do
    mod.send(name, msg)
    :ok
  catch
    :exit, {:badarg, _} -> :noproc
  end

  defp send_or_noproc(dest, msg) do
    Lockstep.send(dest, msg)
    :ok
  rescue
    # An unregistered name (a malformed destination was refused by resolve/1 already).
    ArgumentError -> :noproc
  end

  defp validate_name(nil), do: nil
  defp validate_name(name) when is_atom(name) and name not in [nil, :undefined], do: name
  defp validate_name({:global, name}), do: {:via, Lockstep.Global, name}
  defp validate_name({:via, mod, _} = name) when is_atom(mod), do: name

  defp validate_name(other) do
    raise ArgumentError,
          "Lockstep.GenServer: the :name option expects an atom, {:global, term} or " <>
            "{:via, module, term}, got: #{inspect(other)}"
  end

  # :ok | {:taken, pid | nil}
  defp register_name(nil), do: :ok

  defp register_name(name) when is_atom(name) do
    Lockstep.register(name, self())
    :ok
  rescue
    ArgumentError -> {:taken, Lockstep.whereis(name)}
  end

  defp register_name({:via, mod, name}) do
    case mod.register_name(name, self()) do
      :yes -> :ok
      :no -> {:taken, resolve({:via, mod, name})}
    end
  end

  defp unregister_name(nil), do: :ok

  defp unregister_name(name) when is_atom(name) do
    Lockstep.unregister(name)
    :ok
  rescue
    ArgumentError -> :ok
  end

  defp unregister_name({:via, mod, name}) do
    mod.unregister_name(name)
    :ok
  end

  # Starting -------------------------------------------------------------------------------

  defp do_start(link, module, init_arg, opts) do
    name = validate_name(Keyword.get(opts, :name))
    timeout = Keyword.get(opts, :timeout, :infinity)
    starter = self()
    ack = make_ref()
    parent = if link == :link, do: starter, else: nil
    body = fn -> init_it(starter, ack, parent, module, init_arg, name) end

    pid =
      case link do
        :link -> Lockstep.spawn_link(body)
        :nolink -> Lockstep.spawn(body)
      end

    # The monitor covers a server that dies before acknowledging (killed by a signal).
    mref = Lockstep.monitor(pid)

    Lockstep.receive do
      {^ack, result} ->
        Lockstep.demonitor(mref, [:flush])
        result

      {:DOWN, ^mref, _, _, reason} ->
        {:error, reason}
    after
      timeout ->
        if link == :link, do: Lockstep.unlink(pid)
        Lockstep.exit(pid, :kill)
        Lockstep.demonitor(mref, [:flush])
        flush_reply(ack)
        {:error, :timeout}
    end
  end

  @doc false
  # The body of a server process: register the name, run init/1, acknowledge the starter
  # and enter the loop.
  @spec init_it(pid(), reference(), pid() | nil, module(), term(), name() | nil) :: term()
  def init_it(starter, ack, parent, mod, init_arg, name) do
    case register_name(name) do
      :ok ->
        run_init(starter, ack, %{parent: parent, mod: mod, name: name}, init_arg)

      {:taken, pid} ->
        Lockstep.send(starter, {ack, {:error, {:already_started, pid}}})
        :ok
    end
  end

  defp run_init(starter, ack, gs, init_arg) do
    case apply_callback(fn -> gs.mod.init(init_arg) end) do
      {:ok, {:ok, state}} ->
        Lockstep.send(starter, {ack, {:ok, self()}})
        loop(gs, state, :infinity)

      {:ok, {:ok, state, next}} ->
        if valid_next?(next) do
          Lockstep.send(starter, {ack, {:ok, self()}})
          loop(gs, state, next)
        else
          init_failed(starter, ack, gs, {:bad_return_value, {:ok, state, next}})
          exit({:bad_return_value, {:ok, state, next}})
        end

      {:ok, :ignore} ->
        unregister_name(gs.name)
        Lockstep.send(starter, {ack, :ignore})
        :ok

      {:ok, {:stop, reason}} ->
        init_failed(starter, ack, gs, reason)
        exit(reason)

      {:ok, other} ->
        init_failed(starter, ack, gs, {:bad_return_value, other})
        exit({:bad_return_value, other})

      {:raised, kind, reason, stack} ->
        init_failed(starter, ack, gs, exit_reason(kind, reason, stack))
        :erlang.raise(kind, reason, stack)
    end
  end

  defp init_failed(starter, ack, gs, reason) do
    unregister_name(gs.name)
    Lockstep.send(starter, {ack, {:error, reason}})
  end

  defp valid_next?(:infinity), do: true
  defp valid_next?(:hibernate), do: true
  defp valid_next?({:continue, _}), do: true
  defp valid_next?(ms) when is_integer(ms) and ms >= 0, do: true
  defp valid_next?(_), do: false

  # The loop -------------------------------------------------------------------------------
  #
  # Every function below ends in a tail call, so a server runs in constant stack.

  defp loop(gs, state, {:continue, arg}) do
    handle_noreply(gs, state, apply_callback(fn -> gs.mod.handle_continue(arg, state) end))
  end

  defp loop(gs, state, :hibernate), do: loop(gs, state, :infinity)

  defp loop(gs, state, timeout) do
    parent = gs.parent

    Lockstep.receive do
      {:"$gen_call", from, request} ->
        handle_call_result(
          gs,
          state,
          from,
          apply_callback(fn -> gs.mod.handle_call(request, from, state) end)
        )

      {:"$gen_cast", request} ->
        handle_noreply(gs, state, apply_callback(fn -> gs.mod.handle_cast(request, state) end))

      {:system, from, {:terminate, reason}} ->
        run_terminate(gs, reason, state)
        if from != nil, do: reply(from, {:stopping, self()})
        exit(reason)

      {:EXIT, ^parent, reason} when is_pid(parent) ->
        run_terminate(gs, reason, state)
        exit(reason)

      msg ->
        handle_info(gs, state, msg)
    after
      timeout -> handle_info(gs, state, :timeout)
    end
  end

  defp handle_info(gs, state, msg) do
    if function_exported?(gs.mod, :handle_info, 2) do
      handle_noreply(gs, state, apply_callback(fn -> gs.mod.handle_info(msg, state) end))
    else
      loop(gs, state, :infinity)
    end
  end

  defp handle_call_result(gs, state, from, result) do
    case result do
      {:ok, {:reply, reply, new_state}} ->
        reply(from, reply)
        loop(gs, new_state, :infinity)

      {:ok, {:reply, reply, new_state, next} = other} ->
        if valid_next?(next) do
          reply(from, reply)
          loop(gs, new_state, next)
        else
          stop_server(gs, {:bad_return_value, other}, state)
        end

      {:ok, {:stop, reason, reply, new_state}} ->
        run_terminate(gs, reason, new_state)
        reply(from, reply)
        exit(reason)

      other ->
        handle_noreply(gs, state, other)
    end
  end

  defp handle_noreply(gs, state, result) do
    case result do
      {:ok, {:noreply, new_state}} ->
        loop(gs, new_state, :infinity)

      {:ok, {:noreply, new_state, next} = other} ->
        if valid_next?(next),
          do: loop(gs, new_state, next),
          else: stop_server(gs, {:bad_return_value, other}, state)

      {:ok, {:stop, reason, new_state}} ->
        stop_server(gs, reason, new_state)

      {:ok, other} ->
        stop_server(gs, {:bad_return_value, other}, state)

      {:raised, kind, reason, stack} ->
        run_terminate(gs, exit_reason(kind, reason, stack), state)
        :erlang.raise(kind, reason, stack)
    end
  end

  defp stop_server(gs, reason, state) do
    run_terminate(gs, reason, state)
    exit(reason)
  end

  defp run_terminate(gs, reason, state) do
    if function_exported?(gs.mod, :terminate, 2), do: gs.mod.terminate(reason, state)
    :ok
  end

  # {:ok, value} | {:raised, kind, reason, stacktrace}; a throw is a return value, as in OTP.
  defp apply_callback(fun) do
    {:ok, fun.()}
  catch
    :throw, value -> {:ok, value}
    kind, reason -> {:raised, kind, reason, __STACKTRACE__}
  end

  defp exit_reason(:exit, reason, _stack), do: reason
  defp exit_reason(:error, reason, stack), do: {Exception.normalize(:error, reason, stack), stack}
end
