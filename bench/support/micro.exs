defmodule Bench.Micro do
  @moduledoc false
  # Pieces of the hot path measured on their own, to explain the per-hop figure.
  # Every function returns `%{ns: elapsed, ops: count}` (plus extras where noted).

  require Lockstep
  alias Bench.Timing

  @doc "Loop overhead alone: a tail-recursive countdown doing nothing."
  def empty_loop(n) do
    Timing.isolated(fn ->
      t0 = Timing.now_ns()
      empty(n)
      %{ns: Timing.now_ns() - t0, ops: n}
    end)
  end

  defp empty(0), do: :ok
  defp empty(n), do: empty(n - 1)

  @doc "A trivial NIF of the same library (`Lockstep.Native.iteration_seed/2`): the bare NIF call cost."
  def nif_call(n) do
    Timing.isolated(fn ->
      t0 = Timing.now_ns()
      nif_loop(n)
      %{ns: Timing.now_ns() - t0, ops: n}
    end)
  end

  defp nif_loop(0), do: :ok

  defp nif_loop(n) do
    _ = Lockstep.Native.iteration_seed(7, n)
    nif_loop(n - 1)
  end

  @doc "`Lockstep.yield()` in a run with only the root: a full sync point that continues."
  def yield_continue(n) do
    in_root(n, fn -> yield_loop(n) end)
  end

  defp yield_loop(0), do: :ok

  defp yield_loop(n) do
    :ok = Lockstep.yield()
    yield_loop(n - 1)
  end

  @doc """
  `Lockstep.send/2` to a pid outside the run (a dead one, so the BEAM send is nearly free):
  the send NIF path (it takes the session lock twice) continuing, plus a plain send.
  """
  def send_external(n) do
    dead = :erlang.spawn(fn -> :ok end)
    ref = Process.monitor(dead)

    receive do
      {:DOWN, ^ref, :process, _, _} -> :ok
    end

    in_root(n, fn -> send_loop(dead, n) end)
  end

  defp send_loop(_dest, 0), do: :ok

  defp send_loop(dest, n) do
    Lockstep.send(dest, :x)
    send_loop(dest, n - 1)
  end

  @doc """
  Two processes each calling `Lockstep.yield()` `n` times under `:random`: about half the
  steps hand off to the other process. Returns the total time, steps and context switches
  so the cost of a handoff can be separated from a sync point that continues.
  """
  def yield_pair(n) do
    me = self()
    ref = make_ref()

    root = fn ->
      parent = self()
      t0 = Timing.now_ns()

      Lockstep.spawn(fn ->
        yield_loop(n)
        Lockstep.send(parent, :finished)
      end)

      yield_loop(n)
      Lockstep.receive(do: (:finished -> :ok))
      Kernel.send(me, {ref, Timing.now_ns() - t0})
    end

    summary =
      Lockstep.run(root,
        iterations: 1,
        strategy: :random,
        seed: 7,
        max_steps: 10_000_000,
        timeout: 60_000
      )

    receive do
      {^ref, ns} ->
        %{ns: ns, ops: 2 * n, steps: summary.steps, switches: summary.context_switches}
    end
  end

  @doc """
  Lockstep's hop protocol with the NIF calls taken out: per hop the sender keeps the payload
  in its process dictionary (what `Lockstep.send` does), then at its receive (where the NIF
  would hand the turn over) wakes the receiver with `{tag, :go, {:in_hand, seq, payload,
  :attempt}}` and parks on its own `{tag, :go, _}`; the receiver matches the payload in a
  `case` and notes the consumed seq, as the `Lockstep.receive` expansion does. One BEAM
  message per hop, like the raw hop.
  """
  def protocol_without_nif(hops) do
    Timing.isolated(fn ->
      tag = System.unique_integer([:positive])
      me = self()
      rounds = div(hops, 2)
      peer = :erlang.spawn(fn -> emu_echo(tag, me, 0) end)
      # warm-up round trip
      emu_send(peer, 0, :ping)
      :pong = emu_receive(tag)

      cs0 = Timing.context_switches()
      t0 = Timing.now_ns()
      emu_loop(peer, tag, rounds)
      t1 = Timing.now_ns()
      cs1 = Timing.context_switches()
      Process.exit(peer, :kill)
      %{ns: t1 - t0, ops: rounds * 2, cs: cs1 - cs0}
    end)
  end

  defp emu_loop(_peer, _tag, 0), do: :ok

  defp emu_loop(peer, tag, n) do
    emu_send(peer, n, :ping)
    :pong = emu_receive(tag)
    emu_loop(peer, tag, n - 1)
  end

  defp emu_echo(tag, root, seq) do
    :ping = emu_receive(tag)
    emu_send(root, seq, :pong)
    emu_echo(tag, root, seq + 1)
  end

  # the send: carried to the next sync point
  defp emu_send(peer, seq, msg) do
    :erlang.erase(:"$emu_pending")
    Process.put(:"$emu_pending", {peer, seq, msg})
  end

  # the receive: hand the carried message over with the wake-up, park, match in place
  defp emu_receive(tag) do
    Process.put(:"$emu_waiting", "description")

    case :erlang.erase(:"$emu_pending") do
      {peer, seq, msg} -> Kernel.send(peer, {tag, :go, {:in_hand, seq, msg, :attempt}})
      _nothing_carried -> :ok
    end

    case emu_park(tag) do
      {:in_hand, seq, payload, _attempt} ->
        case payload do
          msg when is_atom(msg) ->
            Process.put(:"$emu_pending", seq)
            msg
        end
    end
  end

  defp emu_park(tag) do
    receive do
      {^tag, :go, result} -> result
    end
  end

  @doc "Runs `body` as the only process of one Lockstep iteration and times it from inside."
  def in_root(n, body) do
    me = self()
    ref = make_ref()

    root = fn ->
      t0 = Timing.now_ns()
      body.()
      Kernel.send(me, {ref, Timing.now_ns() - t0})
    end

    Lockstep.run(root,
      iterations: 1,
      strategy: :random,
      seed: 7,
      max_steps: 10_000_000,
      timeout: 60_000
    )

    receive do
      {^ref, ns} -> %{ns: ns, ops: n}
    end
  end

  @doc "A Lockstep iteration whose root does nothing: the fixed cost of an iteration."
  def empty_iteration(n, strategy) do
    Bench.Iterations.lockstep(fn -> :ok end, n, strategy)
  end
end
