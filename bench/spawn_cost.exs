# What one managed process costs: a root that spawns k children which return at once,
# under Lockstep (`:pct`) and on the raw BEAM (a bound root that spawns k bound children
# and waits for the last), per iteration, in wall-clock and CPU time, with the BEAM's
# context switches per iteration. The slope over k is the per-process cost; k = 0 is the
# fixed cost of an iteration. Also the 8-reader exhaustive program (10 processes) under
# `:exhaustive` and `:random`, whose rate is bounded by that per-process cost.
#
#   MIX_ENV=prod elixir --erl "+sbwt none +sbwtdcpu none +sbwtdio none" -S mix run bench/spawn_cost.exs
#
# Not part of `make bench`. CPU time is the VM threads' (`/proc/self/task/*/schedstat`,
# Linux), which a loaded machine inflates far less than the wall clock; busy-waiting is
# turned off above so that idle schedulers' spinning is not counted. Compare two trees
# by alternating runs in the same minutes. Knob: BENCH_ROUNDS (7).

Code.require_file("support/timing.exs", __DIR__)
Code.require_file("support/exhaustive.exs", __DIR__)

defmodule Bench.SpawnCost do
  @rounds String.to_integer(System.get_env("BENCH_ROUNDS", "7"))

  def main do
    IO.puts(
      "\nPer-process cost, best of #{@rounds} (µs per iteration; cs: BEAM context switches per iteration)\n"
    )

    IO.puts("| body | Lockstep :pct wall | CPU | cs | raw BEAM wall | CPU | cs |")
    IO.puts("|---|---|---|---|---|---|---|")

    for k <- [0, 1, 10, 40] do
      n = div(40_000, k + 4)
      body = fn -> for _ <- 1..k//1, do: Lockstep.spawn(fn -> :ok end) end
      lockstep = measure(n, fn -> Lockstep.run(body, iterations: n, strategy: :pct, seed: 1) end)
      raw = measure(n, fn -> raw(k, n) end)
      IO.puts("| root spawning #{k} | #{row(lockstep)} | #{row(raw)} |")
    end

    tab = :ets.new(:bench_spawn_cost, [:public, :set])
    readers = Bench.Exhaustive.readers(tab, 8)
    opts = [strategy: {:exhaustive, dpor: :optimal}, name: "bench_spawn_cost"]

    exhaustive =
      measure(256, fn -> ExUnit.CaptureIO.capture_io(fn -> Lockstep.check(readers, opts) end) end)

    random =
      measure(1_000, fn -> Lockstep.check(readers, strategy: :random, iterations: 1_000) end)

    IO.puts("\n| 1 ETS writer + 8 readers | wall | CPU | cs |")
    IO.puts("|---|---|---|---|")
    IO.puts("| `:exhaustive` (256 interleavings) | #{row(exhaustive)} |")
    IO.puts("| `:random` (1,000 iterations) | #{row(random)} |")
    IO.puts("")
  end

  # The raw protocol: the root and its children bound to the caller's scheduler, as
  # Lockstep binds a run's processes; the caller waits for the root's end.
  defp raw(k, n) do
    me = self()

    for _ <- 1..n do
      s = :erlang.system_info(:scheduler_id)

      {_root, ref} =
        :erlang.spawn_opt(
          fn -> for _ <- 1..k//1, do: :erlang.spawn_opt(fn -> :ok end, [{:scheduler, s}]) end,
          [:monitor, {:scheduler, s}]
        )

      receive do
        {:DOWN, ^ref, :process, _, _} -> :ok
      end
    end

    _ = me
    :ok
  end

  defp measure(n, fun) do
    fun.()

    Enum.min(
      for _ <- 1..@rounds do
        {cs0, _} = :erlang.statistics(:context_switches)
        c0 = Bench.Timing.thread_ns()
        w0 = System.monotonic_time(:nanosecond)
        fun.()
        w = System.monotonic_time(:nanosecond) - w0
        c = Bench.Timing.thread_ns() - c0
        {cs1, _} = :erlang.statistics(:context_switches)
        {w / n / 1000, c / n / 1000, (cs1 - cs0) / n}
      end
    )
  end

  defp row({wall, cpu, cs}), do: "#{f(wall)} | #{f(cpu)} | #{f(cs)}"

  defp f(x), do: :erlang.float_to_binary(x / 1, decimals: 1)
end

Bench.SpawnCost.main()
