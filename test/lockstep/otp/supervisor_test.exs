defmodule Lockstep.Otp.SupervisorTest do
  # The real Supervisor and DynamicSupervisor under control (SPEC §9 "OTP comes along"):
  # each program runs once under plain OTP 25 and then under Lockstep, and both must agree.
  use Lockstep.Test, async: true

  alias Lockstep.OtpCompare
  alias Lockstep.OtpSup.{Client, Stash}

  @moduletag :capture_log
  @app [Stash, Client]

  defp agree(fun, opts \\ []) do
    opts = Keyword.merge([iterations: 30, instrument: @app], opts)
    {plain, controlled} = OtpCompare.both(fun, opts)
    assert controlled == [plain]
    plain
  end

  defp started(ids) do
    for id <- ids do
      receive do
        {:started, ^id, pid} -> pid
      after
        5_000 -> raise "#{inspect(id)} not started"
      end
    end
  end

  defp children(ids, extra \\ []) do
    for id <- ids, do: {Stash, [id: id, name: id, notify: self()] ++ extra}
  end

  # Crashes `victim` and returns, per child, whether it is the same process afterwards, and
  # the order in which the restarted ones started.
  defp crash_and_compare(strategy) do
    ids = [:sa, :sb, :sc]
    {:ok, sup} = Supervisor.start_link(children(ids), strategy: strategy)
    before = Map.new(Enum.zip(ids, started(ids)))
    Process.exit(before[:sb], :kill)

    restarted =
      case strategy do
        :one_for_one -> [:sb]
        :one_for_all -> ids
        :rest_for_one -> [:sb, :sc]
      end

    order = for _ <- restarted, do: receive(do: ({:started, id, _} -> id))

    same =
      for {id, pid, :worker, [Stash]} <- Supervisor.which_children(sup),
          do: {id, pid == before[id]}

    Supervisor.stop(sup)
    {order, Enum.sort(same)}
  end

  describe "restart strategies" do
    test "one_for_one restarts the crashed child only" do
      assert {[:sb], [sa: true, sb: false, sc: true]} =
               agree(fn -> crash_and_compare(:one_for_one) end) |> elem(1)
    end

    test "one_for_all restarts every child, in start order" do
      assert {:ok, {[:sa, :sb, :sc], [sa: false, sb: false, sc: false]}} =
               agree(fn -> crash_and_compare(:one_for_all) end)
    end

    test "rest_for_one restarts the crashed child and those started after it" do
      assert {:ok, {[:sb, :sc], [sa: true, sb: false, sc: false]}} =
               agree(fn -> crash_and_compare(:rest_for_one) end)
    end
  end
end
