defmodule Lockstep.TestSupport.PlainPingPong do
  @moduledoc false
  # Two processes bouncing a message with nothing but spawn, send and receive: under
  # instrumentation their hops are forced and relayed (test/lockstep/relay_test.exs). The
  # echo side may do something else between taking a message and answering it, chosen by
  # `twist` (relay_review_test.exs).

  # The values the echo answered, 2 * i for the i-th ping.
  def run(rounds, twist \\ :none) do
    me = self()
    peer = spawn(fn -> echo(me, twist) end)
    values = for i <- 1..rounds, do: bounce(peer, i)
    send(peer, :stop)
    values
  end

  defp bounce(peer, i) do
    send(peer, {:ping, i})

    receive do
      {:pong, j} -> j
    end
  end

  defp echo(parent, twist) do
    receive do
      {:ping, i} ->
        twist(twist, i)
        send(parent, {:pong, i * 2})
        echo(parent, twist)

      :stop ->
        :ok
    end
  end

  defp twist(:none, _i), do: :ok
  # a receive with `after 0` that finds nothing: a sync point of its own
  defp twist(:after0, _i), do: receive(do: (:never -> :ok), after: (0 -> :ok))
  defp twist(:yield, _i), do: :erlang.yield()
  defp twist(:time, _i), do: System.monotonic_time()
  defp twist(:self_send, i), do: send(self(), {:self, i}) && receive(do: ({:self, ^i} -> :ok))
  defp twist(:rand, i) when rem(i, 3) == 0, do: :rand.uniform(2)
  defp twist(:rand, _i), do: :ok
end
