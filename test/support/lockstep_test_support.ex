defmodule Lockstep.TestSupport do
  @moduledoc false
  # Helpers and small programs shared by Lockstep's own test suite.

  require Lockstep

  @doc """
  Creates a fresh directory under the system tmp dir and removes it when the calling test
  ends. Must be called from the test process.
  """
  def tmp_dir!(label \\ "lockstep_test") do
    dir =
      Path.join(
        System.tmp_dir!(),
        "#{label}_#{System.os_time(:nanosecond)}_#{System.unique_integer([:positive])}"
      )

    File.mkdir_p!(dir)
    ExUnit.Callbacks.on_exit(fn -> File.rm_rf!(dir) end)
    dir
  end

  @doc """
  Renames every pid in `term` to `{:pid, n}` and every reference to `{:ref, n}`, numbered
  by first appearance (depth first, left to right), so two runs whose payloads carry
  different real pids and references can be compared event for event. Bijective within
  one term, so structure is still fully compared.
  """
  def normalize_pids(term) do
    {out, _} = do_normalize(term, %{})
    out
  end

  defp do_normalize(pid, seen) when is_pid(pid) do
    case seen do
      %{^pid => n} ->
        {{:pid, n}, seen}

      _ ->
        n = map_size(seen) + 1
        {{:pid, n}, Map.put(seen, pid, n)}
    end
  end

  # References too (a call's reply alias, a monitor): each run makes its own.
  defp do_normalize(ref, seen) when is_reference(ref) do
    case seen do
      %{^ref => n} ->
        {{:ref, n}, seen}

      _ ->
        n = map_size(seen) + 1
        {{:ref, n}, Map.put(seen, ref, n)}
    end
  end

  # Proper and improper lists (`[:alias | ref]`, a call's reply tag).
  defp do_normalize([head | tail], seen) do
    {head, seen} = do_normalize(head, seen)
    {tail, seen} = do_normalize(tail, seen)
    {[head | tail], seen}
  end

  defp do_normalize(tuple, seen) when is_tuple(tuple) do
    {items, seen} = tuple |> Tuple.to_list() |> Enum.map_reduce(seen, &do_normalize/2)
    {List.to_tuple(items), seen}
  end

  defp do_normalize(%_{} = struct, seen) do
    {map, seen} = struct |> Map.from_struct() |> do_normalize(seen)
    {Map.put(map, :__struct__, struct.__struct__), seen}
  end

  defp do_normalize(map, seen) when is_map(map) do
    {pairs, seen} =
      map
      |> Enum.sort()
      |> Enum.map_reduce(seen, fn {k, v}, seen ->
        {k, seen} = do_normalize(k, seen)
        {v, seen} = do_normalize(v, seen)
        {{k, v}, seen}
      end)

    {Map.new(pairs), seen}
  end

  defp do_normalize(other, seen), do: {other, seen}

  @doc """
  A public ETS table holding `{:k, value}`, owned by the caller (it outlives every
  iteration, so the processes of a run only read and write it).
  """
  def key_table(value) do
    tab = :ets.new(:lockstep_key_table, [:public])
    :ets.insert(tab, {:k, value})
    tab
  end

  @doc "The exhaustive literature's program: `n` readers and one writer of `tab`'s key."
  def readers_and_writer(tab, n) do
    fn ->
      for _ <- 1..n, do: Lockstep.spawn(fn -> Lockstep.ETS.lookup(tab, :k) end)
      Lockstep.spawn(fn -> Lockstep.ETS.insert(tab, {:k, 1}) end)
    end
  end

  @doc "Only the events of a trace, in order."
  def events(trace), do: Enum.map(trace, fn {_step, event} -> event end)

  @doc """
  Receives every `{tag, pid}` message already in (or arriving within `wait` ms into) the
  caller's mailbox and returns the pids.
  """
  def collect_pids(tag, wait \\ 0) do
    receive do
      {^tag, pid} when is_pid(pid) -> [pid | collect_pids(tag, wait)]
    after
      wait -> []
    end
  end

  @doc "Waits up to `ms` for `pred` to become true (polling)."
  def eventually(pred, ms \\ 1_000) do
    deadline = System.monotonic_time(:millisecond) + ms
    do_eventually(pred, deadline)
  end

  defp do_eventually(pred, deadline) do
    cond do
      pred.() ->
        true

      System.monotonic_time(:millisecond) > deadline ->
        false

      true ->
        Process.sleep(5)
        do_eventually(pred, deadline)
    end
  end

  # Programs -------------------------------------------------------------------------------

  @doc """
  Three senders each send their number to the root; the root asserts it received them in
  spawn order. Fails under some interleavings; no pid ever travels in a payload, so its
  traces are byte-for-byte comparable between runs.
  """
  def ordering_race do
    fn ->
      root = self()

      for n <- 1..3 do
        Lockstep.spawn(fn -> Lockstep.send(root, {:n, n}) end)
      end

      got = for _ <- 1..3, do: Lockstep.receive(do: ({:n, n} -> n))

      if got != [1, 2, 3] do
        raise "out of order: #{inspect(got)}"
      end

      :ok
    end
  end

  @doc """
  Two processes each send a request to the other and then wait for a reply before serving
  requests: a call cycle that deadlocks in every interleaving. The root waits for both.
  Each process reports its pid to `report_to` (a pid outside the run) when given.
  """
  def call_cycle(report_to \\ nil) do
    fn ->
      root = self()
      if report_to, do: Lockstep.send(report_to, {:managed, self()})

      a =
        Lockstep.spawn(fn ->
          if report_to, do: Lockstep.send(report_to, {:managed, self()})
          peer = Lockstep.receive(do: ({:peer, b} -> b))
          Lockstep.send(peer, {:call, self()})
          Lockstep.receive(do: ({:reply, ^peer} -> :ok))
          call_cycle_serve()
          Lockstep.send(root, :done)
        end)

      _b =
        Lockstep.spawn(fn ->
          if report_to, do: Lockstep.send(report_to, {:managed, self()})
          Lockstep.send(a, {:call, self()})
          Lockstep.receive(do: ({:reply, ^a} -> :ok))
          call_cycle_serve()
          Lockstep.send(root, :done)
        end)
        |> tap(fn b -> Lockstep.send(a, {:peer, b}) end)

      Lockstep.receive(do: (:done -> :ok))
      Lockstep.receive(do: (:done -> :ok))
      :ok
    end
  end

  defp call_cycle_serve do
    Lockstep.receive do
      {:call, from} -> Lockstep.send(from, {:reply, self()})
    end
  end
end
