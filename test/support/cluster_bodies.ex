defmodule Lockstep.ClusterBodies do
  @moduledoc false
  # Distributed programs for the simulated-cluster tests and docs/guide-distributed.md.

  defmodule Failover do
    @moduledoc false
    # A primary on node :a and a standby on node :b. The primary acts as leader and sends
    # the standby a heartbeat every @beat ms (virtual time). Each node reports every
    # leader action to the root as {:acting, node, at}; the root checks that the primary
    # never acts as leader once the standby has taken over (one leader at a time).
    #
    # :naive  — the standby takes over after @standby_timeout ms without a heartbeat; the
    #           primary never steps down. Under a partition both lead: split brain.
    # :nodedown — like :naive, but the standby waits for {:nodedown, :a} from
    #           Cluster.monitor_node/1 instead of timing heartbeats out: it takes over
    #           net_ticktime after the cut.
    # :lease  — the standby acknowledges each heartbeat; the primary leads only while it
    #           holds a lease that ends @lease ms after the send time of the last
    #           acknowledged heartbeat. The standby waits @standby_timeout > @lease after
    #           the last heartbeat it saw, so the primary's lease has always expired
    #           before the standby takes over.

    require Lockstep
    import ExUnit.Assertions
    alias Lockstep.Cluster

    @beat 100
    @lease 250
    @standby_timeout 300
    @horizon 1_000

    @doc """
    The root of one iteration. `opts`: `:partition` (true) cuts :a from :b at a time the
    strategy picks (Lockstep.random/1) and heals it 400 ms later.
    """
    def test_body(variant, opts \\ []) when variant in [:naive, :nodedown, :lease] do
      fn ->
        [:a, :b] = Cluster.start_nodes([:a, :b])
        # How long a cut goes unnoticed by monitors (only :nodedown relies on it).
        :ok = Cluster.set_ticktime(200)
        root = self()

        standby = Cluster.spawn(:b, fn -> standby(variant, root) end)
        Cluster.spawn(:a, fn -> primary(variant, standby, root) end)

        if Keyword.get(opts, :partition, true) do
          # Cut somewhere between 50 and 450 ms, for 400 ms.
          Lockstep.sleep(50 + 100 * Lockstep.random(5))
          Cluster.partition([:a], [:b])
          Lockstep.sleep(400)
          Cluster.heal()
        end

        collect(MapSet.new([:a, :b]), [], [])
      end
    end

    # Receives reports until both nodes said :done (per-sender order is kept, so a node's
    # :done comes after all its :acting reports) and checks, at every report, that the
    # standby never led before the primary's last leader action. Returns the times at
    # which each node acted as leader.
    defp collect(running, a, b) do
      if a != [] and b != [] do
        assert Enum.max(a) < Enum.min(b),
               "two leaders: :b has led since #{Enum.min(b)} ms and :a still acted as " <>
                 "leader at #{Enum.max(a)} ms"
      end

      if MapSet.size(running) == 0 do
        {Enum.reverse(a), Enum.reverse(b)}
      else
        case Lockstep.recv() do
          {:done, node} -> collect(MapSet.delete(running, node), a, b)
          {:acting, :a, t} -> collect(running, [t | a], b)
          {:acting, :b, t} -> collect(running, a, [t | b])
        end
      end
    end

    # Primary ---------------------------------------------------------------------------

    defp primary(:naive, standby, root), do: naive_primary(standby, root)
    defp primary(:nodedown, standby, root), do: naive_primary(standby, root)
    defp primary(:lease, standby, root), do: lease_primary(standby, root, @lease)

    defp naive_primary(standby, root) do
      now = Lockstep.now()

      if now >= @horizon do
        Lockstep.send(root, {:done, :a})
      else
        Lockstep.send(root, {:acting, :a, now})
        Lockstep.send(standby, {:heartbeat, self(), now})
        Lockstep.sleep(@beat)
        naive_primary(standby, root)
      end
    end

    defp lease_primary(standby, root, lease_until) do
      now = Lockstep.now()

      if now >= @horizon do
        Lockstep.send(root, {:done, :a})
      else
        # Lead only while the lease holds.
        if now < lease_until do
          Lockstep.send(root, {:acting, :a, now})
          Lockstep.send(standby, {:heartbeat, self(), now})
        end

        Lockstep.sleep(@beat)
        lease_primary(standby, root, renew(lease_until))
      end
    end

    # A lease counts from when the acknowledged heartbeat was *sent*: the standby saw it
    # later than that, so its promise not to take over lasts at least as long.
    defp renew(lease_until) do
      Lockstep.receive do
        {:ack, sent_at} -> renew(max(lease_until, sent_at + @lease))
      after
        0 -> lease_until
      end
    end

    # Standby ---------------------------------------------------------------------------

    defp standby(:nodedown, root) do
      true = Cluster.monitor_node(:a)

      Lockstep.receive do
        {:nodedown, :a} -> lead(root)
      end
    end

    defp standby(variant, root) do
      Lockstep.receive do
        {:heartbeat, primary, sent_at} ->
          if variant == :lease, do: Lockstep.send(primary, {:ack, sent_at})
          standby(variant, root)
      after
        @standby_timeout -> lead(root)
      end
    end

    defp lead(root) do
      now = Lockstep.now()

      if now >= @horizon do
        Lockstep.send(root, {:done, :b})
      else
        Lockstep.send(root, {:acting, :b, now})
        Lockstep.sleep(@beat)
        lead(root)
      end
    end
  end
end
