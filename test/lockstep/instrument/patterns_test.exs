defmodule Lockstep.Instrument.PatternsTest do
  # The classic bugs of plain processes (test/support/erlang/ls_patterns.erl and
  # test/support/instrumented/plain_counter.ex), run unmodified under `:instrument`: each
  # bug is found with the default options, and its fixed version passes 1,000 iterations.
  use ExUnit.Case, async: true

  @instrument [instrument: [:ls_patterns]]

  # {scenario, the failure kind it must be found as, extra options}
  @bugs [
    {:whereis_register, :crash, []},
    {:lost_update, :exception, []},
    {:ets_lost_update, :exception, []},
    {:call_cycle, :deadlock, []},
    {:stale_down, :exception, []},
    {:cancel_timer_ignored, :exception, []},
    {:cross_sender_order, :exception, [delivery: :delayed]},
    {:send_before_register, :exception, []},
    {:trap_exit_late, :exception, [crash: :ignore]},
    {:request_to_exiting_server, :deadlock, []},
    {:named_table_twice, :crash, []}
  ]

  for {scenario, kind, opts} <- @bugs do
    @tag scenario: scenario, kind: kind, opts: opts
    test "#{scenario}: found, and its fix passes 1,000 iterations", ctx do
      fixed = :"#{ctx.scenario}_fixed"
      opts = @instrument ++ ctx.opts

      assert {:error, %Lockstep.BugFound{kind: kind} = bug} =
               Lockstep.check(
                 fn -> apply(:ls_patterns, ctx.scenario, []) end,
                 opts ++ [iterations: 1_000]
               )

      assert kind == ctx.kind, Exception.message(bug)

      assert {:ok, summary} =
               Lockstep.check(
                 fn -> apply(:ls_patterns, fixed, []) end,
                 opts ++ [iterations: 1_000]
               )

      assert summary.iterations == 1_000
    end
  end
end
