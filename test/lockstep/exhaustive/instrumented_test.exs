defmodule Lockstep.Exhaustive.InstrumentedTest do
  # Exhaustive search over unmodified code: the test module is instrumented, so plain
  # `spawn`, `send`, `receive` and `:ets` are its sync points.
  use Lockstep.Test, strategy: :exhaustive, async: true

  test "one writer and N readers of one key through plain :ets: 2^N interleavings" do
    tab = :ets.new(:instrumented_readers, [:public])
    :ets.insert(tab, {:k, 0})

    for n <- 2..5 do
      summary =
        Lockstep.run(
          fn ->
            for _ <- 1..n, do: spawn(fn -> :ets.lookup(tab, :k) end)
            spawn(fn -> :ets.insert(tab, {:k, 1}) end)
          end,
          strategy: :exhaustive
        )

      assert {n, summary.iterations, summary.complete, summary.sleep_blocked} ==
               {n, Integer.pow(2, n), true, 0}
    end
  end

  test "a lost update through a plain server is found, and the one-message version verified" do
    racy = fn ->
      counter = spawn(fn -> server(0) end)
      me = self()

      for _ <- 1..2 do
        spawn(fn ->
          send(counter, {:get, self()})
          receive(do: ({:value, v} -> send(counter, {:put, v + 1})))
          send(me, :done)
        end)
      end

      receive(do: (:done -> :ok))
      receive(do: (:done -> :ok))
      send(counter, {:get, me})
      receive(do: ({:value, v} -> if(v != 2, do: raise("lost update: #{v}"))))
    end

    atomic = fn ->
      counter = spawn(fn -> server(0) end)
      me = self()

      for _ <- 1..2 do
        spawn(fn ->
          send(counter, :incr)
          send(me, :done)
        end)
      end

      receive(do: (:done -> :ok))
      receive(do: (:done -> :ok))
      send(counter, {:get, me})
      receive(do: ({:value, v} -> if(v != 2, do: raise("lost update: #{v}"))))
    end

    assert {:error, %Lockstep.BugFound{kind: :exception}} =
             Lockstep.check(racy, strategy: :exhaustive)

    assert {:ok, %Lockstep.Summary{complete: true}} =
             Lockstep.check(atomic, strategy: :exhaustive)
  end

  ctest "a ctest body is verified: all its interleavings explored" do
    me = self()
    for i <- 1..2, do: spawn(fn -> send(me, i) end)
    a = receive(do: (x -> x))
    b = receive(do: (x -> x))
    assert Enum.sort([a, b]) == [1, 2]
  end

  def server(value) do
    receive do
      {:get, from} ->
        send(from, {:value, value})
        server(value)

      {:put, new} ->
        server(new)

      :incr ->
        server(value + 1)
    end
  end
end
