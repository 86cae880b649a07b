defmodule Lockstep.OtpCompare do
  @moduledoc false
  # Runs one program under plain OTP 25 and under Lockstep and hands back what it returned
  # (or how it failed), pids renamed by first appearance, so a test can assert that the
  # real Supervisor, Registry or Task behave the same under control as on the raw BEAM.
  # This module is instrumented with the program, so its sends are plain `send/2`.

  alias Lockstep.TestSupport

  @doc "The outcome of `fun` in a fresh unmanaged process: `{:ok, value}` or `{kind, reason}`."
  def plain(fun, wait \\ 30_000) do
    me = self()
    tag = make_ref()
    {pid, ref} = spawn_monitor(fn -> send(me, {tag, outcome(fun)}) end)

    receive do
      {^tag, result} ->
        Process.demonitor(ref, [:flush])
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
end
