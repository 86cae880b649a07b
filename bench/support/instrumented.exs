defmodule Bench.Instrumented do
  @moduledoc false
  # The cost of instrumentation (issue 11's bench): the same ping-pong code compiled twice,
  # once plain and once instrumented (`use Lockstep.Instrumented`), timed
  #
  #   * outside a run, where the instrumented copy must cost what the plain one does (one
  #     process-dictionary look-up per operation; target: within 10 %), and
  #   * inside a run, where its hop is a Lockstep hop and should cost what a hop written
  #     against the Lockstep API costs.

  alias Bench.Timing

  defmacro ping_pong_code do
    quote do
      def echo do
        receive do
          {:ping, from} ->
            send(from, :pong)
            echo()

          :stop ->
            :ok
        end
      end

      def loop(_echo, 0), do: :ok

      def loop(echo, n) do
        send(echo, {:ping, self()})

        receive do
          :pong -> loop(echo, n - 1)
        end
      end
    end
  end

  # Outside a run: `module`'s echo and loop in plain processes.
  def outside(module, hops) do
    Timing.isolated(fn ->
      echo = spawn(module, :echo, [])
      module.loop(echo, 1)
      cs0 = Timing.context_switches()
      t0 = Timing.now_ns()
      module.loop(echo, div(hops, 2))
      t1 = Timing.now_ns()
      cs1 = Timing.context_switches()
      send(echo, :stop)
      %{ns: t1 - t0, hops: div(hops, 2) * 2, cs: cs1 - cs0}
    end)
  end

  # Inside a run: the instrumented echo and loop as the run's two managed processes.
  def inside(module, hops) do
    me = self()
    ref = make_ref()

    root = fn ->
      echo = Lockstep.spawn(fn -> module.echo() end)
      module.loop(echo, 1)
      cs0 = Timing.context_switches()
      t0 = Timing.now_ns()
      module.loop(echo, div(hops, 2))
      t1 = Timing.now_ns()
      cs1 = Timing.context_switches()
      Lockstep.send(echo, :stop)
      Kernel.send(me, {ref, %{ns: t1 - t0, hops: div(hops, 2) * 2, cs: cs1 - cs0}})
    end

    Lockstep.run(root,
      iterations: 1,
      strategy: :random,
      seed: 2026,
      max_steps: 10_000_000,
      timeout: 60_000
    )

    receive do
      {^ref, result} -> result
    end
  end
end

defmodule Bench.Instrumented.Plain do
  @moduledoc false
  require Bench.Instrumented
  Bench.Instrumented.ping_pong_code()
end

defmodule Bench.Instrumented.Rewritten do
  @moduledoc false
  use Lockstep.Instrumented
  require Bench.Instrumented
  Bench.Instrumented.ping_pong_code()
end
