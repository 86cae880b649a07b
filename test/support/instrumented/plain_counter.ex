defmodule Lockstep.TestSupport.PlainCounter do
  @moduledoc false
  # A counter server written with nothing but spawn, send and receive, and a client that
  # reads then writes: the lost update of a get/put protocol.

  def start(value), do: spawn(fn -> loop(value) end)

  def loop(value) do
    receive do
      {:get, from} ->
        send(from, {:value, value})
        loop(value)

      {:put, new} ->
        loop(new)

      {:stop, from} ->
        send(from, {:stopped, value})
    end
  end

  def increment(counter) do
    send(counter, {:get, self()})

    receive do
      {:value, value} -> send(counter, {:put, value + 1})
    end
  end

  # Reads the value, then fails: its stack trace must point at this file.
  def crash_after_reply(counter) do
    send(counter, {:get, self()})

    receive do
      {:value, value} -> raise "crashed after reading #{value}"
    end
  end

  def value(counter) do
    send(counter, {:stop, self()})

    receive do
      {:stopped, value} -> value
    after
      1_000 -> :timeout
    end
  end
end
