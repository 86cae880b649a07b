defmodule Lockstep.Examples.CounterRace do
  @moduledoc """
  The bundled racy example `make demo` runs: two clients increment a counter process with
  get-then-put, so one increment can be lost when both read before either writes.
  """

  require Lockstep

  @doc "A counter process: `{:get, from}` replies `{:value, n}`; `{:put, n}` stores n."
  def counter(value) do
    Lockstep.receive do
      {:get, from} ->
        Lockstep.send(from, {:value, value})
        counter(value)

      {:put, new_value} ->
        counter(new_value)

      {:incr, from} ->
        Lockstep.send(from, {:value, value + 1})
        counter(value + 1)
    end
  end

  @doc "A client that reads the value and writes it back plus one: the race."
  def racy_client(counter, parent) do
    Lockstep.send(counter, {:get, self()})

    value =
      Lockstep.receive do
        {:value, v} -> v
      end

    Lockstep.send(counter, {:put, value + 1})
    Lockstep.send(parent, :done)
  end

  @doc "A client that asks the counter to increment atomically: no race."
  def atomic_client(counter, parent) do
    Lockstep.send(counter, {:incr, self()})

    Lockstep.receive do
      {:value, _} -> :ok
    end

    Lockstep.send(parent, :done)
  end

  @doc """
  The test body: `clients` clients of the given kind, then the root checks the final count.
  """
  def test_body(kind, clients \\ 2) do
    fn ->
      counter = Lockstep.spawn(fn -> counter(0) end)
      parent = self()

      for _ <- 1..clients do
        Lockstep.spawn(fn ->
          case kind do
            :racy -> racy_client(counter, parent)
            :atomic -> atomic_client(counter, parent)
          end
        end)
      end

      for _ <- 1..clients, do: Lockstep.receive(do: (:done -> :ok))

      Lockstep.send(counter, {:get, self()})

      final =
        Lockstep.receive do
          {:value, v} -> v
        end

      if final != clients do
        raise "lost update: #{clients} clients incremented the counter but it reads #{final}"
      end

      :ok
    end
  end

  @doc "The racy test body itself, as a named function: `mix lockstep.replay PATH --run` takes it."
  def racy, do: test_body(:racy).()

  @doc "The fixed test body."
  def atomic, do: test_body(:atomic).()

  @doc "Runs the racy example under Lockstep and prints the report."
  def demo do
    Lockstep.Examples.demo(
      "Running two get-then-put clients against a counter under Lockstep (strategy :pct)…\n",
      {&__MODULE__.racy/0, "The atomic version ({:incr, from}) passes the same search:",
       &__MODULE__.atomic/0},
      iterations: 500,
      name: "counter_race_demo",
      seed: 2026
    )
  end
end
