defmodule Lockstep.SmokeTest do
  use ExUnit.Case, async: true
  require Lockstep

  test "a trivial run passes" do
    summary = Lockstep.run(fn -> :ok end, iterations: 3)
    assert summary.iterations == 3
  end
end
