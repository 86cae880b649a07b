defmodule Bench.Checker do
  # Section 9: Lockstep.Checker on generated linearizable register histories. Each of
  # `procs` processes runs its operations one after another; at every event a random
  # process either invokes (read, or write of a fresh value) or completes its open
  # operation, which takes effect on a real register at that moment (a linearization
  # point inside its interval), so the history is linearizable by construction and up to
  # `procs` operations overlap.

  def history(n, procs, seed) do
    :rand.seed(:exsss, seed)
    gen(n, procs, %{}, nil, 0, [])
  end

  defp gen(0, _procs, open, _reg, _next, acc) when map_size(open) == 0, do: Enum.reverse(acc)

  defp gen(left, procs, open, reg, next, acc) do
    p = :rand.uniform(procs)

    case open do
      %{^p => {id, op, arg}} ->
        {reg, result} = if op == :write, do: {arg, :ok}, else: {reg, reg}

        gen(left, procs, Map.delete(open, p), reg, next, [
          %{type: :ok, id: id, result: result} | acc
        ])

      _ when left == 0 ->
        gen(left, procs, open, reg, next, acc)

      _ ->
        {op, arg} = if :rand.uniform(2) == 1, do: {:write, next}, else: {:read, nil}
        event = %{type: :invoke, id: next, process: p, op: op, arg: arg}
        gen(left - 1, procs, Map.put(open, p, {next, op, arg}), reg, next + 1, [event | acc])
    end
  end

  # Best and median milliseconds of `rounds` checks of one history of `n` operations.
  def time(n, procs, rounds) do
    events = history(n, procs, n + procs)

    times =
      for _ <- 1..rounds do
        {us, :ok} = :timer.tc(fn -> Lockstep.Checker.check(events, Lockstep.Model.Register) end)
        us / 1000
      end
      |> Enum.sort()

    %{best: hd(times), median: Enum.at(times, div(length(times), 2))}
  end
end
