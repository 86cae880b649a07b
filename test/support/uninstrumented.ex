defmodule UninstrumentedHelpers do
  @moduledoc false
  # Plain Elixir, deliberately not written against Lockstep's API nor instrumented: what
  # "No silent pass" (SPEC §9) must notice when managed processes call it.

  # A helper started with Kernel.spawn sends its answer with a plain send, and the answer
  # is taken with a bare receive; the helper also says goodbye, which no one takes.
  def ask(n) do
    me = self()

    spawn(fn ->
      send(me, {:answer, n * 2})
      send(me, {:bye, n})
    end)

    receive do
      {:answer, x} -> x
    end
  end

  # A linked worker started outside Lockstep (Kernel.spawn_link in code that is not
  # instrumented), answering with a plain send taken by a bare receive. (OTP's Task is
  # instrumented along with any :instrument list, so a Task would be managed.)
  def double(n) do
    me = self()
    spawn_link(fn -> send(me, {:double, n * 2}) end)

    receive do
      {:double, x} -> x
    end
  end

  # A linked worker that says it started (plain send, bare receive), then waits for ever.
  def start_task do
    me = self()

    worker =
      spawn_link(fn ->
        send(me, :started)

        receive do
          :never -> :ok
        end
      end)

    receive do
      :started -> worker
    end
  end

  # A linked helper that waits for a :stop that never comes.
  def start_helper do
    spawn_link(fn ->
      receive do
        :stop -> :ok
      end
    end)
  end
end
