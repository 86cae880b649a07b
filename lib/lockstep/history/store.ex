defmodule Lockstep.History.Store do
  @moduledoc false
  # Where the histories of running iterations are recorded: one public ordered ETS table
  # for the VM, owned by a keeper process that never exits (managed processes come and go;
  # the records must outlive them until the owner checks them when the iteration ends).
  #
  # Rows, by iteration tag `tag` and history number `h`:
  #   {{tag, h, 0}, {:meta, model, initial, consistency}}  — made by History.new/1;
  #   {{tag, h, n}, event}                        n >= 1   — the records, in order;
  #   {{tag, h, :seq}, n}                                  — the last n;
  #   {{tag, h, :open, ref}, op}                           — operations not yet completed.
  # Keys of one iteration share the prefix `tag`, so taking them is a bounded select.

  @table __MODULE__

  @doc false
  # Makes the table if it does not exist yet (History.new/1 calls it, before its first row).
  def ensure do
    if :ets.whereis(@table) == :undefined, do: start()
    :ok
  end

  defp start do
    parent = self()
    ref = make_ref()

    {pid, monitor} =
      spawn_monitor(fn ->
        try do
          :ets.new(@table, [:named_table, :public, :ordered_set, write_concurrency: true])
        rescue
          # Another process made it first.
          ArgumentError -> exit(:normal)
        end

        send(parent, {ref, :ready})
        keep()
      end)

    receive do
      {^ref, :ready} -> Process.demonitor(monitor, [:flush])
      {:DOWN, ^monitor, :process, ^pid, _} -> :ok
    end
  end

  defp keep do
    receive do
      _ -> keep()
    end
  end

  def table, do: @table

  @doc false
  # A new history of iteration `tag`; returns its number.
  def new(tag, model, initial, consistency) do
    h = :erlang.unique_integer([:positive, :monotonic])
    :ets.insert(@table, {{tag, h, 0}, {:meta, model, initial, consistency}})
    h
  end

  @doc false
  def record(tag, h, event) do
    n = :ets.update_counter(@table, {tag, h, :seq}, 1, {{tag, h, :seq}, 0})
    :ets.insert(@table, {{tag, h, n}, event})
    :ok
  end

  @doc false
  def open(tag, h, ref, op), do: :ets.insert(@table, {{tag, h, :open, ref}, op})

  @doc false
  # The open operation `ref`, removed; nil if there is none.
  def close(tag, h, ref) do
    case :ets.take(@table, {tag, h, :open, ref}) do
      [{_, op}] -> op
      [] -> nil
    end
  end

  @doc false
  # Every history of iteration `tag`, oldest first, as `{meta, events}`; removes them.
  def take(tag) do
    if any?(tag), do: take_rows(tag), else: []
  end

  # Every iteration asks; most made no history. One step through the ordered table
  # answers that (`{tag, 0, 0}` sorts just before the iteration's first row, history
  # numbers being positive), where a select would cost a match spec each time.
  defp any?(tag) do
    :ets.whereis(@table) != :undefined and match?({^tag, _, _}, :ets.next(@table, {tag, 0, 0}))
  end

  defp take_rows(tag) do
    case :ets.whereis(@table) do
      :undefined ->
        []

      _ ->
        rows = :ets.select(@table, [{{{tag, :_, :_}, :_}, [], [:"$_"]}])
        drop(tag)

        rows
        |> Enum.group_by(fn {{_, h, _}, _} -> h end)
        |> Enum.sort()
        |> Enum.flat_map(fn {_h, rows} ->
          case Enum.sort_by(rows, fn {{_, _, n}, _} -> n end) do
            [{{_, _, 0}, meta} | events] ->
              [{meta, for({{_, _, n}, e} <- events, is_integer(n), do: e)}]

            _ ->
              []
          end
        end)
    end
  end

  @doc false
  # Forgets iteration `tag`'s histories (its owner died before checking them).
  def drop(tag) do
    if any?(tag) do
      :ets.select_delete(@table, [{{{tag, :_, :_}, :_}, [], [true]}])
      :ets.select_delete(@table, [{{{tag, :_, :_, :_}, :_}, [], [true]}])
    end

    :ok
  end
end
