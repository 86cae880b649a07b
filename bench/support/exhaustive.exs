defmodule Bench.Exhaustive do
  @moduledoc false
  # Section 9 of `make bench`: interleavings per second of exhaustive search (issue 13) on
  # the programs the literature counts — one ETS writer and N readers of one key (2^N
  # traces under optimal DPOR) and the two-client get/put counter — under each `dpor:`.

  alias Lockstep.Examples.CounterRace

  @doc "The N-readers body over a table that outlives the run."
  def readers(tab, n) do
    fn ->
      for _ <- 1..n, do: Lockstep.spawn(fn -> Lockstep.ETS.lookup(tab, :k) end)
      Lockstep.spawn(fn -> Lockstep.ETS.insert(tab, {:k, 1}) end)
    end
  end

  @doc "The two-client counter: get/put (racy, the first bug ends the search) or atomic."
  def counter(kind), do: CounterRace.test_body(kind)

  @doc """
  Runs `body` to the end of its tree under `dpor`; `{interleavings, µs, complete?}`
  (interleavings up to and including the first bug, if any).
  """
  def explore(body, dpor, workers \\ 1) do
    opts = [strategy: {:exhaustive, dpor: dpor}, name: "bench_exhaustive", workers: workers]
    started = System.monotonic_time(:microsecond)

    {n, complete} =
      ExUnit.CaptureIO.with_io(fn ->
        case Lockstep.check(body, opts) do
          {:ok, s} -> {s.iterations, s.complete}
          {:error, %Lockstep.BugFound{iteration: i}} -> {i, false}
        end
      end)
      |> elem(0)

    {n, System.monotonic_time(:microsecond) - started, complete}
  end
end
