defmodule Lockstep.TestSupport.AliasServer do
  @moduledoc false
  # A server that answers `GenServer.call` requests by hand, as `:gen.reply/2` does (a
  # send to the caller's reply alias), or with the same send made at once through
  # `Lockstep.Runtime.send_to/2`: run instrumented, the two must take the same steps.

  def start(reply_with), do: spawn(fn -> loop(reply_with, 0) end)

  defp loop(reply_with, n) do
    receive do
      {:"$gen_call", {_pid, [:alias | ref] = tag}, :bump} ->
        reply(reply_with, ref, {tag, n + 1})
        loop(reply_with, n + 1)

      {:"$gen_call", {_pid, [:alias | ref] = tag}, {:pending, to}} ->
        reply(reply_with, ref, {tag, n})
        # what the reply left for the next sync point
        send(to, {:pending, Process.get(:"$lockstep_pending")})
        loop(reply_with, n)
    end
  end

  defp reply(:send, ref, msg), do: send(ref, msg)
  defp reply(:at_once, ref, msg), do: Lockstep.Runtime.send_to(ref, msg)
end
