defmodule Lockstep.Search do
  @moduledoc false
  # The search behind `Lockstep.run/2`: iterations 1..n in order, or (SPEC §11) with
  # `workers: w` and `nodes: [...]` W = w × (1 + length(nodes)) independent searches at
  # once, worker k taking iterations k, k+W, k+2W, … with its own strategy state, on this
  # VM's schedulers and on the connected nodes.
  #
  # Every iteration keeps the seed it has in the sequential run. Workers share only the
  # lowest failing iteration so far (`stop`): a worker stops before an iteration at or past
  # it. A worker's iterations below the lowest failing one therefore all run, in order,
  # whatever the others do, so the reported bug — the lowest failing iteration — is the same
  # for a given seed and worker count, however the workers were scheduled and however late
  # the news of a failure reached them.
  #
  # On a remote node an agent process holds that node's copy of `stop`, starts the node's
  # workers and forwards their results; the caller relays every failure to every agent. A
  # node lost mid-run is reported in the summary and its workers' shares are re-run here.

  alias Lockstep.{Iteration, Session}

  @doc """
  Runs the search. Returns `{outcome, stats, per_worker, lost_nodes}`, `outcome` being
  `:ok`, `{:failed, iteration, iter_seed, result}` or `{:internal_error, iteration, reason}`.
  """
  def run(fun, %{workers: 1, nodes: []} = cfg, cell) do
    {outcome, stats} = loop(fun, cfg, cell, 1, 1, new_stats(), nil)
    {lowest_failure([outcome]), stats, [], []}
  end

  def run(fun, %{strategy: :exhaustive} = cfg, _cell), do: run_exhaustive(fun, cfg)

  def run(fun, cfg, _cell) do
    Enum.each(cfg.nodes, &check_node!(&1, fun))
    hosts = [node() | cfg.nodes]
    total = cfg.workers * length(hosts)
    spec = Lockstep.Runner.strategy_spec(cfg)
    shared = new_shared(cfg)
    reply = make_ref()
    plan = for w <- 1..total, do: {w, Enum.at(hosts, rem(w - 1, length(hosts)))}

    workers =
      plan
      |> Enum.filter(fn {_w, host} -> host == node() end)
      |> Map.new(fn {w, _} -> {w, start_local(fun, cfg, spec, w, total, shared, reply)} end)

    agents =
      for host <- cfg.nodes, into: %{} do
        ws = for {w, ^host} <- plan, do: w
        {host, start_agent(host, fun, cfg, spec, ws, total, reply)}
      end

    state = %{
      workers: workers,
      agents: agents,
      pending: MapSet.new(1..total),
      results: %{},
      lost: [],
      ctx: {fun, cfg, spec, total, shared, reply}
    }

    state = await(state)
    n = total

    per_worker =
      for w <- 1..n do
        {_outcome, stats} = state.results[w]
        %{worker: w, iterations: stats.iterations, steps: stats.steps}
      end

    outcomes = for w <- 1..n, do: elem(state.results[w], 0)
    stats = Enum.reduce(1..n, new_stats(), &merge_stats(&2, elem(state.results[&1], 1)))
    {lowest_failure(outcomes), stats, per_worker, Enum.reverse(state.lost)}
  end

  # A node of `nodes:` must have Lockstep and the body's module loaded, the same code.
  defp check_node!(host, fun) do
    module = Function.info(fun)[:module]

    for mod <- [__MODULE__, module] do
      case :erpc.call(host, :code, :ensure_loaded, [mod], 10_000) do
        {:module, ^mod} ->
          :ok

        _ ->
          raise ArgumentError,
                "invalid value for option :nodes: #{inspect(host)} cannot load #{inspect(mod)}; " <>
                  "every node of :nodes must run the same code as this one (Lockstep and the " <>
                  "test body's module, on its code path)"
      end
    end
  catch
    :error, {:erpc, reason} ->
      raise ArgumentError,
            "invalid value for option :nodes: #{inspect(host)} does not answer (#{inspect(reason)})"
  end

  # Workers on this node -------------------------------------------------------------------

  defp start_local(fun, cfg, spec, w, total, shared, reply) do
    caller = self()
    scheduler = rem(div(w - 1, length([node() | cfg.nodes])), System.schedulers_online()) + 1

    # Bound to its own scheduler, and its iterations' processes with it (see
    # `Lockstep.Runtime.spawn_root/3`); linked so that none outlives the caller.
    spawn_bound(scheduler, fn ->
      Kernel.send(caller, {reply, w, worker(fun, cfg, spec, w, total, shared, caller, reply)})
    end)
  end

  defp spawn_bound(scheduler, fun) do
    :erlang.spawn_opt(fun, [:link, :monitor, {:scheduler, scheduler}])
  rescue
    ArgumentError -> :erlang.spawn_opt(fun, [:link, :monitor])
  end

  defp worker(fun, cfg, spec, w, total, shared, caller, reply) do
    Lockstep.Janitor.with_janitor(fn -> work(fun, cfg, spec, w, total, shared, caller, reply) end)
  catch
    kind, reason -> {:raised, kind, reason, __STACKTRACE__}
  end

  defp work(fun, cfg, spec, w, total, shared, caller, reply) do
    cell = Session.strategy(spec)

    {outcome, stats} =
      loop(
        fun,
        cfg,
        cell,
        w,
        total,
        new_stats(),
        {shared, fn i -> Kernel.send(caller, {reply, :failed_at, i}) end}
      )

    {strip(outcome), stats}
  end

  # A result that crosses nodes carries no session resource.
  defp strip({:failed, i, seed, result}), do: {:failed, i, seed, Map.delete(result, :session)}
  defp strip(outcome), do: outcome

  # Agents on other nodes ------------------------------------------------------------------

  defp start_agent(host, fun, cfg, spec, ws, total, reply) do
    caller = self()

    {pid, monitor} =
      :erlang.spawn_opt(host, __MODULE__, :agent, [caller, reply, fun, cfg, spec, ws, total], [
        :monitor
      ])

    {pid, monitor, ws}
  end

  @doc false
  # Runs on the remote node: starts that node's workers, keeps its `stop`, forwards.
  def agent(caller, reply, fun, cfg, spec, ws, total) do
    Process.flag(:trap_exit, true)
    # this node runs the same instrumented code as the caller's
    Lockstep.Instrument.instrument!(cfg.instrument)
    shared = new_shared(cfg)
    local_reply = make_ref()
    me = self()
    hosts = length([node() | cfg.nodes])

    pids =
      for w <- ws do
        scheduler = rem(div(w - 1, hosts), System.schedulers_online()) + 1

        spawn_bound(scheduler, fn ->
          Kernel.send(
            me,
            {local_reply, w, worker(fun, cfg, spec, w, total, shared, me, local_reply)}
          )
        end)
      end

    agent_loop(caller, reply, local_reply, shared, MapSet.new(ws), pids)
  end

  defp agent_loop(caller, reply, local, shared, pending, pids) do
    if MapSet.size(pending) == 0 do
      Enum.each(pids, fn {_pid, monitor} -> Process.demonitor(monitor, [:flush]) end)
    else
      agent_receive(caller, reply, local, shared, pending, pids)
    end
  end

  defp agent_receive(caller, reply, local, shared, pending, pids) do
    receive do
      {^local, :failed_at, i} ->
        lower_stop(shared, i)
        Kernel.send(caller, {reply, :failed_at, i})
        agent_loop(caller, reply, local, shared, pending, pids)

      {^reply, :stop_at, i} ->
        lower_stop(shared, i)
        agent_loop(caller, reply, local, shared, pending, pids)

      {^local, w, result} ->
        Kernel.send(caller, {reply, w, result})
        agent_loop(caller, reply, local, shared, MapSet.delete(pending, w), pids)

      {:EXIT, _pid, _reason} ->
        agent_loop(caller, reply, local, shared, pending, pids)

      {:DOWN, _monitor, :process, _pid, :normal} ->
        agent_loop(caller, reply, local, shared, pending, pids)

      {:DOWN, _monitor, :process, _pid, reason} ->
        exit({:lockstep_worker_died, reason})
    end
  end

  # The caller's side ----------------------------------------------------------------------

  defp await(state) do
    if MapSet.size(state.pending) == 0, do: state, else: await_next(state)
  end

  defp await_next(state) do
    {_fun, _cfg, _spec, _total, shared, reply} = state.ctx

    receive do
      {^reply, :failed_at, i} ->
        lower_stop(shared, i)

        for {_host, {pid, _monitor, _ws}} <- state.agents,
            do: Kernel.send(pid, {reply, :stop_at, i})

        await(state)

      {^reply, _w, {:raised, kind, reason, stack}} ->
        stop_all(state)
        :erlang.raise(kind, reason, stack)

      {^reply, w, result} ->
        state =
          case Map.pop(state.workers, w) do
            {{pid, monitor}, workers} ->
              release(pid, monitor)
              %{state | workers: workers}

            {nil, _} ->
              state
          end

        await(%{
          state
          | pending: MapSet.delete(state.pending, w),
            results: Map.put(state.results, w, result)
        })

      {:DOWN, monitor, :process, _pid, reason} ->
        await(down(state, monitor, reason))
    after
      250 ->
        Lockstep.Progress.tick(done_so_far(shared), %{workers: MapSet.size(state.pending)})
        await(state)
    end
  end

  defp down(state, monitor, reason) do
    case Enum.find(state.agents, fn {_host, {_pid, m, _ws}} -> m == monitor end) do
      {host, {_pid, _m, ws}} ->
        case Enum.filter(ws, &MapSet.member?(state.pending, &1)) do
          [] -> %{state | agents: Map.delete(state.agents, host)}
          redo -> lost(state, host, redo, reason)
        end

      nil ->
        if reason != :normal and Enum.any?(state.workers, fn {_w, {_p, m}} -> m == monitor end) do
          stop_all(state)
          exit({:lockstep_worker_died, reason})
        else
          state
        end
    end
  end

  # A node lost mid-run (or whose agent died): its workers' shares are re-run here, from
  # their start, so the search covers the same iterations as if it had not been lost.
  defp lost(state, host, redo, reason) do
    {fun, cfg, spec, total, shared, reply} = state.ctx

    workers =
      Enum.reduce(redo, state.workers, fn w, acc ->
        Map.put(acc, w, start_local(fun, cfg, spec, w, total, shared, reply))
      end)

    IO.warn(
      "Lockstep: node #{inspect(host)} was lost during the run (#{inspect(reason)}); its " <>
        "share of the search (workers #{Enum.join(redo, ", ")}) is re-run on #{inspect(node())}",
      []
    )

    %{state | agents: Map.delete(state.agents, host), workers: workers, lost: [host | state.lost]}
  end

  # No worker (and so no managed process: each worker owns its iterations' sessions) may
  # outlive the run, also when it raises.
  defp stop_all(state) do
    for {_w, {pid, monitor}} <- state.workers do
      Process.unlink(pid)
      Process.exit(pid, :kill)

      receive do
        {:DOWN, ^monitor, :process, _, _} -> :ok
      end

      flush_exit(pid)
    end

    for {_host, {pid, _monitor, _ws}} <- state.agents, do: Process.exit(pid, :kill)
    :ok
  end

  # A worker is linked to the caller so that none outlives it; once done with, its link
  # must leave nothing behind in a caller that traps exits (a test of a supervisor, say).
  defp release(pid, monitor) do
    Process.demonitor(monitor, [:flush])
    Process.unlink(pid)
    flush_exit(pid)
  end

  # An `{:EXIT, pid, _}` the link may have queued before it was removed.
  defp flush_exit(pid) do
    receive do
      {:EXIT, ^pid, _} -> :ok
    after
      0 -> :ok
    end
  end

  # An exhaustive search on several workers --------------------------------------------------
  #
  # One search tree, in the NIF (`lockstep_core::strategy::ParallelSearch`): its master
  # decides every interleaving in the sequential search's order, and the workers run, each
  # in its own sessions, the executions it will ask for, ahead of time; the master takes
  # each in its turn (see `strategy/exhaustive_parallel.rs`). So the interleavings, their
  # count and the failing one reported — the first in that order, by its iteration number
  # there — are those of `workers: 1`. A worker keeps its failing results until the search
  # says which one stopped it.

  # Another worker's iteration ends within about one iteration's time (tens of
  # microseconds): poll for it first, then sleep until woken. Waking a sleeping scheduler
  # can take milliseconds (on a virtual machine, an idle CPU may wait for a timer tick),
  # far longer than the wait itself.
  @spin_polls 500

  defp run_exhaustive(fun, cfg) do
    spec = Lockstep.Runner.strategy_spec(cfg)
    search = Session.exhaustive_parallel(spec, cfg.workers, cfg.iterations)
    seed = iteration_seed(cfg, 1)
    reply = make_ref()
    caller = self()

    workers =
      Map.new(1..cfg.workers, fn w ->
        scheduler = rem(w - 1, System.schedulers_online()) + 1

        pid_monitor =
          spawn_bound(scheduler, fn ->
            Kernel.send(caller, {reply, w, exhaustive_worker(fun, cfg, spec, search, seed)})
          end)

        {w, pid_monitor}
      end)

    results = await_exhaustive(workers, reply, search, %{})
    status = Session.exhaustive_status(search)

    per_worker =
      for w <- 1..cfg.workers do
        {runs, _failures} = results[w]
        %{worker: w, iterations: map_size(runs), steps: Enum.sum(for {_, r} <- runs, do: r.steps)}
      end

    # What the summary counts is the search's: the interleavings it took in, in its order
    # (their position there is their iteration number), not the runs made ahead that it
    # never needed or threw away.
    runs = Enum.reduce(results, %{}, fn {_w, {runs, _}}, acc -> Map.merge(acc, runs) end)

    stats =
      status.order
      |> Enum.with_index(1)
      |> Enum.reduce(new_stats(), fn {ticket, i}, stats -> account_run(stats, i, runs[ticket]) end)

    stats = %{stats | search: Map.delete(status, :order)}
    {exhaustive_outcome(status.stop, results, seed), stats, per_worker, []}
  end

  defp account_run(stats, _i, nil), do: stats

  defp account_run(stats, i, run) do
    %{
      stats
      | iterations: stats.iterations + 1,
        steps: stats.steps + run.steps,
        switches: stats.switches + run.switches,
        fingerprints: MapSet.put(stats.fingerprints, run.fingerprint),
        max_steps_hit: stats.max_steps_hit + if(run.max_steps, do: 1, else: 0)
    }
    |> note_uncontrolled(i, run.uncontrolled)
  end

  defp exhaustive_outcome({:failed, ticket, iteration}, results, seed) do
    result = Enum.find_value(results, fn {_w, {_runs, failures}} -> Map.get(failures, ticket) end)

    case result do
      %{kind: :internal_error, reason: reason} ->
        {:internal_error, iteration, reason}

      %{} ->
        {:failed, iteration, seed, result}

      # Its strategy never saw the end of that iteration, and it was not a failure.
      nil ->
        {:internal_error, iteration,
         "the exhaustive search lost its state in iteration #{iteration}"}
    end
  end

  defp exhaustive_outcome(_stop, _results, _seed), do: :ok

  defp exhaustive_worker(fun, cfg, spec, search, seed) do
    Lockstep.Janitor.with_janitor(fn ->
      # The cell each iteration's follower is put in (the spec's strategy is not used).
      cell = Session.strategy(spec)
      exhaustive_loop(fun, cfg, search, cell, seed, %{}, %{})
    end)
  catch
    kind, reason -> {:raised, kind, reason, __STACKTRACE__}
  end

  # `runs`: what each iteration this worker ran showed the summary, by ticket (only those
  # the search takes in are counted); `failures`: the failing results, by ticket.
  defp exhaustive_loop(fun, cfg, search, cell, seed, runs, failures) do
    generation = Session.exhaustive_generation(search)

    case Session.exhaustive_take(search, cell) do
      {:run, ticket} ->
        result = Iteration.run(cell, fun, seed, cfg, false)
        failed = failure?(result, cfg)
        m = result.metrics

        run = %{
          steps: m.steps,
          switches: m.context_switches,
          fingerprint: m.fingerprint,
          max_steps: result.kind == :max_steps,
          uncontrolled: result.uncontrolled
        }

        failures = if failed, do: Map.put(failures, ticket, result), else: failures
        Session.exhaustive_complete(search, ticket, failed)
        exhaustive_loop(fun, cfg, search, cell, seed, Map.put(runs, ticket, run), failures)

      :wait ->
        await_work(search, generation, @spin_polls)
        exhaustive_loop(fun, cfg, search, cell, seed, runs, failures)

      :stopped ->
        {runs, failures}
    end
  end

  defp await_work(_search, _generation, 0) do
    receive do
      {:lockstep_exhaustive, :wake} -> drain_wakes()
    after
      # Only a guard against a lost wake-up.
      100 -> :ok
    end
  end

  defp await_work(search, generation, polls) do
    if Session.exhaustive_generation(search) == generation do
      :erlang.yield()
      await_work(search, generation, polls - 1)
    else
      # The wake-up this worker was registered for came already (it is sent before the
      # count moves): a message left in the worker's mailbox would be scanned by every
      # receive of its iterations.
      drain_wakes()
    end
  end

  defp drain_wakes do
    receive do
      {:lockstep_exhaustive, :wake} -> drain_wakes()
    after
      0 -> :ok
    end
  end

  defp await_exhaustive(workers, _reply, _search, results) when map_size(workers) == 0,
    do: results

  defp await_exhaustive(workers, reply, search, results) do
    monitors = Map.new(workers, fn {w, {_pid, monitor}} -> {monitor, w} end)

    receive do
      # The worker that raised too: stop_all/1 unlinks it and flushes its exit.
      {^reply, _w, {:raised, kind, reason, stack}} ->
        stop_all(%{workers: workers, agents: %{}})
        :erlang.raise(kind, reason, stack)

      {^reply, w, result} ->
        {{pid, monitor}, rest} = Map.pop(workers, w)
        release(pid, monitor)
        await_exhaustive(rest, reply, search, Map.put(results, w, result))

      # A worker's monitor only: the caller may hold monitors of its own.
      {:DOWN, monitor, :process, _pid, reason} when is_map_key(monitors, monitor) ->
        stop_all(%{workers: workers, agents: %{}})
        exit({:lockstep_worker_died, reason})
    after
      250 ->
        status = Session.exhaustive_status(search)
        Lockstep.Progress.tick(status.explored, %{search: status, workers: map_size(workers)})
        await_exhaustive(workers, reply, search, results)
    end
  end

  # The iteration loop ----------------------------------------------------------------------

  defp new_stats do
    %{
      iterations: 0,
      steps: 0,
      max_steps_hit: 0,
      fingerprints: MapSet.new(),
      switches: 0,
      uncontrolled: [],
      search: nil
    }
  end

  # What escaped control (SPEC §9): the first iteration each distinct finding was seen in,
  # at most @uncontrolled_kept of them, so a run that meets it every iteration pays nothing
  # more.
  @uncontrolled_kept 10

  defp note_uncontrolled(stats, _i, []), do: stats

  defp note_uncontrolled(%{uncontrolled: kept} = stats, i, found) do
    new =
      for {name, report} <- found,
          not Enum.any?(kept, &(&1.process == name and same_report?(&1, report))),
          do: Map.merge(report, %{iteration: i, process: name})

    %{stats | uncontrolled: Enum.take(kept ++ Enum.uniq(new), @uncontrolled_kept)}
  end

  # Pids differ from one iteration to the next; what was found and where does not.
  defp same_report?(kept, report) do
    kept.messages == report.messages and
      Enum.map(kept.started, &{&1.call, &1.location}) ==
        Enum.map(report.started, &{&1.call, &1.location})
  end

  defp new_shared(cfg) do
    stop = :atomics.new(1, signed: false)
    :atomics.put(stop, 1, cfg.iterations + 1)
    {stop, :counters.new(1, [:write_concurrency])}
  end

  # Iterations i, i + stride, i + 2·stride, … up to `:iterations`, or until one fails or
  # `shared` says a lower one has.
  defp loop(_fun, %{iterations: n}, _cell, i, _stride, stats, _shared) when i > n,
    do: {:ok, stats}

  defp loop(fun, cfg, cell, i, stride, stats, shared) do
    if stopped?(shared, i) do
      {:ok, stats}
    else
      iter_seed = iteration_seed(cfg, i)
      result = Iteration.run(cell, fun, iter_seed, cfg, false)
      stats = stats |> account(result) |> note_uncontrolled(i, result.uncontrolled)
      count_done(shared)
      Lockstep.Progress.tick(i, stats)

      case result.kind do
        # An exhaustive search has explored its whole tree: nothing is left to run (a last
        # interleaving cut by :max_steps is a failure under fail_on_max_steps: true).
        _
        when stats.search != nil and stats.search.exhausted and
               (result.kind == :pass or
                  (result.kind == :max_steps and not cfg.fail_on_max_steps)) ->
          max_hit = if result.kind == :max_steps, do: 1, else: 0
          {:ok, %{stats | max_steps_hit: stats.max_steps_hit + max_hit}}

        :pass ->
          loop(fun, cfg, cell, i + stride, stride, stats, shared)

        :internal_error ->
          failed_at(shared, i)
          {{:internal_error, i, result.reason, nil}, stats}

        :max_steps when not cfg.fail_on_max_steps ->
          stats = %{stats | max_steps_hit: stats.max_steps_hit + 1}
          loop(fun, cfg, cell, i + stride, stride, stats, shared)

        _failure ->
          failed_at(shared, i)
          {{:failed, i, iter_seed, result}, stats}
      end
    end
  end

  # An exhaustive search re-runs one program: every iteration gets the same seed (the
  # `:rand` states of its processes are the same in each), so that a prefix replayed is
  # the same execution, and so that the iterations of `workers: n` are the sequential
  # search's.
  defp iteration_seed(%{strategy: :exhaustive, seed: seed}, _i),
    do: Session.iteration_seed(seed, 1)

  defp iteration_seed(cfg, i), do: Session.iteration_seed(cfg.seed, i)

  defp failure?(%{kind: :pass}, _cfg), do: false
  defp failure?(%{kind: :max_steps}, cfg), do: cfg.fail_on_max_steps
  defp failure?(_result, _cfg), do: true

  defp account(stats, %{metrics: m}) do
    %{
      stats
      | iterations: stats.iterations + 1,
        steps: stats.steps + m.steps,
        switches: stats.switches + m.context_switches,
        fingerprints: MapSet.put(stats.fingerprints, m.fingerprint),
        search: m.search
    }
  end

  defp merge_stats(a, b) do
    %{
      iterations: a.iterations + b.iterations,
      steps: a.steps + b.steps,
      max_steps_hit: a.max_steps_hit + b.max_steps_hit,
      fingerprints: MapSet.union(a.fingerprints, b.fingerprints),
      switches: a.switches + b.switches,
      search: nil,
      # Each worker kept its own first sightings: a finding two workers met is kept once,
      # at its lowest iteration, as the sequential run keeps it.
      uncontrolled:
        (a.uncontrolled ++ b.uncontrolled)
        |> Enum.sort_by(& &1.iteration)
        |> Enum.reduce([], fn finding, kept ->
          if Enum.any?(kept, &(&1.process == finding.process and same_report?(&1, finding))),
            do: kept,
            else: [finding | kept]
        end)
        |> Enum.reverse()
        |> Enum.take(@uncontrolled_kept)
    }
  end

  defp lowest_failure(outcomes) do
    failures = for {kind, i, _, _} = f <- outcomes, kind in [:failed, :internal_error], do: {i, f}

    case Enum.min_by(failures, &elem(&1, 0), fn -> nil end) do
      nil -> :ok
      {_i, {:internal_error, i, reason, _}} -> {:internal_error, i, reason}
      {_i, failed} -> failed
    end
  end

  defp failed_at(nil, _i), do: :ok

  defp failed_at({shared, tell}, i) do
    lower_stop(shared, i)
    tell.(i)
  end

  defp lower_stop({stop, _done}, i) do
    current = :atomics.get(stop, 1)

    if i < current and :atomics.compare_exchange(stop, 1, current, i) != :ok do
      lower_stop({stop, nil}, i)
    else
      :ok
    end
  end

  defp stopped?(nil, _i), do: false
  defp stopped?({{stop, _done}, _tell}, i), do: i >= :atomics.get(stop, 1)

  defp count_done(nil), do: :ok
  defp count_done({{_stop, done}, _tell}), do: :counters.add(done, 1, 1)

  defp done_so_far({_stop, done}), do: :counters.get(done, 1)
end
