defmodule Lockstep.OtpCompare do
  @moduledoc false
  # Runs one program under plain OTP 25 and under Lockstep and hands back what it returned
  # (or how it failed), pids renamed by first appearance, so a test can assert that the
  # real Supervisor, Registry or Task behave the same under control as on the raw BEAM.
  # This module is instrumented with the program, so its sends are plain `send/2`.

  alias Lockstep.TestSupport

  @doc """
  The outcome of `fun` in a fresh unmanaged process: `{:ok, value}` or `{kind, reason}`.
  That process is then killed and the processes linked to it (a supervisor it started)
  awaited, so no name it registered is still held when the controlled run starts.
  """
  def plain(fun, wait \\ 30_000) do
    me = self()
    tag = make_ref()

    {pid, ref} =
      spawn_monitor(fn ->
        send(me, {tag, outcome(fun)})
        receive(do: (:never -> :ok))
      end)

    receive do
      {^tag, result} ->
        {:links, links} = Process.info(pid, :links)
        refs = for linked <- links, is_pid(linked), do: Process.monitor(linked)
        Process.exit(pid, :kill)

        for r <- [ref | refs],
            do: receive(do: ({:DOWN, ^r, _, _, _} -> :ok), after: (wait -> :ok))

        TestSupport.normalize_pids(result)

      {:DOWN, ^ref, :process, ^pid, reason} ->
        {:died, reason}
    after
      wait ->
        Process.exit(pid, :kill)
        {:no_answer_after, wait}
    end
  end

  @doc """
  Runs `fun` as the root of `Lockstep.run/2` with `opts` (`:instrument` gains this
  module) and returns `{summary, outcomes}`: the distinct outcomes of the iterations.
  """
  def controlled(fun, opts) do
    me = self()
    tag = make_ref()
    instrument = [__MODULE__ | Keyword.get(opts, :instrument, [])]
    opts = Keyword.put(opts, :instrument, instrument)
    summary = Lockstep.run(fn -> send(me, {tag, outcome(fun)}) end, opts)
    {summary, collect(tag, []) |> Enum.map(&TestSupport.normalize_pids/1) |> Enum.uniq()}
  end

  @doc "Both: `{plain_outcome, controlled_outcomes}`."
  def both(fun, opts) do
    {plain(fun), elem(controlled(fun, opts), 1)}
  end

  defp collect(tag, acc) do
    receive do
      {^tag, result} -> collect(tag, [result | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  defp outcome(fun) do
    {:ok, fun.()}
  catch
    kind, reason -> {kind, reason}
  end

  @doc """
  Asserts that `body` fails under `opts` the same way twice with one seed (same iteration,
  schedule, failing step and trace, pids and references renamed) and that replaying the
  saved trace file reproduces it; returns the first `Lockstep.BugFound`.
  """
  def assert_deterministic_bug(body, opts) do
    import ExUnit.Assertions

    opts = Keyword.put_new(opts, :seed, 20_261_201)
    assert {:error, %Lockstep.BugFound{} = a} = Lockstep.check(body, opts)
    assert {:error, %Lockstep.BugFound{} = b} = Lockstep.check(body, opts)

    assert {a.kind, a.iteration, a.iter_seed, a.fail_step} ==
             {b.kind, b.iteration, b.iter_seed, b.fail_step}

    assert a.schedule == b.schedule
    assert rename(a.trace) == rename(b.trace)

    replayed = assert_raise Lockstep.BugFound, fn -> Lockstep.replay(body, a.trace_path) end

    assert replayed.kind == a.kind
    assert replayed.fail_step == a.fail_step
    assert rename(replayed.trace) == rename(a.trace)
    a
  end

  @doc "Each randomised strategy finds a bug in `body` within 200 iterations under `opts`."
  def assert_every_strategy_finds(body, opts) do
    import ExUnit.Assertions

    for strategy <- [:pct, :random, :pos, :fair_pct, :idpct] do
      opts = Keyword.merge([iterations: 200, seed: 7], opts) |> Keyword.put(:strategy, strategy)

      assert {:error, %Lockstep.BugFound{}} = Lockstep.check(body, opts),
             "#{strategy} missed it"
    end
  end

  @doc "Renames pids and references in `term` by first appearance."
  def rename(term), do: term |> rename(%{}) |> elem(0)

  defp rename(x, seen) when is_pid(x) or is_reference(x) or is_port(x) do
    case seen do
      %{^x => n} -> {n, seen}
      _ -> {{:id, map_size(seen)}, Map.put(seen, x, {:id, map_size(seen)})}
    end
  end

  defp rename(list, seen) when is_list(list), do: rename_list(list, seen, [])

  defp rename(tuple, seen) when is_tuple(tuple) do
    {items, seen} = tuple |> Tuple.to_list() |> rename(seen)
    {List.to_tuple(items), seen}
  end

  defp rename(map, seen) when is_map(map) do
    {pairs, seen} = map |> Map.to_list() |> Enum.sort() |> rename(seen)
    {Map.new(pairs), seen}
  end

  defp rename(other, seen), do: {other, seen}

  # Improper lists (aliases travel as `[:alias | ref]`) are walked to their tail.
  defp rename_list([h | t], seen, acc) do
    {h, seen} = rename(h, seen)
    rename_list(t, seen, [h | acc])
  end

  defp rename_list([], seen, acc), do: {:lists.reverse(acc), seen}

  defp rename_list(tail, seen, acc) do
    {tail, seen} = rename(tail, seen)
    {:lists.reverse(acc, tail), seen}
  end
end
