defmodule Lockstep.RelayKeyTest do
  # A lease's key (the NIF's `relay.rs`): it names a slot in the VM-wide table of lease
  # words and a generation drawn from one VM-wide counter, so `Native.relay_hop/5` finds
  # the word without decoding the session. A key whose lease has ended — ended by an engine
  # call of the same run, or by the end of a run whose slot a later session holds now —
  # must count nothing and wake no one: a wake-up sent on it would hand the peer a result
  # it never asked for (here `:bogus`, which no receive takes: the run would fail).
  use ExUnit.Case, async: false

  require Lockstep
  alias Lockstep.{Native, Session}

  @relay :"$lockstep_relay"

  setup do
    previous = Session.relay_enabled_for_test(true)
    on_exit(fn -> Session.relay_enabled_for_test(previous) end)
  end

  # `rounds` pings from the root, each answered by the echo; at ping `at` the echo holds a
  # lease for its hop back, hands it to `check` (which may make engine calls), and answers.
  defp ping_pong(rounds, at, check) do
    fn ->
      root = self()

      echo =
        Lockstep.spawn(fn ->
          Enum.each(1..rounds, fn i ->
            Lockstep.receive do
              {:ping, ^i} ->
                if i == at, do: check.(Process.get(@relay), root)
                Lockstep.send(root, {:pong, i})
            end
          end)
        end)

      for i <- 1..rounds do
        Lockstep.send(echo, {:ping, i})

        Lockstep.receive do
          {:pong, ^i} -> :ok
        end
      end

      :ok
    end
  end

  # How many sessions are alive once the garbage collector has freed what it can.
  defp settled_sessions do
    Enum.reduce_while(1..100, Session.live_sessions(), fn _, last ->
      :erlang.garbage_collect()
      Process.sleep(10)
      now = Session.live_sessions()
      if now == last, do: {:halt, now}, else: {:cont, now}
    end)
  end

  defp stale_hop({key, hop, peer, _taken, _last}) do
    {session, _id, tag} = Process.get(:"$lockstep")
    Native.relay_hop(session, key, hop, peer, {tag, :go, :bogus})
  end

  test "a key whose lease an engine call ended counts nothing and wakes no one" do
    test_pid = self()

    check = fn lease, root ->
      assert {_key, _hop, ^root, _taken, _last} = lease
      # an engine call: its catch-up ends the lease
      Lockstep.yield()
      Kernel.send(test_pid, {:stale, stale_hop(lease)})
    end

    before = Session.relayed_hops()
    summary = Lockstep.run(ping_pong(40, 20, check), iterations: 3, seed: 9)
    assert summary.iterations == 3
    assert Session.relayed_hops() > before

    for _ <- 1..3, do: assert_received({:stale, false})
  end

  test "a key from a run that is over counts nothing in a later run on its slot" do
    test_pid = self()
    slot = fn {key, _hop, _peer, _taken, _last} -> Bitwise.bsr(key, 44) end

    # Every earlier session freed, then the first run's: its slot is the one given back
    # last, the next one handed out (slots are reused last freed first).
    baseline = settled_sessions()
    keep = fn lease, _root -> Kernel.send(test_pid, {:lease, lease}) end
    Lockstep.run(ping_pong(10, 5, keep), iterations: 1, seed: 1)
    assert_received {:lease, old}
    assert settled_sessions() <= baseline

    reuse = fn lease, root ->
      {_key, hop, _peer, _taken, _last} = old
      Kernel.send(test_pid, {:slots, slot.(old), slot.(lease)})
      # the old key on this run's live lease (same slot, another generation), as if the
      # old lease's holder were still here, hopping to this run's root
      Kernel.send(test_pid, {:stale, stale_hop(put_elem(put_elem(old, 2, root), 1, hop))})
    end

    before = Session.relayed_hops()
    Lockstep.run(ping_pong(30, 5, reuse), iterations: 1, seed: 2)
    # the live lease still counted its hops after the stale call
    assert Session.relayed_hops() - before > 20

    assert_received {:slots, old_slot, new_slot}
    assert old_slot == new_slot
    assert_received {:stale, false}
  end

  test "a key that names no slot, or no hop, is refused" do
    check = fn {key, hop, peer, taken, last}, _root ->
      for bad <- [
            {Bitwise.bsl(1, 59) - 1, hop},
            {Bitwise.band(key, Bitwise.bsl(1, 44) - 1) + Bitwise.bsl(40_000, 44), hop},
            {key, 0},
            {key, 70_000}
          ] do
        {bad_key, bad_hop} = bad
        refute stale_hop({bad_key, bad_hop, peer, taken, last})
      end
    end

    assert %Lockstep.Summary{iterations: 1} =
             Lockstep.run(ping_pong(10, 4, check), iterations: 1, seed: 3)
  end
end
