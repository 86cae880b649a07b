defmodule Lockstep.Examples.ReplicatedRegister do
  @moduledoc """
  A register replicated on three simulated nodes, two ways, checked for linearizability
  with `Lockstep.History` (docs/guide-histories.md walks through it):

    * `naive_body/0` — last-writer-wins: a client writes to and reads from the replica on
      its own node, which answers at once and passes writes on to the other replicas in
      the background, keeping the value with the highest timestamp. Fast, and not
      linearizable: a read on one node can return an old value after a write on another
      has completed (under a partition, for as long as it lasts).
    * `quorum_body/0` — majority quorums (Attiya, Bar-Noy and Dolev's algorithm, "Sharing
      memory robustly in message-passing systems", JACM 1995): a write reads the highest
      timestamp from a majority and stores a higher one on a majority; a read takes the
      newest value of a majority and writes it back to a majority before returning it.
      Linearizable; a client cut off from a majority times out, and its operation is
      recorded as `:info`.

  In both, one client per node writes its own value and then reads, while the run cuts
  node `:n1` off from the others at a moment the strategy picks.
  """

  require Lockstep
  alias Lockstep.{Cluster, History}

  @nodes [:n1, :n2, :n3]
  @timeout 1_000

  @doc "The last-writer-wins register under a partition (not linearizable)."
  @spec naive_body() :: :ok
  def naive_body, do: body(:naive)

  @doc "The majority-quorum register under a partition (linearizable)."
  @spec quorum_body() :: :ok
  def quorum_body, do: body(:quorum)

  @doc "The root of one iteration for `variant` (`:naive` or `:quorum`)."
  @spec body(:naive | :quorum) :: :ok
  def body(variant) do
    Cluster.start_nodes(@nodes)
    for node <- @nodes, do: Cluster.spawn(node, fn -> replica(node) end)
    h = History.new(model: Lockstep.Model.Register)
    root = self()

    for {node, value} <- Enum.zip(@nodes, [1, 2, 3]) do
      Cluster.spawn(node, fn ->
        client(variant, h, node, value)
        Lockstep.send(root, :done)
      end)
    end

    # The cut comes after 0 to 3 of the root's turns: the strategy picks when.
    for _ <- 1..Lockstep.random(4)//1, do: Lockstep.yield()
    Cluster.partition([:n1], [:n2, :n3])

    for _ <- @nodes do
      Lockstep.receive do
        :done -> :ok
      end
    end

    :ok
  end

  defp client(variant, h, node, value) do
    # A timed-out operation is recorded as :info by History.call/4; the client gives up.
    try do
      History.call(h, :write, value, fn -> write(variant, node, value) end)
      History.call(h, :read, nil, fn -> read(variant, node) end)
    catch
      :exit, :timeout -> :gave_up
    end
  end

  # Replica: a timestamped value. `{:set, …}` keeps the higher timestamp (both variants);
  # the naive one also answers clients directly and gossips their writes.
  defp replica(node) do
    Lockstep.register(:replica, self())
    replica_loop(node, {{0, nil}, nil})
  end

  defp replica_loop(node, {ts, value} = state) do
    Lockstep.receive do
      {:get, from, ref} ->
        Lockstep.send(from, {ref, :got, ts, value})
        replica_loop(node, state)

      {:set, from, ref, new_ts, new_value} ->
        if from, do: Lockstep.send(from, {ref, :ack})
        replica_loop(node, if(new_ts > ts, do: {new_ts, new_value}, else: state))

      {:naive_write, from, ref, new_value} ->
        {clock, _} = ts
        new_ts = {clock + 1, node}
        Lockstep.send(from, {ref, :ok})

        for other <- @nodes -- [node],
            do: Lockstep.send({:replica, other}, {:set, nil, ref, new_ts, new_value})

        replica_loop(node, {new_ts, new_value})

      {:naive_read, from, ref} ->
        Lockstep.send(from, {ref, value})
        replica_loop(node, state)
    end
  end

  defp write(:naive, node, value), do: local(node, &{:naive_write, &1, &2, value})

  defp write(:quorum, node, value) do
    {{clock, _}, _} = newest(node)
    store(node, {clock + 1, node}, value)
    :ok
  end

  defp read(:naive, node), do: local(node, &{:naive_read, &1, &2})

  defp read(:quorum, node) do
    {ts, value} = newest(node)
    store(node, ts, value)
    value
  end

  defp local(node, message) do
    ref = make_ref()
    Lockstep.send({:replica, node}, message.(self(), ref))

    Lockstep.receive do
      {^ref, answer} -> answer
    after
      @timeout -> exit(:timeout)
    end
  end

  # The newest {timestamp, value} of a majority.
  defp newest(_node) do
    ref = make_ref()
    for n <- @nodes, do: Lockstep.send({:replica, n}, {:get, self(), ref})
    ref |> await(majority(), fn {^ref, :got, ts, v} -> {ts, v} end) |> Enum.max()
  end

  # Stores {ts, value} on a majority.
  defp store(_node, ts, value) do
    ref = make_ref()
    for n <- @nodes, do: Lockstep.send({:replica, n}, {:set, self(), ref, ts, value})
    await(ref, majority(), fn {^ref, :ack} -> :ack end)
    :ok
  end

  defp majority, do: div(length(@nodes), 2) + 1

  defp await(_ref, 0, _take), do: []

  defp await(ref, n, take) do
    Lockstep.receive do
      {^ref, :got, _, _} = reply -> [take.(reply) | await(ref, n - 1, take)]
      {^ref, :ack} = reply -> [take.(reply) | await(ref, n - 1, take)]
    after
      @timeout -> exit(:timeout)
    end
  end
end
