defmodule Lockstep.Instrument.CtestPlainTest do
  use Lockstep.Test, iterations: 200, async: true

  # A ctest body with plain spawn, send and receive: the test module is instrumented.
  test "the test module is instrumented" do
    assert Lockstep.Instrument.instrumented?(__MODULE__)
  end

  ctest "plain messages are ordered per pair under :instant delivery" do
    me = self()
    pid = spawn(fn -> receive(do: ({:hello, from} -> send(from, :world))) end)
    send(pid, {:hello, me})

    receive do
      :world -> :ok
    after
      100 -> flunk("no reply")
    end
  end

  test "a lost update through a plain server is found" do
    body = fn ->
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
      receive(do: ({:value, v} -> assert v == 2))
    end

    assert {:error, %Lockstep.BugFound{kind: :exception}} =
             Lockstep.check(body, iterations: 300, strategy: :random)
  end

  def server(value) do
    receive do
      {:get, from} ->
        send(from, {:value, value})
        server(value)

      {:put, new} ->
        server(new)
    end
  end
end
