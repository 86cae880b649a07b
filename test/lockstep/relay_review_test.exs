defmodule Lockstep.RelayReviewTest do
  # An adversarial review of relayed hops (the NIF's `relay.rs`): programs in which a lease
  # is granted and then something unusual happens. Each runs with leases on and off
  # (switched VM-wide, so this module is not async) and must come out the same: the
  # summary's schedules, the observations it sends out, a bug's report and schedule.
  use ExUnit.Case, async: false

  require Lockstep
  alias Lockstep.{BugFound, Cluster, Session}

  @moduletag timeout: 300_000

  setup do
    on_exit(fn -> Session.relay_enabled_for_test(true) end)

    dir =
      Path.join(System.tmp_dir!(), "lockstep-relay-review-#{System.unique_integer([:positive])}")

    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, dir: dir}
  end

  # Runs `make.(log)` under `Lockstep.check/2` with leases on, then off; returns both
  # results normalised, the observations sent to `log` and the hops relayed.
  defp with_relay(on?, fun) do
    previous = Session.relay_enabled_for_test(on?)

    try do
      before = Session.relayed_hops()
      result = fun.()
      {result, Session.relayed_hops() - before}
    after
      Session.relay_enabled_for_test(previous)
    end
  end

  defp observations(acc \\ []) do
    receive do
      {:obs, o} -> observations([o | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  # Both ways, compared; returns `{normalised result, relayed hops with leases on}`.
  defp compare(make, opts) do
    log = self()
    {on, relayed} = with_relay(true, fn -> Lockstep.check(make.(log), opts) end)
    obs_on = observations()
    {off, none} = with_relay(false, fn -> Lockstep.check(make.(log), opts) end)
    obs_off = observations()
    assert none == 0
    assert obs_on == obs_off
    assert_same(normalise(on), normalise(off))
    refute_diverged(on)
    {on, relayed}
  end

  # Results compared; a report that differs is shown as the lines that differ.
  defp assert_same(same, same), do: :ok

  defp assert_same(on, off) do
    text = fn r -> r |> Tuple.to_list() |> List.last() |> to_string() |> String.split("\n") end

    diff =
      if is_binary(elem(on, tuple_size(on) - 1)) and is_binary(elem(off, tuple_size(off) - 1)),
        do:
          for(
            {kind, lines} <- List.myers_difference(text.(on), text.(off)),
            kind != :eq,
            do: {kind, lines}
          ),
        else: []

    flunk("""
    leases on and off differ
    on:  #{inspect(Tuple.delete_at(on, tuple_size(on) - 1), limit: 20)}
    off: #{inspect(Tuple.delete_at(off, tuple_size(off) - 1), limit: 20)}
    text differences: #{inspect(diff, limit: 40)}
    """)
  end

  @summary_keys [
    :iterations,
    :steps,
    :distinct_schedules,
    :context_switches,
    :outcomes,
    :max_steps_hit
  ]

  defp normalise({:ok, summary}), do: {:ok, Map.take(summary, @summary_keys)}

  defp normalise({:error, %BugFound{} = bug}) do
    {:bug, bug.kind, bug.iteration, bug.iter_seed, bug.fail_step, bug.schedule, length(bug.trace),
     mask(Exception.message(bug))}
  end

  defp normalise({:error, other}), do: {:error, other.__struct__, mask(Exception.message(other))}

  # pids, references and the trace file's name differ from run to run
  defp mask(text) do
    text
    |> String.replace(~r/#PID<[\d.]+>/, "#PID")
    |> String.replace(~r/#Reference<[\d.]+>/, "#Ref")
    |> String.replace(~r/\S*lockstep-relay-review-\S*/, "PATH")
    |> String.replace(~r/\S*\.(lockstep|svg)\b/, "PATH")
    |> String.replace(~r/\d+(\.\d+)? ?(ms|µs|s)\b/, "T")
  end

  defp refute_diverged({:error, %BugFound{} = bug}) do
    refute Exception.message(bug) =~ "diverge"
    refute Exception.message(bug) =~ "nondeterminism Lockstep does not control"
  end

  defp refute_diverged(_), do: :ok

  # The two halves of a ping-pong in the Lockstep API; `twist.(i)` runs in the echo
  # between taking ping `i` and answering it.
  defp echo(n, twist) when n > 0 do
    Lockstep.receive do
      {:ping, from, i} ->
        twist.(i)
        Lockstep.send(from, {:pong, i})
        echo(n - 1, twist)
    end
  end

  defp echo(0, _twist), do: :ok

  defp ping(peer, n), do: ping(peer, n, 0)

  defp ping(_peer, 0, acc), do: acc

  defp ping(peer, n, acc) do
    Lockstep.send(peer, {:ping, self(), n})

    Lockstep.receive do
      {:pong, i} -> ping(peer, n - 1, acc + i)
    end
  end

  # A ping-pong with a contested start (a side process racing the first pings), then a
  # forced stretch, the echo doing `twist` at each ping; the root reports the sum.
  defp twisted(twist, rounds \\ 40) do
    fn log ->
      fn ->
        me = self()
        peer = Lockstep.spawn(fn -> echo(rounds, twist) end)
        Lockstep.spawn(fn -> Lockstep.send(me, :side) end)
        # contested while the side process can run; forced once its message is taken
        early = ping(peer, 4)
        Lockstep.receive(do: (:side -> :ok))
        sum = early + ping(peer, rounds - 4)
        Kernel.send(log, {:obs, sum})
      end
    end
  end

  # A process that races the root's next steps, and its message taken: the schedules
  # differ a little from iteration to iteration, then the ping-pong is forced.
  defp contest(me) do
    Lockstep.spawn(fn -> Lockstep.send(me, :side) end)
    Lockstep.receive(do: (:side -> :ok))
  end

  @opts [iterations: 12, seed: 5]

  defp assert_relayed(relayed), do: assert(relayed > 0, "no hop was relayed")

  describe "the leased process does something other than the hop" do
    test "yield" do
      {_, relayed} = compare(twisted(fn _ -> Lockstep.yield() end), @opts)
      assert_relayed(relayed)
    end

    test "yield on some pings only, under every randomised strategy" do
      for strategy <- [:random, :pct, :pos, :fair_pct, :idpct] do
        twist = fn i -> if rem(i, 7) == 0, do: Lockstep.yield() end
        {_, relayed} = compare(twisted(twist), Keyword.put(@opts, :strategy, strategy))
        assert_relayed(relayed)
      end
    end

    test "spawn a process that sends to the echo's parent" do
      twist = fn i ->
        if rem(i, 5) == 0 do
          me = self()
          Lockstep.spawn(fn -> Lockstep.send(me, {:child, i}) end)
          Lockstep.receive(do: ({:child, ^i} -> :ok))
        end
      end

      {_, relayed} = compare(twisted(twist), @opts)
      assert_relayed(relayed)
    end

    test "ETS" do
      make = fn log ->
        fn ->
          table = Lockstep.ETS.new(:relay_review, [:public])

          twist = fn i ->
            if rem(i, 4) == 0, do: Lockstep.ETS.insert(table, {i, i})
          end

          me = self()
          peer = Lockstep.spawn(fn -> echo(40, twist) end)
          contest(me)
          sum = ping(peer, 40)
          Kernel.send(log, {:obs, {sum, Enum.sort(Lockstep.ETS.tab2list(table))}})
        end
      end

      {_, relayed} = compare(make, @opts)
      assert_relayed(relayed)
    end

    test "registered names: a send to a name, whereis, between hops" do
      make = fn log ->
        fn ->
          me = self()
          Lockstep.register(:relay_root, me)

          peer =
            Lockstep.spawn(fn ->
              Lockstep.register(:relay_echo, self())

              Enum.each(1..40, fn _ ->
                Lockstep.receive do
                  {:ping, i} ->
                    # every fifth answer goes to the root's name
                    if rem(i, 5) == 0,
                      do: Lockstep.send(:relay_root, {:pong, i}),
                      else: Lockstep.send(me, {:pong, i})
                end
              end)
            end)

          contest(me)

          sum =
            Enum.reduce(1..40, 0, fn i, acc ->
              if rem(i, 9) == 0, do: ^peer = Lockstep.whereis(:relay_echo)
              Lockstep.send(peer, {:ping, i})
              Lockstep.receive(do: ({:pong, ^i} -> acc + i))
            end)

          Kernel.send(log, {:obs, sum})
        end
      end

      {_, relayed} = compare(make, @opts)
      assert_relayed(relayed)
    end

    test "a send to itself before the answer" do
      twist = fn i ->
        Lockstep.send(self(), {:self, i})
        Lockstep.receive(do: ({:self, ^i} -> :ok))
      end

      {_, relayed} = compare(twisted(twist), @opts)
      # every ping is answered after a hop of the echo's own: nothing but the first
      # stretch is a forced ping-pong between two processes
      assert relayed >= 0
    end

    test "a send to a third process before the answer" do
      make = fn log ->
        fn ->
          me = self()

          collector =
            Lockstep.spawn(fn ->
              got = for _ <- 1..8, do: Lockstep.receive(do: ({:note, i} -> i))
              Lockstep.send(me, {:collected, got})
            end)

          twist = fn i -> if rem(i, 5) == 0, do: Lockstep.send(collector, {:note, i}) end
          peer = Lockstep.spawn(fn -> echo(40, twist) end)
          sum = ping(peer, 40)
          got = Lockstep.receive(do: ({:collected, got} -> got))
          Kernel.send(log, {:obs, {sum, got}})
        end
      end

      {_, relayed} = compare(make, @opts)
      assert_relayed(relayed)
    end

    test "a receive with `after` between taking the ping and answering it" do
      twist = fn i ->
        if rem(i, 3) == 0 do
          Lockstep.receive do
            :never -> :ok
          after
            5 -> :ok
          end
        end
      end

      {_, relayed} = compare(twisted(twist), @opts)
      assert_relayed(relayed)
    end

    test "a receive with `after` as the hop's own receive" do
      make = fn log ->
        fn ->
          me = self()
          peer = Lockstep.spawn(fn -> echo(40, fn _ -> :ok end) end)
          contest(me)

          sum =
            Enum.reduce(1..40, 0, fn i, acc ->
              Lockstep.send(peer, {:ping, me, i})

              Lockstep.receive do
                {:pong, ^i} -> acc + i
              after
                1_000 -> :timeout
              end
            end)

          Kernel.send(log, {:obs, sum})
        end
      end

      compare(make, @opts)
    end

    test "a selective receive that does not match the message handed over" do
      make = fn log ->
        fn ->
          me = self()

          peer =
            Lockstep.spawn(fn ->
              Enum.each(1..40, fn _ ->
                Lockstep.receive do
                  {:ping, i} when rem(i, 6) == 0 ->
                    # the pong first, which the root's receive for `:late` does not take
                    Lockstep.send(me, {:pong, i})
                    Lockstep.send(me, {:late, i})

                  {:ping, i} ->
                    Lockstep.send(me, {:pong, i})
                end
              end)
            end)

          contest(me)

          sum =
            Enum.reduce(1..40, 0, fn i, acc ->
              Lockstep.send(peer, {:ping, i})

              if rem(i, 6) == 0 do
                Lockstep.receive(do: ({:late, ^i} -> :ok))
              end

              Lockstep.receive(do: ({:pong, ^i} -> acc + i))
            end)

          Kernel.send(log, {:obs, sum})
        end
      end

      {_, relayed} = compare(make, @opts)
      assert_relayed(relayed)
    end

    test "recv/0 and recv_first/1 as the hop's receive" do
      make = fn log ->
        fn ->
          me = self()

          peer =
            Lockstep.spawn(fn ->
              Enum.each(1..40, fn _ ->
                {:ping, i} = Lockstep.recv()
                Lockstep.send(me, {:pong, i})
              end)
            end)

          contest(me)

          sum =
            Enum.reduce(1..40, 0, fn i, acc ->
              Lockstep.send(peer, {:ping, i})
              {:pong, ^i} = Lockstep.recv_first(&match?({:pong, _}, &1))
              acc + i
            end)

          Kernel.send(log, {:obs, sum})
        end
      end

      # both settle what the process brings before their receive (they are not the hot
      # path), so they never make a relayed hop: the same all the same
      {_, relayed} = compare(make, @opts)
      assert relayed >= 0
    end

    test "Lockstep.random between hops" do
      twist = fn i -> if rem(i, 4) == 0, do: Lockstep.random(3) end
      {_, relayed} = compare(twisted(twist), @opts)
      assert_relayed(relayed)
    end

    test "two sends to the peer before the receive" do
      make = fn log ->
        fn ->
          me = self()

          peer =
            Lockstep.spawn(fn ->
              Enum.each(1..40, fn _ ->
                Lockstep.receive do
                  {:ping, i} ->
                    Lockstep.send(me, {:pong, i})
                    if rem(i, 8) == 0, do: Lockstep.send(me, {:extra, i})
                end
              end)
            end)

          contest(me)

          sum =
            Enum.reduce(1..40, 0, fn i, acc ->
              Lockstep.send(peer, {:ping, i})
              acc = Lockstep.receive(do: ({:pong, ^i} -> acc + i))
              if rem(i, 8) == 0, do: Lockstep.receive(do: ({:extra, ^i} -> acc)), else: acc
            end)

          Kernel.send(log, {:obs, sum})
        end
      end

      {_, relayed} = compare(make, @opts)
      assert_relayed(relayed)
    end
  end

  defmodule Counter do
    @moduledoc false
    use Lockstep.GenServer

    def init(n), do: {:ok, n}
    def handle_call(:bump, _from, n), do: {:reply, n + 1, n + 1}
  end

  defmodule PlainCounter do
    @moduledoc false
    use GenServer

    def init(n), do: {:ok, n}
    def handle_call(:bump, _from, n), do: {:reply, n + 1, n + 1}
  end

  describe "after the root has returned, and servers" do
    test "a ping-pong that runs on after the root returned (the drain)" do
      make = fn log ->
        fn ->
          me = self()

          Lockstep.spawn(fn ->
            peer = Lockstep.spawn(fn -> echo(60, fn _ -> :ok end) end)
            Kernel.send(log, {:obs, ping(peer, 60)})
          end)

          contest(me)
        end
      end

      {_, relayed} = compare(make, @opts)
      assert_relayed(relayed)
    end

    test "blocked_at_end: :fail after a relayed drain: the same deadlock" do
      make = fn _log ->
        fn ->
          me = self()

          Lockstep.spawn(fn ->
            peer = Lockstep.spawn(fn -> echo(60, fn _ -> :ok end) end)
            ping(peer, 59)
          end)

          contest(me)
        end
      end

      {result, _relayed} = compare(make, Keyword.put(@opts, :blocked_at_end, :fail))
      assert {:error, %BugFound{kind: :deadlock}} = result
    end

    test "Lockstep.GenServer calls with an :infinity timeout" do
      make = fn log ->
        fn ->
          {:ok, server} = Lockstep.GenServer.start_link(Counter, 0)
          me = self()
          contest(me)

          last =
            Enum.reduce(1..40, 0, fn _, _ -> Lockstep.GenServer.call(server, :bump, :infinity) end)

          Kernel.send(log, {:obs, last})
        end
      end

      compare(make, @opts)
    end

    test "an instrumented GenServer.call with an :infinity timeout" do
      make = fn log ->
        fn ->
          {:ok, server} = GenServer.start_link(PlainCounter, 0)
          last = Enum.reduce(1..40, 0, fn _, _ -> GenServer.call(server, :bump, :infinity) end)
          Kernel.send(log, {:obs, last})
        end
      end

      compare(make, Keyword.merge(@opts, iterations: 4, instrument: [:otp]))
    end
  end

  describe "instrumented code" do
    for twist <- [:none, :after0, :yield, :time, :self_send, :rand] do
      test "a plain ping-pong whose echo does #{twist}" do
        twist = unquote(twist)

        make = fn log ->
          fn ->
            values = Lockstep.TestSupport.PlainPingPong.run(40, twist)
            Kernel.send(log, {:obs, values})
          end
        end

        opts = [iterations: 6, seed: 3, instrument: [Lockstep.TestSupport.PlainPingPong]]
        {_, relayed} = compare(make, opts)
        if twist in [:none, :time, :rand], do: assert_relayed(relayed)
      end
    end
  end

  describe "ends right after taking the message" do
    test "the echo exits normally right after taking its last ping" do
      make = fn log ->
        fn ->
          me = self()

          peer =
            Lockstep.spawn(fn ->
              echo(30, fn _ -> :ok end)
              Lockstep.receive(do: ({:ping, _, _} -> :ok))
            end)

          ref = Lockstep.monitor(peer)
          sum = ping(peer, 30)
          Lockstep.send(peer, {:ping, me, 0})
          reason = Lockstep.receive(do: ({:DOWN, ^ref, :process, _, r} -> r))
          Kernel.send(log, {:obs, {sum, reason}})
        end
      end

      {_, relayed} = compare(make, @opts)
      assert_relayed(relayed)
    end

    test "the echo raises right after taking a ping: a crash found after relayed hops" do
      twist = fn i -> if i == 10, do: raise("echo gave up at #{i}") end
      {result, relayed} = compare(twisted(twist), @opts)
      assert {:error, %BugFound{kind: :crash}} = result
      assert_relayed(relayed)
    end

    test "the root raises right after taking a pong: an exception after relayed hops" do
      make = fn _log ->
        fn ->
          peer = Lockstep.spawn(fn -> echo(40, fn _ -> :ok end) end)
          me = self()
          Lockstep.spawn(fn -> Lockstep.send(me, :side) end)
          Lockstep.receive(do: (:side -> :ok))
          sum = ping(peer, 30)
          if sum > 0, do: raise("after #{sum}")
        end
      end

      {result, relayed} = compare(make, @opts)
      assert {:error, %BugFound{kind: :exception}} = result
      assert_relayed(relayed)
    end
  end

  describe "links, monitors and trapped exits around the pair" do
    test "the root traps exits and is linked to the echo, which exits at the end" do
      make = fn log ->
        fn ->
          Lockstep.flag(:trap_exit, true)
          me = self()
          peer = Lockstep.spawn_link(fn -> echo(40, fn _ -> :ok end) end)
          contest(me)
          sum = ping(peer, 40)

          exit =
            Lockstep.receive do
              {:EXIT, ^peer, reason} -> reason
            end

          Kernel.send(log, {:obs, {sum, exit}})
        end
      end

      {_, relayed} = compare(make, @opts)
      assert_relayed(relayed)
    end

    test "a third process monitors the echo and waits for its :DOWN" do
      make = fn log ->
        fn ->
          me = self()
          peer = Lockstep.spawn(fn -> echo(40, fn _ -> :ok end) end)

          Lockstep.spawn(fn ->
            ref = Lockstep.monitor(peer)
            reason = Lockstep.receive(do: ({:DOWN, ^ref, :process, _, r} -> r))
            Lockstep.send(me, {:watcher, reason})
          end)

          sum = ping(peer, 40)
          got = Lockstep.receive(do: ({:watcher, r} -> r))
          Kernel.send(log, {:obs, {sum, got}})
        end
      end

      {_, relayed} = compare(make, @opts)
      assert_relayed(relayed)
    end

    test "an echo linked to a process that crashes mid-ping-pong (crash: :ignore)" do
      make = fn log ->
        fn ->
          me = self()

          peer =
            Lockstep.spawn(fn ->
              Lockstep.flag(:trap_exit, true)
              Lockstep.spawn_link(fn -> Lockstep.yield() && exit(:boom) end)

              Enum.each(1..40, fn _ ->
                Lockstep.receive do
                  {:ping, i} -> Lockstep.send(me, {:pong, i})
                  {:EXIT, _, :boom} -> Lockstep.send(me, :saw_exit)
                end
              end)
            end)

          sum =
            Enum.reduce(1..39, 0, fn i, acc ->
              Lockstep.send(peer, {:ping, i})

              Lockstep.receive do
                {:pong, ^i} -> acc + i
              end
            end)

          Lockstep.send(peer, {:ping, 40})
          first = Lockstep.receive(do: (m when m == :saw_exit or m == {:pong, 40} -> m))
          Kernel.send(log, {:obs, {sum, first}})
        end
      end

      compare(make, Keyword.put(@opts, :crash, :ignore))
    end
  end

  describe "the step budget" do
    test "max_steps at and around a lease boundary" do
      body = fn _log ->
        fn ->
          peer = Lockstep.spawn(fn -> echo(10_000, fn _ -> :ok end) end)
          ping(peer, 10_000)
        end
      end

      relayed =
        for max <- 40..60 do
          {result, relayed} = compare(body, iterations: 2, seed: 9, max_steps: max)
          assert {:error, %Lockstep.InconclusiveError{}} = result
          relayed
        end

      assert Enum.sum(relayed) > 0
    end

    test "fail_on_max_steps at and around a lease boundary: the same bug, step and schedule" do
      body = fn _log ->
        fn ->
          me = self()
          peer = Lockstep.spawn(fn -> echo(10_000, fn _ -> :ok end) end)
          contest(me)
          ping(peer, 10_000)
        end
      end

      relayed =
        for max <- 50..70 do
          opts = [iterations: 2, seed: 9, max_steps: max, fail_on_max_steps: true]
          {result, relayed} = compare(body, opts)
          assert {:error, %BugFound{kind: :max_steps}} = result
          relayed
        end

      assert Enum.sum(relayed) > 0
    end
  end

  describe "timers and delivery" do
    test "timers: :anytime with no timer pending relays" do
      {_, relayed} = compare(twisted(fn _ -> :ok end), Keyword.put(@opts, :timers, :anytime))
      assert_relayed(relayed)
    end

    test "timers: :anytime with a sleeper and a send_after pending: the same, nothing relayed" do
      make = fn log ->
        fn ->
          me = self()
          Lockstep.send_after(me, :timer, 30)
          Lockstep.spawn(fn -> Lockstep.sleep(20) && Lockstep.send(me, :slept) end)
          peer = Lockstep.spawn(fn -> echo(40, fn _ -> :ok end) end)
          sum = ping(peer, 40)
          a = Lockstep.receive(do: (m when m in [:timer, :slept] -> m))
          b = Lockstep.receive(do: (m when m in [:timer, :slept] -> m))
          Kernel.send(log, {:obs, {sum, a, b, Lockstep.now()}})
        end
      end

      {_, relayed} = compare(make, Keyword.put(@opts, :timers, :anytime))
      assert relayed == 0
    end

    test "timers: :on_idle with a send_after pending through the ping-pong" do
      make = fn log ->
        fn ->
          me = self()
          Lockstep.send_after(me, :timer, 30)
          peer = Lockstep.spawn(fn -> echo(40, fn _ -> :ok end) end)
          sum = ping(peer, 40)
          Lockstep.receive(do: (:timer -> :ok))
          Kernel.send(log, {:obs, {sum, Lockstep.now()}})
        end
      end

      {_, relayed} = compare(make, @opts)
      assert_relayed(relayed)
    end

    test "delivery: :delayed never relays and takes the same schedules" do
      {_, relayed} = compare(twisted(fn _ -> :ok end), Keyword.put(@opts, :delivery, :delayed))
      assert relayed == 0
    end
  end

  describe "simulated cluster" do
    defp cluster_pair(pair_nodes, partition?) do
      fn log ->
        fn ->
          [:a, :b, :c] = Cluster.start_nodes([:a, :b, :c])
          {na, nb} = pair_nodes
          me = self()

          peer =
            Lockstep.spawn(
              fn ->
                ponger = Lockstep.spawn(fn -> echo(40, fn _ -> :ok end) end, node: nb)
                Lockstep.send(me, {:ponger, ponger})
                sum = ping(ponger, 40)
                Lockstep.send(me, {:sum, sum})
              end,
              node: na
            )

          _ = peer
          Lockstep.receive(do: ({:ponger, _} -> :ok))
          if partition?, do: Cluster.partition([:c], [:a, :b])
          sum = Lockstep.receive(do: ({:sum, s} -> s))
          Kernel.send(log, {:obs, sum})
        end
      end
    end

    test "a pair on one simulated node relays, while the root partitions another off" do
      {_, relayed} = compare(cluster_pair({:a, :a}, true), @opts)
      assert_relayed(relayed)
    end

    test "a pair on two nodes never relays (messages between nodes travel)" do
      {_, relayed} = compare(cluster_pair({:a, :b}, false), @opts)
      assert relayed == 0
    end
  end

  describe "searches, reports, replay, shrinking" do
    test "workers: 2" do
      {_, relayed} = compare(twisted(fn _ -> :ok end), Keyword.put(@opts, :workers, 2))
      assert_relayed(relayed)
    end

    test "a deadlock after relayed hops is reported the same" do
      make = fn _log ->
        fn ->
          peer = Lockstep.spawn(fn -> echo(40, fn _ -> :ok end) end)
          me = self()
          contest(me)
          ping(peer, 40)
          Lockstep.receive(do: (:never -> :ok))
        end
      end

      {result, relayed} = compare(make, @opts)
      assert {:error, %BugFound{kind: :deadlock}} = result
      assert_relayed(relayed)
    end

    test "a process stuck after relayed hops is named the same" do
      make = fn _log ->
        fn ->
          peer =
            Lockstep.spawn(fn ->
              echo(30, fn _ -> :ok end)

              Lockstep.receive do
                {:ping, _, _} -> Process.sleep(:infinity)
              end
            end)

          me = self()
          ping(peer, 30)
          Lockstep.send(peer, {:ping, me, 0})
          Lockstep.receive(do: (:never -> :ok))
        end
      end

      {result, relayed} = compare(make, iterations: 1, seed: 2, timeout: 300)
      assert {:error, %BugFound{kind: :stuck}} = result
      assert_relayed(relayed)
    end

    test "a replayed trace file and a shrunk schedule are the same with leases on and off",
         %{dir: dir} do
      # a lost update between the root and a racer, noticed after a relayed ping-pong
      body = fn ->
        me = self()
        counter = :counters.new(1, [])
        peer = Lockstep.spawn(fn -> echo(40, fn _ -> :ok end) end)

        Lockstep.spawn(fn ->
          v = :counters.get(counter, 1)
          Lockstep.yield()
          :counters.put(counter, 1, v + 1)
          Lockstep.send(me, :done)
        end)

        v = :counters.get(counter, 1)
        Lockstep.yield()
        :counters.put(counter, 1, v + 1)
        Lockstep.receive(do: (:done -> :ok))
        ping(peer, 40)
        if :counters.get(counter, 1) != 2, do: raise("lost update")
      end

      opts = [iterations: 200, seed: 17, trace_dir: dir]

      {{:error, %BugFound{} = bug}, relayed} =
        with_relay(true, fn -> Lockstep.check(body, opts) end)

      assert_relayed(relayed)
      refute_diverged({:error, bug})

      replays =
        for on? <- [true, false] do
          {error, _} =
            with_relay(on?, fn ->
              assert_raise(BugFound, fn -> Lockstep.replay(body, bug.trace_path) end)
            end)

          {error.fail_step, error.schedule}
        end

      assert [same, same] = replays
      assert same == {bug.fail_step, bug.schedule}

      shrunk =
        for on? <- [true, false] do
          {{:ok, shrunk}, _} = with_relay(on?, fn -> Lockstep.shrink(body, bug.trace_path) end)
          {shrunk.bug.fail_step, shrunk.bug.schedule}
        end

      assert [same_shrunk, same_shrunk] = shrunk
    end

    test "a Controller session keeps its events, so it never relays, and its trace is whole" do
      {trace_len, relayed} =
        with_relay(true, fn ->
          {:ok, ctl} = Lockstep.Controller.start_link(strategy: :random, seed: 7, capture: false)

          Lockstep.Controller.spawn_root(ctl, fn ->
            peer = Lockstep.spawn(fn -> echo(40, fn _ -> :ok end) end)
            ping(peer, 40)
          end)

          %{kind: :pass} = Lockstep.Controller.await_done(ctl)
          length(Lockstep.Controller.trace(ctl))
        end)

      assert relayed == 0
      # 40 pings and 40 pongs, each sent and received
      assert trace_len > 160
    end
  end

  describe "concurrent entries while hops are relayed" do
    # An outside process hammers the owner's queries (status, progress, the trace) through
    # the run's controller handle while the pair relays: each query catches the engine up
    # concurrently with the pair's compare-and-swaps. The schedules must not change.
    test "owner queries from outside the run, in a tight loop" do
      make = fn log ->
        fn ->
          handle = Lockstep.controller()

          hammer =
            spawn(fn ->
              loop = fn loop, n ->
                receive do
                  :stop -> Kernel.send(log, {:hammered, n})
                after
                  0 ->
                    %{procs: _} = Lockstep.Controller.status(handle)
                    loop.(loop, n + 1)
                end
              end

              loop.(loop, 0)
            end)

          me = self()
          peer = Lockstep.spawn(fn -> echo(300, fn _ -> :ok end) end)
          contest(me)
          sum = ping(peer, 300)
          Kernel.send(hammer, :stop)
          Kernel.send(log, {:obs, sum})
        end
      end

      log = self()
      opts = [iterations: 8, seed: 23]

      # Every query ends the lease out: a hammer that happens to query between every two
      # hops leaves none relayed (about one run in twenty), so the run is tried again.
      relayed_run = fn again, tries ->
        {on, relayed} = with_relay(true, fn -> Lockstep.check(make.(log), opts) end)
        hammered = for _ <- 1..8, do: assert_receive({:hammered, n}, 5_000) && n
        obs_on = observations()

        if relayed == 0 and tries > 1,
          do: again.(again, tries - 1),
          else: {on, relayed, hammered, obs_on}
      end

      {on, relayed, hammered, obs_on} = relayed_run.(relayed_run, 3)
      {off, _} = with_relay(false, fn -> Lockstep.check(make.(log), opts) end)
      for _ <- 1..8, do: assert_receive({:hammered, _}, 5_000)
      obs_off = observations()
      assert_relayed(relayed)
      assert Enum.sum(hammered) > 0
      assert obs_on == obs_off
      assert_same(normalise(on), normalise(off))
    end

    # A third process, blocked for good and linked to the echo (which traps exits), is
    # killed from outside while the pair relays: the resource monitor's catch-up, then the
    # exit signal it sends to the echo, may come between a hop's count and its wake-up.
    # The pair's rounds (four steps each) fit in the default `max_steps`, so a signal that
    # comes only after the pair is done (the killer runs on another scheduler, which may be
    # busy) ends the run as a pass, not as an inconclusive one.
    @pair_rounds 2_000
    for signal <- [:kill, :shutdown] do
      test "an outside #{inspect(signal)} of a third process linked to the pair" do
        signal = unquote(signal)

        results =
          for round <- 1..30 do
            killer = random_killer(signal, 3_000)

            body = fn ->
              me = self()

              peer =
                Lockstep.spawn(fn ->
                  Lockstep.flag(:trap_exit, true)
                  third = Lockstep.spawn_link(fn -> Lockstep.receive(do: (:never -> :ok)) end)
                  Lockstep.send(me, {:third, third})

                  Enum.reduce_while(1..@pair_rounds, :ok, fn _, _ ->
                    Lockstep.receive do
                      {:ping, from, i} ->
                        Lockstep.send(from, {:pong, i})
                        {:cont, :ok}

                      {:EXIT, _, reason} ->
                        Lockstep.send(me, {:third_died, reason})
                        {:halt, :ok}
                    end
                  end)
                end)

              third = Lockstep.receive(do: ({:third, t} -> t))
              Kernel.send(killer, {:target, third})

              Enum.reduce_while(1..@pair_rounds, 0, fn i, acc ->
                Lockstep.send(peer, {:ping, me, i})

                Lockstep.receive do
                  {:pong, ^i} -> {:cont, acc + i}
                  {:third_died, reason} -> {:halt, reason}
                end
              end)
            end

            outcome_with_relay(body, round)
          end

        assert Enum.all?(results, &(&1 in [:pass, :exception, :crash, :deadlock])),
               inspect(results)
      end
    end

    # A hop's count and its wake-up must be one act: a process that dies (killed from
    # outside, `crash: :ignore`) once its hop is counted but before its peer is woken would
    # leave the engine with the peer running while the peer waits, parked, for a wake-up
    # that never comes (reported `:stuck` after the timeout). The echo makes the NIF call
    # of a relayed hop itself, as `Lockstep.Runtime` does, and is killed right after it.
    test "a process killed right after its relayed hop leaves its peer woken" do
      body = fn ->
        me = self()

        peer =
          Lockstep.spawn(fn ->
            Enum.each(1..1_000, fn _ ->
              Lockstep.receive do
                {:ping, i} ->
                  case Process.get(:"$lockstep_relay") do
                    {gen, hop, ^me, taken, _last} when i >= 10 ->
                      {session, _id, tag} = Process.get(:"$lockstep")
                      wake = {tag, :go, {:in_hand, taken + 1, {:pong, i}, :attempt}}
                      true = apply(Lockstep.Native, :relay_hop, [session, gen, hop, me, wake])
                      Process.exit(self(), :kill)

                    _ ->
                      Lockstep.send(me, {:pong, i})
                  end
              end
            end)
          end)

        ref = Lockstep.monitor(peer)

        Enum.reduce_while(1..1_000, [], fn i, acc ->
          Lockstep.send(peer, {:ping, i})

          Lockstep.receive do
            {:pong, ^i} -> {:cont, [i | acc]}
            {:DOWN, ^ref, :process, _, reason} -> {:halt, {length(acc), reason}}
          end
        end)
      end

      {result, relayed} =
        with_relay(true, fn ->
          Lockstep.check(body, iterations: 3, seed: 4, crash: :ignore, timeout: 1_000)
        end)

      assert_relayed(relayed)
      assert {:ok, %{iterations: 3}} = result
    end

    # Outside exit signals at random wall-clock moments: not reproducible from the seed,
    # so each run is checked on its own: it ends cleanly (passes, or fails as killed from
    # outside), never with an internal error, and leaves nothing behind.
    for signal <- [:shutdown, :kill] do
      test "an outside Process.exit(pid, #{inspect(signal)}) at random moments" do
        signal = unquote(signal)
        live_before = Session.live_sessions()

        results =
          for round <- 1..30 do
            # a few hundred hops in
            killer = random_killer(signal, 2_000)

            body = fn ->
              me = self()
              Lockstep.flag(:trap_exit, true)
              peer = Lockstep.spawn_link(fn -> echo(2_000, fn _ -> :ok end) end)
              target = if rem(round, 2) == 0, do: peer, else: me
              Kernel.send(killer, {:target, target})

              Enum.reduce_while(1..2_000, 0, fn i, acc ->
                Lockstep.send(peer, {:ping, me, i})

                Lockstep.receive do
                  {:pong, ^i} -> {:cont, acc + i}
                  {:EXIT, ^peer, reason} -> {:halt, reason}
                end
              end)
            end

            # (the capture re-run has no outside signal, so its report may warn of
            # nondeterminism, with leases or without)
            outcome_with_relay(body, round)
          end

        assert Enum.all?(results, &(&1 in [:pass, :exception, :crash]))

        assert Enum.any?(1..40, fn _ ->
                 :erlang.garbage_collect()
                 Session.live_sessions() <= live_before or (Process.sleep(50) && false)
               end),
               "#{Session.live_sessions() - live_before} NIF session(s) still alive"
      end
    end
  end

  # An outside process that, told a target, waits a random while (a few hundred hops of
  # the pair, for `spin` about 2,000) and sends it the exit signal.
  defp random_killer(signal, spin) do
    spawn(fn ->
      receive do
        {:target, pid} ->
          Enum.each(1..:rand.uniform(spin), fn _ -> :ok end)
          Process.exit(pid, signal)
      end
    end)
  end

  # One iteration with leases, ended however the outside signal made it end: `:pass` or
  # the bug's kind, never an internal error.
  defp outcome_with_relay(body, round) do
    {result, _} =
      with_relay(true, fn -> Lockstep.check(body, iterations: 1, seed: round, crash: :ignore) end)

    case result do
      {:ok, _} ->
        :pass

      {:error, %BugFound{} = bug} ->
        message = Exception.message(bug)
        refute message =~ "this is a bug in Lockstep", message
        bug.kind
    end
  end
end
