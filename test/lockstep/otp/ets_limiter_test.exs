defmodule Lockstep.Otp.EtsLimiterTest do
  # The issue's ETS fixed-window limiter, plain application code: its named table is
  # created by a managed GenServer and hit by managed callers.
  use Lockstep.Test, async: true

  alias Lockstep.OtpCompare
  alias Lockstep.OtpEts.Limiter

  @app [Limiter]

  defp burst(hit) do
    fn ->
      {:ok, _} = Limiter.start_link()
      me = self()
      for _ <- 1..3, do: spawn(fn -> send(me, {:hit, hit.("alice", 2, 1_000)}) end)
      results = for _ <- 1..3, do: receive(do: ({:hit, r} -> r))
      assert Enum.count(results, &(&1 == :ok)) == 2
    end
  end

  test "sequential hits: the limit holds within a window and resets in the next, as on plain OTP" do
    for hit <- [&Limiter.hit/3, &Limiter.hit_atomic/3] do
      body = fn ->
        {:ok, _} = Limiter.start_link()
        # Start at the beginning of a window, so the three hits share it.
        Process.sleep(200 - rem(System.system_time(:millisecond), 200))
        first = for _ <- 1..3, do: hit.("bob", 2, 200)
        Process.sleep(200)
        {first, hit.("bob", 2, 200)}
      end

      {plain, controlled} = OtpCompare.both(body, iterations: 20, instrument: @app)
      assert plain == {:ok, {[:ok, :ok, {:error, :rate_limited}], :ok}}
      assert controlled == [plain]
    end
  end

  test "lookup-then-insert lets a concurrent burst past the limit (found)" do
    bug =
      OtpCompare.assert_deterministic_bug(burst(&Limiter.hit/3),
        iterations: 1_000,
        instrument: @app
      )

    assert bug.kind == :exception
    assert {:error, %ExUnit.AssertionError{}, _} = bug.reason
  end

  test "every strategy finds the lost hit" do
    for strategy <- [:pct, :random, :pos, :fair_pct, :idpct] do
      assert {:error, %Lockstep.BugFound{}} =
               Lockstep.check(burst(&Limiter.hit/3),
                 strategy: strategy,
                 iterations: 200,
                 seed: 7,
                 instrument: @app
               ),
             "#{strategy} missed it"
    end
  end

  test "update_counter/4 holds the limit in 1,000 iterations" do
    assert %Lockstep.Summary{iterations: 1_000} =
             Lockstep.run(burst(&Limiter.hit_atomic/3), iterations: 1_000, instrument: @app)
  end
end
