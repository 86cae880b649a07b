defmodule Lockstep.TestSupport.PlainPingPong do
  @moduledoc false
  # Two processes bouncing a message with nothing but spawn, send and receive: under
  # instrumentation their hops are forced and relayed (see test/lockstep/relay_test.exs).

  def run(rounds) do
    me = self()
    peer = spawn(fn -> echo(me) end)
    values = for i <- 1..rounds, do: bounce(peer, i)
    send(peer, :stop)
    Enum.sum(values)
  end

  defp bounce(peer, i) do
    send(peer, {:ping, i})

    receive do
      {:pong, j} -> j
    end
  end

  defp echo(parent) do
    receive do
      {:ping, i} ->
        send(parent, {:pong, i * 2})
        echo(parent)

      :stop ->
        :ok
    end
  end
end
