defmodule Lockstep.StderrQuietTest do
  # Not async: capture_io(:stderr) captures the whole VM's standard error, so a warning
  # printed by an async test meanwhile would land in this test's output.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  test "no progress line off a terminal" do
    output =
      capture_io(:stderr, fn ->
        Lockstep.run(fn -> Lockstep.yield() end, iterations: 50, seed: 5)
      end)

    assert output == ""
  end
end
