defmodule Lockstep.SoakPrograms do
  @moduledoc false
  # Random terminating programs for the soak test (test/lockstep/soak_test.exs).
  #
  # A program is data: a map of numbered scripts, each a list of operations. Script 0 runs
  # as the root of the run; every other script is started by exactly one spawn operation
  # placed in a script with a smaller number, so a program has at most one process per
  # script (2..5) and always terminates: scripts are finite, every receive has an `after`
  # and every sleep is finite.
  #
  # Operations name pids by index into the process's list of *known* pids (itself, its
  # parent, children it spawned, pids it learned from messages, whereis and monitors), taken
  # modulo the list's length at run time, so a program is valid whatever it learned.
  #
  # Every managed process sends `{:soak_pid, pid}` to the test process (outside the run) as
  # it starts, and each spawner sends its child's pid as soon as the spawn returns, so the
  # test knows every pid a run created. An exception an operation should never raise
  # (anything but the documented ArgumentErrors) is reported as `{:soak_unexpected, …}`
  # and a `Lockstep.InternalError` as `{:soak_internal, …}` before it propagates: with
  # `crash: :ignore` a non-root process dying of it would otherwise go unnoticed.

  require Lockstep
  alias Lockstep.{Cluster, Global}

  @names [:soak_a, :soak_b, :soak_c]
  @nodes [:n1@soak, :n2@soak, :n3@soak]
  @global_names [{:g, 1}, {:g, 2}]
  @reasons [:normal, :kill, :shutdown, {:custom, 1}, {:custom, 2}]

  # Operations that may legitimately raise ArgumentError: names that are not (or no longer)
  # registered, simulated nodes that are not started.
  @may_raise_argument_error [
    :send_name,
    :send_remote,
    :register,
    :unregister,
    :send_after,
    :start_nodes,
    :start_node,
    :stop_node,
    :spawn_on,
    :partition,
    :monitor_node,
    :node_of
  ]

  # Generation ---------------------------------------------------------------------------

  @doc """
  The program and run options of case `case_no`: deterministic in `case_no` (the generator
  is seeded with `{case_no, 0x50AC, 0x2024}`). `cluster` forces (or forbids) the cluster
  operations; `nil` lets the seed decide.
  """
  def generate(case_no, cluster \\ nil) do
    :rand.seed(:exsss, case_seed(case_no))
    cluster? = if is_nil(cluster), do: :rand.uniform(3) == 1, else: cluster
    n = 1 + :rand.uniform(4)

    scripts =
      for j <- 0..(n - 1), into: %{} do
        {j, for(_ <- 1..(3 + :rand.uniform(17)), do: gen_op(cluster?))}
      end

    scripts =
      Enum.reduce(1..(n - 1), scripts, fn j, acc ->
        parent = :rand.uniform(j) - 1
        op = spawn_op(j, cluster?)
        op = if :rand.uniform(5) == 1, do: {:maybe, 2, op}, else: op
        Map.update!(acc, parent, &insert_random(&1, op))
      end)

    # Half of the roots trap exits from the start, so more runs get past the first exit
    # signal aimed at the root.
    scripts =
      if :rand.uniform(2) == 1,
        do: Map.update!(scripts, 0, &[{:trap_exit, true} | &1]),
        else: scripts

    # Most cluster programs start their nodes first; the others exercise calls on nodes
    # that are not started yet.
    scripts =
      if cluster? and :rand.uniform(5) > 1 do
        count = :rand.uniform(3)
        Map.update!(scripts, 0, &[{:start_nodes, Enum.take(@nodes, count)} | &1])
      else
        scripts
      end

    program = %{scripts: scripts, cluster: cluster?}
    {program, gen_options(case_no)}
  end

  def case_seed(case_no), do: {case_no, 0x50AC, 0x2024}

  @doc """
  Case `case_no` of `generate/2` with probes added (issue 10): in every script, a few
  operations whose result OTP guarantees and that Lockstep once got wrong — `exit(pid,
  :kill)` then `alive?(pid)` (false), a message to oneself then `receive … after 0` (there),
  a trapped `exit(self(), reason)` then `receive … after 0` (there) — and, in cluster
  programs, a split-brain probe first in the root (see `exec({:split_probe, …})`). A
  probe that sees the wrong result reports `{:soak_unexpected, …}`. The probes come from a
  generator of their own (seeded with `{case_no, 0x9B0E, 0x2025}`), so `generate/2` and its
  cases are unchanged.
  """
  def generate_probed(case_no, cluster) do
    {program, opts} = generate(case_no, cluster)
    :rand.seed(:exsss, probe_seed(case_no))

    scripts =
      Map.new(program.scripts, fn {j, ops} ->
        {j,
         Enum.reduce(1..(1 + :rand.uniform(3)), ops, fn _, acc ->
           insert_random(acc, probe_op())
         end)}
      end)

    scripts =
      if program.cluster do
        # Strict only under `timers: :on_idle`, where both holders surely register before
        # the root's timer lets it heal.
        probe = {:split_probe, case_no, Enum.random([:drop, :defer]), opts[:timers] == :on_idle}
        Map.update!(scripts, 0, &[probe | &1])
      else
        scripts
      end

    {%{program | scripts: scripts}, opts}
  end

  def probe_seed(case_no), do: {case_no, 0x9B0E, 0x2025}

  defp probe_op do
    case :rand.uniform(3) do
      1 -> {:kill_alive, idx()}
      2 -> {:self_after0, :rand.uniform(9)}
      3 -> {:self_exit_trapped, :rand.uniform(9)}
    end
  end

  defp gen_options(case_no) do
    strategy =
      Enum.random([
        :random,
        :pct,
        :pos,
        :fair_pct,
        :idpct,
        {:pct, bug_depth: :rand.uniform(4)},
        {:fair_pct, bug_depth: :rand.uniform(3), fair_switch: :rand.uniform(60)},
        {:idpct, d_min: 1, d_max: 1 + :rand.uniform(3)}
      ])

    [
      strategy: strategy,
      delivery: Enum.random([:instant, :delayed]),
      timers: Enum.random([:on_idle, :anytime]),
      crash: :ignore,
      max_steps: 2_000,
      timeout: 2_000,
      iterations: 4 + :rand.uniform(16),
      seed: :rand.uniform(4_294_967_296) - 1,
      name: "soak_case_#{case_no}"
    ]
  end

  defp insert_random(list, op), do: List.insert_at(list, :rand.uniform(length(list) + 1) - 1, op)

  defp spawn_op(j, true = _cluster?) do
    case :rand.uniform(4) do
      1 -> {:spawn_on, Enum.random(@nodes), j, Enum.random([:cluster, :option])}
      _ -> {:spawn, j, Enum.random([false, true])}
    end
  end

  defp spawn_op(j, false), do: {:spawn, j, Enum.random([false, true])}

  defp gen_op(cluster?) do
    table = if cluster?, do: base_ops() ++ cluster_ops(), else: base_ops()
    total = Enum.reduce(table, 0, fn {w, _}, acc -> acc + w end)
    pick(table, :rand.uniform(total))
  end

  defp pick([{w, gen} | _], n) when n <= w, do: gen.()
  defp pick([{w, _} | rest], n), do: pick(rest, n - w)

  defp idx, do: :rand.uniform(8) - 1
  defp name, do: Enum.random(@names)
  defp gname, do: Enum.random(@global_names)
  defp rnode, do: Enum.random(@nodes)
  defp ms(max), do: :rand.uniform(max + 1) - 1

  defp msg do
    case :rand.uniform(3) do
      1 -> {:hello, :rand.uniform(9)}
      2 -> {:pid, idx()}
      3 -> {:data, :rand.uniform(9)}
    end
  end

  defp pattern, do: Enum.random([:any, :any, :hello, :pid, :data, :exit, :down, :tick, :multi])

  defp base_ops do
    [
      {7, fn -> {:send, idx(), msg()} end},
      {2, fn -> {:send_name, name(), msg()} end},
      {8, fn -> {:receive, pattern(), ms(50)} end},
      {2, fn -> :yield end},
      {1, fn -> {:self_recv, :rand.uniform(9), Enum.random([:recv, :recv_first])} end},
      {2, fn -> {:random, :rand.uniform(4)} end},
      {2, fn -> {:link, idx()} end},
      {1, fn -> {:unlink, idx()} end},
      {2, fn -> {:monitor, idx()} end},
      {1, fn -> {:demonitor, idx(), Enum.random([[], [:flush]])} end},
      {2, fn -> {:trap_exit, Enum.random([true, false])} end},
      {2, fn -> {:exit, idx(), Enum.random(@reasons)} end},
      {1, fn -> {:alive, idx()} end},
      {2, fn -> {:register, name(), idx()} end},
      {1, fn -> {:whereis, name()} end},
      {1, fn -> {:unregister, name()} end},
      {1, fn -> :now end},
      {1, fn -> :registered end},
      {2, fn -> {:sleep, ms(100)} end},
      {2, fn -> {:send_after, Enum.random([{:pid, idx()}, {:name, name()}]), ms(100)} end},
      {1, fn -> {:cancel_timer, idx()} end},
      {1, fn -> {:maybe_crash, 1 + :rand.uniform(3), Enum.random([:raise, :throw, :exit])} end},
      {2, fn -> {:maybe, 1 + :rand.uniform(2), gen_op(false)} end}
    ]
  end

  defp cluster_ops do
    [
      {1, fn -> {:start_node, rnode()} end},
      {1, fn -> {:stop_node, rnode()} end},
      {2, fn -> {:partition, idx(), idx(), Enum.random([:drop, :defer])} end},
      {2, fn -> :heal end},
      {1, fn -> {:monitor_node, rnode()} end},
      {1, fn -> {:set_ticktime, 1 + ms(200)} end},
      {1, fn -> {:send_remote, name(), rnode()} end},
      {1, fn -> {:node_of, idx()} end},
      {1, fn -> :nodes end},
      {1, fn -> :global_names end},
      {2, fn -> {:global_register, gname(), idx()} end},
      {2, fn -> {:global_whereis, gname()} end},
      {1, fn -> {:global_unregister, gname()} end},
      {1, fn -> {:global_send, gname(), msg()} end}
    ]
  end

  # Interpretation -----------------------------------------------------------------------

  @doc "The root function of `program`; managed pids are reported to `test`."
  def body(program, test) do
    fn -> run_script(program, 0, nil, test) end
  end

  defp run_script(program, j, parent, test) do
    Kernel.send(test, {:soak_pid, self()})
    known = if parent, do: [self(), parent], else: [self()]
    state = %{program: program, test: test, known: known, refs: [], timers: []}
    Enum.reduce(Map.fetch!(program.scripts, j), state, &step/2)
    :ok
  end

  # A deliberate crash, when Lockstep.random(n) says so: outside the rescue below.
  defp step({:maybe_crash, n, how}, st) do
    if guarded(:maybe_crash, st, fn -> Lockstep.random(n) end) == 0 do
      case how do
        :raise -> raise "soak crash"
        :throw -> throw(:soak_crash)
        :exit -> exit({:soak_crash, n})
      end
    end

    st
  end

  defp step({:maybe, n, op}, st) do
    if guarded(:maybe, st, fn -> Lockstep.random(n) end) == 0, do: step(op, st), else: st
  end

  defp step(op, st), do: guarded(op_name(op), st, fn -> exec(op, st) end)

  defp guarded(name, st, fun) do
    try do
      fun.()
    rescue
      e in ArgumentError ->
        if name in @may_raise_argument_error do
          st
        else
          report(st, :soak_unexpected, name, e, __STACKTRACE__)
          reraise e, __STACKTRACE__
        end

      e in Lockstep.InternalError ->
        report(st, :soak_internal, name, e, __STACKTRACE__)
        reraise e, __STACKTRACE__

      e ->
        report(st, :soak_unexpected, name, e, __STACKTRACE__)
        reraise e, __STACKTRACE__
    end
  end

  defp report(st, tag, name, e, stacktrace) do
    Kernel.send(st.test, {tag, name, Exception.format(:error, e, stacktrace)})
  end

  defp op_name(op) when is_atom(op), do: op
  defp op_name(op) when is_tuple(op), do: elem(op, 0)

  defp pid_at(%{known: known}, i), do: Enum.at(known, rem(i, length(known)))

  defp learn(st, pid) when is_pid(pid) do
    if pid in st.known, do: st, else: %{st | known: st.known ++ [pid]}
  end

  defp learn(st, _), do: st

  defp learn_from(st, {:pid, p}), do: learn(st, p)
  defp learn_from(st, {:EXIT, p, _}), do: learn(st, p)
  defp learn_from(st, {:DOWN, _, :process, p, _}), do: learn(st, p)
  defp learn_from(st, _), do: st

  defp payload(st, {:pid, i}), do: {:pid, pid_at(st, i)}
  defp payload(_st, m), do: m

  defp child_fun(st, j) do
    %{program: program, test: test} = st
    parent = self()
    fn -> run_script(program, j, parent, test) end
  end

  defp spawned(st, pid) do
    Kernel.send(st.test, {:soak_pid, pid})
    learn(st, pid)
  end

  defp exec({:spawn, j, false}, st), do: spawned(st, Lockstep.spawn(child_fun(st, j)))
  defp exec({:spawn, j, true}, st), do: spawned(st, Lockstep.spawn_link(child_fun(st, j)))

  defp exec({:spawn_on, node, j, :cluster}, st),
    do: spawned(st, Cluster.spawn(node, child_fun(st, j)))

  defp exec({:spawn_on, node, j, :option}, st),
    do: spawned(st, Lockstep.spawn(child_fun(st, j), node: node))

  defp exec({:send, i, m}, st) do
    Lockstep.send(pid_at(st, i), payload(st, m))
    st
  end

  defp exec({:send_name, name, m}, st) do
    Lockstep.send(name, payload(st, m))
    st
  end

  defp exec({:send_remote, name, node}, st) do
    Lockstep.send({name, node}, {:remote, name})
    st
  end

  defp exec({:receive, :any, t}, st) do
    Lockstep.receive do
      m -> learn_from(st, m)
    after
      t -> st
    end
  end

  defp exec({:receive, :hello, t}, st) do
    Lockstep.receive do
      {:hello, _} -> st
    after
      t -> st
    end
  end

  defp exec({:receive, :pid, t}, st) do
    Lockstep.receive do
      {:pid, p} when is_pid(p) -> learn(st, p)
    after
      t -> st
    end
  end

  defp exec({:receive, :data, t}, st) do
    Lockstep.receive do
      {:data, n} when n > 3 -> st
    after
      t -> st
    end
  end

  defp exec({:receive, :exit, t}, st) do
    Lockstep.receive do
      {:EXIT, p, _reason} -> learn(st, p)
    after
      t -> st
    end
  end

  defp exec({:receive, :down, t}, st) do
    Lockstep.receive do
      {:DOWN, _ref, :process, p, _reason} -> learn(st, p)
    after
      t -> st
    end
  end

  defp exec({:receive, :tick, t}, st) do
    Lockstep.receive do
      {:tick, _} -> st
    after
      t -> st
    end
  end

  defp exec({:receive, :multi, t}, st) do
    Lockstep.receive do
      {:hello, _} -> st
      {:pid, p} -> learn(st, p)
      {:nodedown, _} -> st
      {:remote, _} -> st
    after
      t -> st
    end
  end

  # Probes (generate_probed/2) ---------------------------------------------------------

  # OTP: is_process_alive/1 answers after the caller's earlier signals reached the target,
  # so a process just sent :kill is not alive — unless the signal had to cross to another
  # simulated node, where a partition may hold it back.
  defp exec({:kill_alive, i}, st) do
    pid = pid_at(st, i)

    if pid != self() do
      same_node? = not st.program.cluster or Cluster.node_of(pid) == Lockstep.node()
      true = Lockstep.exit(pid, :kill)

      if Lockstep.alive?(pid) and same_node? do
        raise "probe: alive?(pid) is true right after exit(pid, :kill)"
      end
    end

    st
  end

  # SPEC §1: a message to oneself is in the mailbox when send returns, under any delivery.
  defp exec({:self_after0, n}, st) do
    Lockstep.send(self(), {:self0, n})

    Lockstep.receive do
      {:self0, ^n} -> st
    after
      0 -> raise "probe: a message to oneself was not in the mailbox at once"
    end
  end

  # OTP 25: exit(self(), reason) in a trapping process leaves {:EXIT, self(), reason} in the
  # mailbox when exit/2 returns.
  defp exec({:self_exit_trapped, n}, st) do
    was = Lockstep.flag(:trap_exit, true)
    me = self()
    true = Lockstep.exit(me, {:probe_exit, n})

    Lockstep.receive do
      {:EXIT, ^me, {:probe_exit, ^n}} -> :ok
    after
      0 -> raise "probe: a trapped exit(self(), reason) was not in the mailbox at once"
    end

    Lockstep.flag(:trap_exit, was)
    st
  end

  # SPEC §4, the :global split brain: with [home, p1] cut from [p2], a holder on each side
  # registers the same global name and, once the cut is declared lost, gets :yes; the heal
  # keeps one and kills the other (so exactly one is alive after it). `strict` (the run's
  # timers are :on_idle) is when both surely register before the heal.
  defp exec({:split_probe, k, mode, strict}, st) do
    name = {:probe, k}
    [p1, p2] = nodes = [:p1@soak, :p2@soak]
    ^nodes = Cluster.start_nodes(nodes)
    :ok = Cluster.partition([:nonode@nohost, p1], [p2], mode)
    test = st.test

    holder = fn node ->
      fn ->
        Kernel.send(test, {:soak_pid, self()})

        guarded(:split_probe, st, fn ->
          answer = Global.register_name(name, self())

          if strict and answer != :yes do
            raise "probe: #{node} could not register #{inspect(name)} on its side of the partition"
          end
        end)

        Lockstep.receive do
          :probe_stop -> :ok
        after
          100_000 -> :ok
        end
      end
    end

    holders = for node <- nodes, do: Cluster.spawn(node, holder.(node))
    st = Enum.reduce(holders, st, &spawned(&2, &1))
    # The holders wait for :global's lock until the tick (net_ticktime, 15 s) declares the
    # connection lost; then each registers on its side.
    Lockstep.sleep(20_000)
    :ok = Cluster.heal()
    alive = Enum.count(holders, &Lockstep.alive?/1)

    if strict and alive != 1 do
      raise "probe: #{alive} of the two holders of #{inspect(name)} alive after the heal, not 1"
    end

    Enum.each(holders, &Lockstep.send(&1, :probe_stop))
    st
  end

  # A message to oneself is in the mailbox when the send returns, so these never block.
  defp exec({:self_recv, n, :recv}, st) do
    Lockstep.send(self(), {:self, n})
    learn_from(st, Lockstep.recv())
  end

  defp exec({:self_recv, n, :recv_first}, st) do
    Lockstep.send(self(), {:self, n})
    {:self, ^n} = Lockstep.recv_first(&match?({:self, ^n}, &1))
    st
  end

  defp exec(:yield, st) do
    :ok = Lockstep.yield()
    st
  end

  defp exec({:random, n}, st) do
    r = Lockstep.random(n)
    true = is_integer(r) and r >= 0 and r < n
    st
  end

  # OTP 25: linking to a process that no longer exists raises :noproc (when not trapping).
  defp exec({:link, i}, st) do
    try do
      true = Lockstep.link(pid_at(st, i))
    rescue
      e in ErlangError -> if e.original == :noproc, do: :noproc, else: reraise(e, __STACKTRACE__)
    end

    st
  end

  defp exec({:unlink, i}, st) do
    true = Lockstep.unlink(pid_at(st, i))
    st
  end

  defp exec({:monitor, i}, st) do
    ref = Lockstep.monitor(pid_at(st, i))
    true = is_reference(ref)
    %{st | refs: st.refs ++ [ref]}
  end

  defp exec({:demonitor, i, opts}, st) do
    ref = if st.refs == [], do: make_ref(), else: Enum.at(st.refs, rem(i, length(st.refs)))
    true = Lockstep.demonitor(ref, opts)
    st
  end

  defp exec({:trap_exit, on?}, st) do
    true = is_boolean(Lockstep.flag(:trap_exit, on?))
    st
  end

  defp exec({:exit, i, reason}, st) do
    true = Lockstep.exit(pid_at(st, i), reason)
    st
  end

  defp exec({:alive, i}, st) do
    true = is_boolean(Lockstep.alive?(pid_at(st, i)))
    st
  end

  defp exec({:register, name, i}, st) do
    true = Lockstep.register(name, pid_at(st, i))
    st
  end

  defp exec({:whereis, name}, st), do: learn(st, Lockstep.whereis(name))

  defp exec({:unregister, name}, st) do
    true = Lockstep.unregister(name)
    st
  end

  defp exec(:registered, st) do
    true = Enum.all?(Lockstep.registered(), &is_atom/1)
    st
  end

  defp exec(:now, st) do
    true = is_integer(Lockstep.now())
    st
  end

  defp exec({:sleep, ms}, st) do
    :ok = Lockstep.sleep(ms)
    st
  end

  defp exec({:send_after, dest, ms}, st) do
    dest =
      case dest do
        {:pid, i} -> pid_at(st, i)
        {:name, name} -> name
      end

    ref = Lockstep.send_after(dest, {:tick, ms}, ms)
    true = is_reference(ref)
    %{st | timers: st.timers ++ [ref]}
  end

  defp exec({:cancel_timer, i}, st) do
    ref = if st.timers == [], do: make_ref(), else: Enum.at(st.timers, rem(i, length(st.timers)))

    left = Lockstep.cancel_timer(ref)
    true = left == false or (is_integer(left) and left >= 0)
    st
  end

  # Cluster ------------------------------------------------------------------------------

  defp exec({:start_nodes, nodes}, st) do
    ^nodes = Cluster.start_nodes(nodes)
    st
  end

  defp exec({:start_node, node}, st) do
    :ok = Cluster.start_node(node)
    st
  end

  defp exec({:stop_node, node}, st) do
    :ok = Cluster.stop_node(node)
    st
  end

  defp exec({:partition, a, b, mode}, st) do
    all = [:nonode@nohost | @nodes]
    x = Enum.at(all, rem(a, length(all)))
    y = Enum.at(all, rem(b + 1, length(all)))
    :ok = Cluster.partition([x], Enum.uniq([y | Enum.take(@nodes, rem(b, 2))]) -- [x], mode)
    st
  end

  defp exec(:heal, st) do
    :ok = Cluster.heal()
    st
  end

  defp exec({:monitor_node, node}, st) do
    true = Cluster.monitor_node(node)
    st
  end

  defp exec({:set_ticktime, ms}, st) do
    :ok = Cluster.set_ticktime(ms)
    st
  end

  defp exec({:node_of, i}, st) do
    true = is_atom(Cluster.node_of(pid_at(st, i)))
    st
  end

  defp exec(:nodes, st) do
    true = is_atom(Lockstep.node())
    true = is_list(Cluster.nodes())
    true = is_list(Cluster.nodes_up())
    st
  end

  defp exec(:global_names, st) do
    true = is_list(Global.registered_names())
    st
  end

  defp exec({:global_register, name, i}, st) do
    true = Global.register_name(name, pid_at(st, i)) in [:yes, :no]
    st
  end

  defp exec({:global_whereis, name}, st) do
    case Global.whereis_name(name) do
      :undefined -> st
      pid when is_pid(pid) -> learn(st, pid)
    end
  end

  defp exec({:global_unregister, name}, st) do
    :ok = Global.unregister_name(name)
    st
  end

  defp exec({:global_send, name, m}, st) do
    try do
      true = is_pid(Global.send(name, payload(st, m)))
    catch
      :exit, {:badarg, {^name, _}} -> :ok
    end

    st
  end
end
