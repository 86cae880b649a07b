defmodule Lockstep.Instrument.Ops.Processes do
  @moduledoc """
  The process operations of instrumented code (SPEC §9): what a call to `send/2`,
  `spawn/1`, `monitor/2`, `register/2`, `:global.register_name/2`, `node/0` … becomes
  when a managed process runs it.

  `Lockstep.Instrument` rewrites every call listed in `__ops__/0` into a check of the
  process dictionary: outside a run the original call runs unchanged; in a managed process
  the function of this module of the same arity runs instead. Each one is a sync point of
  the run built on `Lockstep.Runtime`, with OTP 25's semantics for the call it replaces:
  the same return values and the same exceptions (`error:badarg` where the BIF raises
  `badarg`, `exit` where it exits). The Elixir wrappers that Elixir's compiler does not
  inline (`Process.register/2`, `Process.whereis/1`, `Node.self/0`, …) keep the wrapper's
  own behaviour: its guards, its error messages, its return shapes.

  ## What is simulated, and what is not

    * Links, monitors, exit signals, `trap_exit`, registered names, `:global` names and
      nodes between managed processes are the engine's (scheduled, traced, replayed).
    * A pid outside the run (ExUnit's process, a Logger handler, a process spawned by
      code that is not instrumented) gets the real BIF: `monitor/2,3`, `link/1`,
      `unlink/1`, `exit/2`, `is_process_alive/1` and `node/1` on it do what OTP does, and
      sends to it are real sends. Its `{:DOWN, …}` or `{:EXIT, …}` then lands in the
      managed process's real mailbox as an untagged message, which the instrumented
      `receive` takes as a message from outside the run. A real link's exit signal reaches
      a managed process, which traps exits for real, as an external signal: it dies of it
      (unless the reason is `:normal`) even when it traps exits in the simulation.
    * `spawn_opt/2..5` honours `:link` and `:monitor` (with `{:monitor, [alias: mode]}`);
      the other OTP options are checked and ignored.
    * The node forms (`spawn/2,4`, `monitor(:process, {name, node})`, …) use the run's
      simulated nodes (`Lockstep.Cluster`); spawning on a node the run has not started
      raises `ArgumentError` naming it, where OTP would return the pid of a process that
      never ran. Monitoring `{name, node}` on such a node is the real BIF (`badarg` in a
      VM that is not distributed, an untagged `:noconnection` `:DOWN` in one that is).
    * `alias/0,1` make a real alias as well as the run's, so a process outside the run can
      reply through it; a `reply` alias spent by a message from inside the run stays
      active for outside senders.
    * `:global.register_name/3`'s resolve function is ignored: a clash on heal is resolved
      as `:global`'s default resolver does (`Lockstep.Global`).
    * `register/2` of a pid or port outside the run raises `ArgumentError`: names are
      simulated per node, and no managed `whereis/1` could see it.

  Elixir 1.14's `Process` has no `alias/0,1` or `unalias/1` (they came in 1.15), so only
  the `:erlang` functions are listed for those.
  """

  # The functions mirrored here are named as the BIFs they replace.
  import Kernel,
    except: [
      send: 2,
      spawn: 1,
      spawn: 3,
      spawn_link: 1,
      spawn_link: 3,
      spawn_monitor: 1,
      spawn_monitor: 3,
      node: 0,
      node: 1
    ]

  alias Lockstep.{Global, Runtime}

  @real_monitor :"$lockstep_real_monitor"

  @doc false
  def __ops__ do
    [
      {{:erlang, :send, 2}, :send},
      {{:erlang, :send, 3}, :send},
      {{Process, :send, 3}, :send},
      {{:erlang, :spawn, 1}, :spawn},
      {{:erlang, :spawn, 2}, :spawn},
      {{:erlang, :spawn, 3}, :spawn},
      {{:erlang, :spawn, 4}, :spawn},
      {{:erlang, :spawn_link, 1}, :spawn_link},
      {{:erlang, :spawn_link, 2}, :spawn_link},
      {{:erlang, :spawn_link, 3}, :spawn_link},
      {{:erlang, :spawn_link, 4}, :spawn_link},
      {{:erlang, :spawn_monitor, 1}, :spawn_monitor},
      {{:erlang, :spawn_monitor, 2}, :spawn_monitor},
      {{:erlang, :spawn_monitor, 3}, :spawn_monitor},
      {{:erlang, :spawn_monitor, 4}, :spawn_monitor},
      {{:erlang, :spawn_opt, 2}, :spawn_opt},
      {{:erlang, :spawn_opt, 3}, :spawn_opt},
      {{:erlang, :spawn_opt, 4}, :spawn_opt},
      {{:erlang, :spawn_opt, 5}, :spawn_opt},
      {{Process, :spawn, 2}, :spawn_opt},
      {{Process, :spawn, 4}, :spawn_opt},
      {{:erlang, :link, 1}, :link},
      {{Process, :link, 1}, :link},
      {{:erlang, :unlink, 1}, :unlink},
      {{Process, :unlink, 1}, :unlink},
      {{:erlang, :monitor, 2}, :monitor},
      {{:erlang, :monitor, 3}, :monitor},
      {{Process, :monitor, 1}, :process_monitor},
      {{:erlang, :demonitor, 1}, :demonitor},
      {{:erlang, :demonitor, 2}, :demonitor},
      {{Process, :demonitor, 1}, :demonitor},
      {{Process, :demonitor, 2}, :demonitor},
      {{:erlang, :alias, 0}, :make_alias},
      {{:erlang, :alias, 1}, :make_alias},
      {{:erlang, :unalias, 1}, :unalias},
      {{:erlang, :process_flag, 2}, :process_flag},
      {{Process, :flag, 2}, :process_flag},
      {{:erlang, :exit, 2}, :exit},
      {{Process, :exit, 2}, :exit},
      {{:erlang, :is_process_alive, 1}, :is_process_alive},
      {{Process, :alive?, 1}, :is_process_alive},
      {{:erlang, :register, 2}, :register},
      {{Process, :register, 2}, :process_register},
      {{:erlang, :unregister, 1}, :unregister},
      {{Process, :unregister, 1}, :unregister},
      {{:erlang, :whereis, 1}, :whereis},
      {{Process, :whereis, 1}, :process_whereis},
      {{:erlang, :registered, 0}, :registered},
      {{Process, :registered, 0}, :registered},
      {{:global, :register_name, 2}, :global_register_name},
      {{:global, :register_name, 3}, :global_register_name},
      {{:global, :whereis_name, 1}, :global_whereis_name},
      {{:global, :unregister_name, 1}, :global_unregister_name},
      {{:global, :send, 2}, :global_send},
      {{:global, :registered_names, 0}, :global_registered_names},
      {{:erlang, :node, 0}, :node},
      {{:erlang, :node, 1}, :node},
      {{Node, :self, 0}, :node},
      {{:erlang, :nodes, 0}, :nodes},
      {{:erlang, :nodes, 1}, :nodes},
      {{Node, :list, 0}, :nodes},
      {{Node, :list, 1}, :nodes},
      {{:erlang, :yield, 0}, :yield}
    ]
  end

  # Sending ---------------------------------------------------------------------------------

  @doc "`erlang:send/2` (`dest ! msg`): returns `msg`; a name nobody holds raises `badarg`."
  @spec send(term(), term()) :: term()
  def send(dest, msg) when is_port(dest), do: :erlang.send(dest, msg)

  def send(dest, msg) when is_pid(dest) do
    Runtime.send_later(dest, msg)
    msg
  end

  def send(dest, msg) when is_reference(dest) do
    Runtime.send_later(dest, msg, fn _reason, dest -> badarg!(:send, [dest, msg]) end)
    msg
  end

  def send(dest, msg) do
    Runtime.send_or(dest, msg, fn _reason, dest -> badarg!(:send, [dest, msg]) end)
    msg
  end

  @doc """
  `erlang:send/3` and `Process.send/3`: `:ok`. `:noconnect` and `:nosuspend` never apply
  to a simulated node (a send never suspends, a node is connected or cut off by the run).
  """
  @spec send(term(), term(), [:noconnect | :nosuspend]) :: :ok
  def send(dest, msg, opts) do
    unless proper_list?(opts) and Enum.all?(opts, &(&1 in [:noconnect, :nosuspend])) do
      badarg!(:send, [dest, msg, opts], :badopt)
    end

    send(dest, msg)
    :ok
  end

  # The BIF's badarg, raised as the BIF raises it (class `:error`, reason `:badarg`:
  # Erlang code catching `error:badarg` sees it), with a stack frame of `:erlang` and OTP's
  # error_info, so Elixir prints the message OTP would ("1st argument: not a pid").
  # `cause` is the one OTP's BIF gives where the arguments alone do not tell.
  defp badarg!(fun, args, cause \\ nil) do
    {:current_stacktrace, [_info, _self | stacktrace]} = Process.info(self(), :current_stacktrace)

    info =
      if cause, do: %{module: :erl_erts_errors, cause: cause}, else: %{module: :erl_erts_errors}

    frame = {:erlang, fun, args, [error_info: info]}
    :erlang.raise(:error, :badarg, [frame | stacktrace])
  end

  # Spawning --------------------------------------------------------------------------------

  @doc "`spawn/1` (a fun), `spawn/2` (node, fun), `spawn/3` (MFA), `spawn/4` (node, MFA)."
  def spawn(fun), do: start(nil, body!(fun), false, nil)
  def spawn(node, fun), do: start(node!(node), body!(fun), false, nil)
  def spawn(m, f, a), do: start(nil, mfa!(m, f, a), false, nil)
  def spawn(node, m, f, a), do: start(node!(node), mfa!(m, f, a), false, nil)

  @doc "`spawn_link/1..4`: as `spawn/1..4`, linked to the caller in the same step."
  def spawn_link(fun), do: start(nil, body!(fun), true, nil)
  def spawn_link(node, fun), do: start(node!(node), body!(fun), true, nil)
  def spawn_link(m, f, a), do: start(nil, mfa!(m, f, a), true, nil)
  def spawn_link(node, m, f, a), do: start(node!(node), mfa!(m, f, a), true, nil)

  @doc """
  `spawn_monitor/1..4`: `{pid, ref}`, the monitor set in the spawn's own step (the child
  cannot exit before it is watched).
  """
  def spawn_monitor(fun), do: start(nil, body!(fun), false, [])
  def spawn_monitor(node, fun), do: start(node!(node), body!(fun), false, [])
  def spawn_monitor(m, f, a), do: start(nil, mfa!(m, f, a), false, [])
  def spawn_monitor(node, m, f, a), do: start(node!(node), mfa!(m, f, a), false, [])

  @doc """
  `spawn_opt/2..5` and `Process.spawn/2,4`: `:link`, `:monitor` and `{:monitor, opts}`
  are honoured (the result is then `{pid, ref}`); the other options of OTP 25 are checked
  and ignored; anything else raises `badarg`.
  """
  def spawn_opt(fun, opts), do: spawn_with(nil, body!(fun), opts)
  def spawn_opt(node, fun, opts), do: spawn_with(node!(node), body!(fun), opts)
  def spawn_opt(m, f, a, opts), do: spawn_with(nil, mfa!(m, f, a), opts)
  def spawn_opt(node, m, f, a, opts), do: spawn_with(node!(node), mfa!(m, f, a), opts)

  defp spawn_with(node, body, opts) do
    {link?, monitor} = spawn_opts!(opts)
    start(node, body, link?, monitor)
  end

  # `monitor`: nil (none) or the monitor's options.
  defp start(node, body, link?, nil), do: Runtime.spawn(body, link?, node)

  defp start(node, body, link?, monitor_opts) do
    ref = make_ref()
    pid = Runtime.spawn(body, link?, node, ref)
    alias_monitor(ref, monitor_opts)
    {pid, ref}
  end

  # A fun of any arity spawns (OTP's spawn/1 applies it to no arguments, so a wrong arity
  # crashes the child with badarity, not the caller).
  defp body!(fun) when is_function(fun, 0), do: fun
  defp body!(fun) when is_function(fun), do: fn -> apply(fun, []) end
  defp body!(_), do: :erlang.error(:badarg)

  defp mfa!(m, f, a) when is_atom(m) and is_atom(f) do
    if proper_list?(a), do: fn -> apply(m, f, a) end, else: :erlang.error(:badarg)
  end

  defp mfa!(_, _, _), do: :erlang.error(:badarg)

  defp node!(node) when is_atom(node), do: node
  defp node!(_), do: :erlang.error(:badarg)

  @plain_spawn_opts [:fullsweep_after, :min_heap_size, :min_bin_vheap_size, :max_heap_size]

  defp spawn_opts!(opts) do
    unless proper_list?(opts), do: :erlang.error(:badarg)

    Enum.reduce(opts, {false, nil}, fn
      :link, {_, monitor} -> {true, monitor}
      :monitor, {link?, _} -> {link?, []}
      {:monitor, mopts}, {link?, _} -> {link?, monitor_opts!(mopts)}
      {:priority, p}, acc when p in [:low, :normal, :high, :max] -> acc
      {:message_queue_data, d}, acc when d in [:off_heap, :on_heap] -> acc
      {key, _}, acc when key in @plain_spawn_opts -> acc
      _, _ -> :erlang.error(:badarg)
    end)
  end

  # Links, monitors, exit signals -------------------------------------------------------------

  @doc """
  `link/1`: `true`. To a process that is gone it raises `noproc` in a caller that does not
  trap exits; a trapping one gets `{:EXIT, pid, :noproc}` (OTP 25).
  """
  @spec link(pid() | port()) :: true
  def link(pid) when is_pid(pid) do
    case Runtime.link_result(pid, true) do
      :ok -> true
      :noproc -> :erlang.error(:noproc)
      :unmanaged -> :erlang.link(pid)
    end
  end

  def link(port) when is_port(port), do: :erlang.link(port)
  def link(other), do: badarg!(:link, [other])

  @doc "`unlink/1`: `true`; the link's exit signals still in flight are dropped."
  @spec unlink(pid() | port()) :: true
  def unlink(pid) when is_pid(pid) do
    case Runtime.link_result(pid, false) do
      :ok -> true
      :unmanaged -> :erlang.unlink(pid)
    end
  end

  def unlink(port) when is_port(port), do: :erlang.unlink(port)
  def unlink(other), do: badarg!(:unlink, [other])

  @doc """
  `monitor/2`: a monitor of a process by pid, registered name or `{name, node}` (its
  `:DOWN` then names `{name, node}`; a name nobody holds gives an immediate `:noproc`
  `:DOWN`). Other monitor types (`:port`, `:time_offset`) are the real BIF.
  """
  @spec monitor(atom(), term()) :: reference()
  def monitor(:process, item), do: monitor(:process, item, [])
  def monitor(type, item), do: :erlang.monitor(type, item)

  @doc """
  `monitor/3`: `monitor/2` with OTP 25's options, `{:alias, :explicit_unalias |
  :demonitor | :reply_demonitor}`: the monitor's ref is then also an alias of the caller,
  removed by `unalias/1`, with the monitor, or by the first reply through it.
  """
  @spec monitor(atom(), term(), list()) :: reference()
  def monitor(:process, item, opts) do
    alias_opts = monitor_opts!(opts)

    case monitor_item(item) do
      {:simulated, ref} -> alias_monitor(ref, alias_opts)
      :real -> real_monitor(item, opts)
    end
  end

  def monitor(type, item, opts), do: :erlang.monitor(type, item, opts)

  @doc "`Process.monitor/1`: `monitor(:process, item)`."
  @spec process_monitor(term()) :: reference()
  def process_monitor(item), do: monitor(:process, item)

  defp monitor_item(item)
       when is_pid(item) or is_atom(item) or
              (is_tuple(item) and tuple_size(item) == 2 and is_atom(elem(item, 0)) and
                 is_atom(elem(item, 1))) do
    case Runtime.monitor_target(item) do
      ref when is_reference(ref) -> {:simulated, ref}
      # a pid outside the run, or a node this run has not started
      _outside -> :real
    end
  end

  defp monitor_item(item), do: badarg!(:monitor, [:process, item])

  defp real_monitor(item, opts) do
    ref = :erlang.monitor(:process, item, opts)
    Process.put({@real_monitor, ref}, true)
    ref
  end

  defp monitor_opts!(opts) do
    unless proper_list?(opts), do: :erlang.error(:badarg)

    Enum.map(opts, fn
      {:alias, mode} when mode in [:explicit_unalias, :demonitor, :reply_demonitor] -> mode
      _ -> :erlang.error(:badarg)
    end)
  end

  # The last `{:alias, mode}` given wins, as in OTP.
  defp alias_monitor(ref, []), do: ref

  defp alias_monitor(ref, modes) do
    case List.last(modes) do
      :explicit_unalias -> Runtime.alias_ref(ref, false, nil)
      :demonitor -> Runtime.alias_ref(ref, false, ref)
      :reply_demonitor -> Runtime.alias_ref(ref, true, ref)
    end
  end

  @doc """
  `demonitor/1,2` and `Process.demonitor/1,2`: `true`; with `:info`, whether the monitor
  was still active (its `:DOWN` not yet in the mailbox); `:flush` takes its `:DOWN` out of
  the mailbox.
  """
  @spec demonitor(reference(), [:flush | :info]) :: boolean()
  def demonitor(ref, opts \\ [])

  def demonitor(ref, opts) when is_reference(ref) do
    unless proper_list?(opts) and Enum.all?(opts, &(&1 in [:flush, :info])) do
      badarg!(:demonitor, [ref, opts])
    end

    case Process.delete({@real_monitor, ref}) do
      true -> :erlang.demonitor(ref, opts)
      nil -> Runtime.demonitor(ref, opts)
    end
  end

  def demonitor(ref, opts), do: badarg!(:demonitor, [ref, opts])

  @doc """
  `alias/0,1` (named `make_alias`: `alias` is an Elixir special form): a reference that is an alias of the caller; `[:reply]` makes the first
  message through it its last, `[:explicit_unalias]` (the default) keeps it until
  `unalias/1`.
  """
  @spec make_alias([:explicit_unalias | :reply]) :: reference()
  def make_alias(opts \\ []) do
    unless proper_list?(opts) and Enum.all?(opts, &(&1 in [:explicit_unalias, :reply])) do
      :erlang.error(:badarg)
    end

    reply? = List.last(opts) == :reply
    Runtime.alias_ref(:erlang.alias(opts), reply?, nil)
  end

  @doc "`unalias/1`: whether the alias was active (`false` for any other reference)."
  @spec unalias(reference()) :: boolean()
  def unalias(ref) when is_reference(ref) do
    case Runtime.unalias_ref(ref) do
      {:ok, active?} ->
        :erlang.unalias(ref)
        active?

      :unknown ->
        :erlang.unalias(ref)
    end
  end

  def unalias(other), do: badarg!(:unalias, [other])

  @doc """
  `process_flag/2` and `Process.flag/2`: `:trap_exit` is the run's (returns the previous
  value); any other flag is the real `process_flag/2`.
  """
  @spec process_flag(atom(), term()) :: term()
  def process_flag(:trap_exit, value) when is_boolean(value), do: Runtime.flag(:trap_exit, value)
  def process_flag(:trap_exit, value), do: badarg!(:process_flag, [:trap_exit, value])
  def process_flag(flag, value), do: :erlang.process_flag(flag, value)

  @doc """
  `exit/2` and `Process.exit/2`: `true`. `exit(self(), reason)` takes effect before it
  returns: a caller that does not trap exits dies of it (of `:normal` too, unlike an exit
  signal from another process); a trapping one gets `{:EXIT, self(), reason}`.
  """
  @spec exit(pid() | port(), term()) :: true
  def exit(pid, reason) when is_pid(pid) do
    case Runtime.exit_result(pid, reason) do
      :ok -> true
      :unmanaged -> :erlang.exit(pid, reason)
    end
  end

  def exit(port, reason) when is_port(port), do: :erlang.exit(port, reason)
  def exit(other, reason), do: badarg!(:exit, [other, reason])

  @doc "`is_process_alive/1` and `Process.alive?/1`, after the caller's earlier signals to it."
  @spec is_process_alive(pid()) :: boolean()
  def is_process_alive(pid) when is_pid(pid), do: Runtime.alive?(pid)
  def is_process_alive(other), do: badarg!(:is_process_alive, [other])

  # Registered names ------------------------------------------------------------------------

  @doc """
  `register/2`: `true`, on the caller's simulated node; `badarg` when the name is taken,
  the process already has a name or is not alive, or the name is `:undefined`.
  """
  @spec register(atom(), pid()) :: true
  def register(name, pid) when is_atom(name) and name != :undefined and is_pid(pid) do
    case Runtime.register_result(name, pid) do
      true -> true
      # taken, already named or not alive: the run does not say which, so no
      # error_info (OTP's message would name the cause)
      false -> :erlang.error(:badarg)
      :unmanaged -> raise ArgumentError, outside_register(name, pid)
    end
  end

  def register(name, port) when is_atom(name) and name != :undefined and is_port(port),
    do: raise(ArgumentError, outside_register(name, port))

  def register(name, pid), do: badarg!(:register, [name, pid])

  defp outside_register(name, who) do
    "register(#{inspect(name)}, #{inspect(who)}) in a managed process: #{inspect(who)} is " <>
      "not a process of this run. Registered names are simulated per node inside a run, " <>
      "so no managed whereis/1 could find it; register a managed process, or register " <>
      "it outside the run"
  end

  @doc "`Process.register/2`: its guards and its `ArgumentError` over `register/2`."
  @spec process_register(pid() | port(), atom()) :: true
  def process_register(pid_or_port, name)
      when is_atom(name) and name not in [nil, false, true, :undefined] do
    register(name, pid_or_port)
  catch
    :error, :badarg when :erlang.node(pid_or_port) != :erlang.node() ->
      message = "could not register #{inspect(pid_or_port)} because it belongs to another node"
      :erlang.error(ArgumentError.exception(message), [pid_or_port, name])

    :error, :badarg ->
      message =
        "could not register #{inspect(pid_or_port)} with name #{inspect(name)} because it " <>
          "is not alive, the name is already taken, or it has already been given another name"

      :erlang.error(ArgumentError.exception(message), [pid_or_port, name])
  end

  @doc "`unregister/1` and `Process.unregister/1`: `true`; `badarg` if not registered."
  @spec unregister(atom()) :: true
  def unregister(name) when is_atom(name) do
    if Runtime.unregister_result(name), do: true, else: badarg!(:unregister, [name])
  end

  def unregister(other), do: badarg!(:unregister, [other])

  @doc """
  `whereis/1`: the pid, or `:undefined` (the BIF's answer, not `nil`). A name the run has
  not registered may be a process of the VM outside the run (Logger's, the file server,
  an application's): its real pid, which a send then reaches for real.
  """
  @spec whereis(atom()) :: pid() | :undefined
  def whereis(name) when is_atom(name), do: Runtime.whereis(name) || :erlang.whereis(name)
  def whereis(other), do: badarg!(:whereis, [other])

  @doc "`Process.whereis/1`: the pid, or `nil`."
  @spec process_whereis(atom()) :: pid() | nil
  def process_whereis(name) do
    case whereis(name) do
      :undefined -> nil
      pid -> pid
    end
  end

  @doc "`registered/0` and `Process.registered/0`: the names of the caller's node."
  @spec registered() :: [atom()]
  def registered, do: Runtime.registered()

  @doc """
  `:global.register_name/2,3`: `:yes` or `:no` (`Lockstep.Global`). The resolve function
  of `/3` is not called: a clash on heal is resolved as the default resolver does.
  """
  @spec global_register_name(term(), pid()) :: :yes | :no
  def global_register_name(name, pid) when is_pid(pid), do: Global.register_name(name, pid)

  @spec global_register_name(term(), pid(), function()) :: :yes | :no
  def global_register_name(name, pid, _resolve) when is_pid(pid),
    do: Global.register_name(name, pid)

  @doc "`:global.whereis_name/1`: the pid, or `:undefined`."
  @spec global_whereis_name(term()) :: pid() | :undefined
  def global_whereis_name(name), do: Global.whereis_name(name)

  @doc "`:global.unregister_name/1`: `:ok`."
  @spec global_unregister_name(term()) :: :ok
  def global_unregister_name(name), do: Global.unregister_name(name)

  @doc "`:global.send/2`: the pid; exits with `{:badarg, {name, msg}}` when nobody holds it."
  @spec global_send(term(), term()) :: pid()
  def global_send(name, msg), do: Global.send(name, msg)

  @doc "`:global.registered_names/0`."
  @spec global_registered_names() :: [term()]
  def global_registered_names, do: Global.registered_names()

  # Nodes -----------------------------------------------------------------------------------

  @doc """
  `node/0`, `Node.self/0`: the caller's simulated node. `node/1`: the simulated node of a
  managed pid (also one that has exited); the real `node/1` for anything else.
  """
  @spec node() :: node()
  def node, do: Runtime.node()

  @spec node(pid() | port() | reference()) :: node()
  def node(pid) when is_pid(pid) do
    case Runtime.cluster_result({:node_of, pid}) do
      node when is_atom(node) and node not in [:unmanaged, :badarg, :badnode] -> node
      _outside -> :erlang.node(pid)
    end
  end

  def node(other) when is_port(other) or is_reference(other), do: :erlang.node(other)
  def node(other), do: badarg!(:node, [other])

  @doc """
  `nodes/0`, `Node.list/0`: the other simulated nodes that are up and that the caller's
  node has not declared lost (a partition counts once its `net_ticktime` has passed).
  `nodes/1`, `Node.list/1`: `:visible` and `:connected` are those, `:this` the caller's
  node, `:known` every node of the run, `:hidden` none; a list is their union.
  """
  @spec nodes() :: [node()]
  def nodes, do: Runtime.cluster(:visible)

  @node_types [:visible, :hidden, :connected, :this, :known]

  @spec nodes(atom() | [atom()]) :: [node()]
  def nodes(type) when type in @node_types, do: nodes([type])

  def nodes(types) do
    unless proper_list?(types) and types != [] and Enum.all?(types, &(&1 in @node_types)) do
      :erlang.error(:badarg)
    end

    this = if :this in types or :known in types, do: [node()], else: []
    visible = if :visible in types or :connected in types, do: nodes(), else: []
    known = if :known in types, do: Runtime.cluster(:nodes), else: []
    Enum.uniq(this ++ visible ++ known)
  end

  @doc "`erlang:yield/0`: `true`, after a sync point."
  @spec yield() :: true
  def yield do
    Runtime.yield()
    true
  end

  defp proper_list?([]), do: true
  defp proper_list?([_ | tail]), do: proper_list?(tail)
  defp proper_list?(_), do: false
end
