defmodule Bench.Timing do
  @moduledoc false
  # Small timing helpers shared by the benchmark scripts.

  @doc "Nanoseconds on the monotonic clock."
  def now_ns, do: System.monotonic_time(:nanosecond)

  @doc "Runs `fun` `rounds` times; `fun` returns a measurement (lower is better). Returns all."
  def rounds(rounds, fun) when rounds > 0 do
    for _ <- 1..rounds, do: fun.()
  end

  def best(samples), do: Enum.min(samples)

  def median(samples) do
    sorted = Enum.sort(samples)
    n = length(sorted)

    if rem(n, 2) == 1 do
      Enum.at(sorted, div(n, 2))
    else
      (Enum.at(sorted, div(n, 2) - 1) + Enum.at(sorted, div(n, 2))) / 2
    end
  end

  @doc "Runs `fun` in a fresh process (own heap, no leftovers in our mailbox) and returns its result."
  def isolated(fun) do
    parent = self()
    ref = make_ref()

    {pid, mon} =
      spawn_monitor(fn ->
        Kernel.send(parent, {ref, fun.()})
      end)

    receive do
      {^ref, result} ->
        receive do
          {:DOWN, ^mon, :process, ^pid, _} -> :ok
        end

        result

      {:DOWN, ^mon, :process, ^pid, reason} ->
        raise "benchmark process died: #{inspect(reason)}"
    end
  end

  @doc "BEAM context switches so far (all schedulers)."
  @doc "Nanoseconds the VM's threads have run so far (Linux: /proc/self/task/*/schedstat)."
  def thread_ns do
    {:ok, tasks} = File.ls("/proc/self/task")

    Enum.reduce(tasks, 0, fn task, acc ->
      case File.read("/proc/self/task/#{task}/schedstat") do
        {:ok, line} -> acc + (line |> String.split() |> hd() |> String.to_integer())
        _ -> acc
      end
    end)
  end

  def context_switches do
    {n, 0} = :erlang.statistics(:context_switches)
    n
  end
end
