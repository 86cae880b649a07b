defmodule Lockstep.Examples do
  @moduledoc """
  The bundled examples: `Lockstep.Examples.BankAccount` (what `make demo` runs: a plain
  `use GenServer` account, tested unmodified) and `Lockstep.Examples.CounterRace` (a counter
  written against Lockstep's API).
  """

  @doc """
  Searches `racy` with `opts` and prints the report of the bug it must find, then runs
  `fixed` with the same options and prints that it passes. Halts the VM with status 1 if
  the racy body passes: the demo expected a bug.
  """
  @spec demo(String.t(), {Lockstep.body(), String.t(), Lockstep.body()}, keyword()) :: :ok
  def demo(intro, {racy, fixed_title, fixed}, opts) do
    IO.puts(intro)

    case Lockstep.check(racy, opts) do
      {:error, bug} ->
        IO.puts(Exception.message(bug))
        IO.puts("\n" <> fixed_title)
        summary = Lockstep.run(fixed, Keyword.update!(opts, :name, &(&1 <> "_fixed")))

        IO.puts(
          "  #{summary.iterations} iterations, #{summary.distinct_schedules} distinct schedules, " <>
            "no bug (#{div(summary.elapsed_us, 1000)} ms)"
        )

        :ok

      {:ok, summary} ->
        IO.puts("No bug found in #{summary.iterations} iterations — the demo expected one.")
        System.halt(1)
    end
  end
end
