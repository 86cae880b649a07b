defmodule Lockstep.Progress do
  @moduledoc false
  # A live progress line for long runs on a terminal (iterations done/total, rate,
  # distinct schedules, elapsed). Silent off a terminal and under CI.

  @key :"$lockstep_progress"
  @delay_ms 2_000
  @every_ms 250

  def start(cfg) do
    if enabled?() do
      now = now()
      Process.put(@key, %{total: cfg.iterations, started: now, last: now, shown: false})
    end
  end

  def tick(done, stats) do
    case Process.get(@key) do
      nil ->
        :ok

      state ->
        now = now()

        if now - state.started >= @delay_ms and now - state.last >= @every_ms do
          secs = max(now - state.started, 1) / 1000
          rate = round(done / secs)

          schedules =
            case stats do
              # An exhaustive search: how deep the tree still to explore reaches.
              %{search: %{depth: depth}} -> "#{depth} decisions on the stack  "
              %{fingerprints: seen} -> "#{MapSet.size(seen)} schedules  "
              %{workers: n} -> "#{n} workers  "
            end

          total = if state.total == :infinity, do: "", else: "/#{state.total}"
          what = if Map.get(stats, :search), do: "interleavings", else: "iterations"

          IO.write(
            :stderr,
            "\r\e[2K  lockstep: #{done}#{total} #{what}  #{rate}/s  " <>
              "#{schedules}#{Float.round(secs, 1)}s"
          )

          Process.put(@key, %{state | last: now, shown: true})
        end
    end
  end

  def stop do
    case Process.delete(@key) do
      %{shown: true} -> IO.write(:stderr, "\r\e[2K")
      _ -> :ok
    end
  end

  defp enabled? do
    IO.ANSI.enabled?() and System.get_env("CI") in [nil, "", "false"]
  end

  defp now, do: System.monotonic_time(:millisecond)
end
