defmodule Lockstep.OtpEts.Limiter do
  @moduledoc false
  # Plain application code: a fixed-window rate limiter on a named public ETS table owned
  # by a GenServer (as an application would start it in its tree). Callers count their own
  # hits in the table: `hit/3` looks the window's count up, then inserts the count plus one
  # (two callers that look up together both insert 1: a hit is lost and the limit leaks);
  # `hit_atomic/3` is the fix, one `update_counter/4`.
  use GenServer

  @table :lockstep_limiter_hits

  def start_link(opts \\ []), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(_opts) do
    :ets.new(@table, [:named_table, :public, :set, write_concurrency: true])
    {:ok, nil}
  end

  def hit(key, limit, window_ms) do
    slot = {key, window(window_ms)}

    case :ets.lookup(@table, slot) do
      [] ->
        :ets.insert(@table, {slot, 1})
        :ok

      [{^slot, count}] when count < limit ->
        :ets.insert(@table, {slot, count + 1})
        :ok

      [_] ->
        {:error, :rate_limited}
    end
  end

  def hit_atomic(key, limit, window_ms) do
    slot = {key, window(window_ms)}

    if :ets.update_counter(@table, slot, {2, 1}, {slot, 0}) <= limit,
      do: :ok,
      else: {:error, :rate_limited}
  end

  defp window(window_ms), do: div(System.system_time(:millisecond), window_ms)
end
