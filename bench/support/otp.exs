defmodule Bench.OTP do
  @moduledoc false
  # Real OTP under control (issue 12's bench):
  #
  #   * a real GenServer.call round trip (gen:call's alias, monitor and timer, the
  #     server's receive and reply) under Lockstep against the same call on the raw BEAM
  #     (target: <= 4x);
  #   * iterations/s of the account test (two clients withdraw through real calls);
  #   * the one-time cost of instrumenting OTP's modules, in fresh VMs: rewriting them
  #     (empty cache), then loading them from the disk cache.

  alias Bench.Timing

  # Fresh VMs, so that nothing is instrumented yet: `{cold_ms, cached_ms}`.
  def instrument_cost do
    dir =
      Path.join(System.tmp_dir!(), "lockstep_bench_cache_#{System.unique_integer([:positive])}")

    ebin = Path.join(:code.lib_dir(:lockstep), "ebin")

    code = ~S"""
    [dir] = System.argv()
    Application.put_env(:lockstep, :instrument_cache_dir, dir)
    {us, _} = :timer.tc(fn -> Lockstep.Instrument.instrument!(:otp) end)
    IO.puts("us=#{us}")
    """

    run = fn ->
      {out, 0} = System.cmd("elixir", ["-pa", ebin, "-e", code, "--", dir])
      [_, us] = Regex.run(~r/us=(\d+)/, out)
      String.to_integer(us) / 1000
    end

    try do
      cold = run.()
      cached = Enum.min(for _ <- 1..3, do: run.())
      {cold, cached}
    after
      File.rm_rf(dir)
    end
  end

  # µs per GenServer.call round trip on the raw BEAM.
  def raw_calls(calls) do
    Timing.isolated(fn ->
      {:ok, server} = Bench.OTP.Server.start_link(0)
      Bench.OTP.Server.calls(server, 100)
      t0 = Timing.now_ns()
      Bench.OTP.Server.calls(server, calls)
      t1 = Timing.now_ns()
      GenServer.stop(server)
      %{ns: t1 - t0, hops: calls}
    end)
  end

  # The same calls as one Lockstep iteration, timed inside the root.
  def lockstep_calls(calls, strategy) do
    me = self()
    ref = make_ref()

    root = fn ->
      {:ok, server} = Bench.OTP.Server.start_link(0)
      Bench.OTP.Server.calls(server, 100)
      t0 = :os.perf_counter(:nanosecond)
      Bench.OTP.Server.calls(server, calls)
      t1 = :os.perf_counter(:nanosecond)
      Kernel.send(me, {ref, %{ns: t1 - t0, hops: calls}})
    end

    Lockstep.run(root,
      iterations: 1,
      strategy: strategy,
      seed: 2026,
      max_steps: 100_000_000,
      timeout: 60_000
    )

    receive do
      {^ref, result} -> result
    end
  end

  # Iterations/s of the account test (its fixed version: every iteration runs to the end).
  def account(iterations) do
    t0 = Timing.now_ns()
    Lockstep.run(&Bench.OTP.Account.fixed_body/0, iterations: iterations, seed: 2026)
    t1 = Timing.now_ns()
    %{ns: t1 - t0, hops: iterations}
  end
end

defmodule Bench.OTP.Server do
  @moduledoc false
  use GenServer
  use Lockstep.Instrumented

  def start_link(n), do: GenServer.start_link(__MODULE__, n)

  def calls(_server, 0), do: :ok

  def calls(server, n) do
    _ = GenServer.call(server, :bump)
    calls(server, n - 1)
  end

  @impl true
  def init(n), do: {:ok, n}

  @impl true
  def handle_call(:bump, _from, n), do: {:reply, n + 1, n + 1}
end

defmodule Bench.OTP.Account do
  @moduledoc false
  # The account of test/support/otp/account.ex with the one-call withdraw.
  use GenServer
  use Lockstep.Instrumented

  def fixed_body do
    {:ok, account} = GenServer.start_link(__MODULE__, 100)
    parent = self()

    for _ <- 1..2,
        do: spawn(fn -> send(parent, {:done, GenServer.call(account, {:withdraw, 60})}) end)

    results = for _ <- 1..2, do: receive(do: ({:done, result} -> result))
    1 = Enum.count(results, &match?({:ok, _}, &1))
    40 = GenServer.call(account, :balance)
  end

  @impl true
  def init(balance), do: {:ok, balance}

  @impl true
  def handle_call(:balance, _from, balance), do: {:reply, balance, balance}

  def handle_call({:withdraw, amount}, _from, balance) when balance >= amount,
    do: {:reply, {:ok, balance - amount}, balance - amount}

  def handle_call({:withdraw, _}, _from, balance),
    do: {:reply, {:error, :insufficient_funds}, balance}
end
