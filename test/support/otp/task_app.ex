defmodule Lockstep.OtpTask.Fanout do
  @moduledoc false
  # Plain application code: fan work out with Task and collect it. Each job sleeps a while
  # (`unit` ms times n + 1 - i: longer for smaller inputs, so jobs finish in the reverse of their order) and counts, in
  # the public table `tab`, how many jobs run at once: `{{:seen, n}}` means n ran together.

  def squares(inputs, tab, opts) do
    {unit, opts} = Keyword.pop(opts, :unit, 20)

    inputs
    |> Task.async_stream(&job(&1, tab, length(inputs), unit), opts)
    |> Enum.to_list()
  end

  def squares_supervised(sup, inputs, tab, opts) do
    sup
    |> Task.Supervisor.async_stream_nolink(inputs, &job(&1, tab, length(inputs)), opts)
    |> Enum.to_list()
  end

  def new_table, do: :ets.new(:fanout, [:public, :set])

  def max_running(tab) do
    tab |> :ets.match({{:seen, :"$1"}}) |> List.flatten() |> Enum.max(fn -> 0 end)
  end

  def job(i, tab, n, unit \\ 20) do
    running = :ets.update_counter(tab, :running, 1, {:running, 0})
    :ets.insert(tab, {{:seen, running}})
    Process.sleep((n + 1 - i) * unit)
    :ets.update_counter(tab, :running, -1)
    i * i
  end
end
