defmodule Lockstep.OTP.InstrumentCacheTest do
  # The disk cache of instrumented modules (SPEC §9): a fresh VM that finds OTP's
  # instrumented modules under the cache directory loads them instead of rewriting them,
  # and an entry that does not check out (corrupt, or made for another original) is
  # instrumented again and replaced.
  use ExUnit.Case, async: true

  import Lockstep.TestSupport

  @moduletag timeout: 180_000

  @code ~S"""
  [dir] = System.argv()
  Application.put_env(:lockstep, :instrument_cache_dir, dir)
  {us, _} = :timer.tc(fn -> Lockstep.Instrument.instrument!(:otp) end)
  all = Enum.all?(Lockstep.Instrument.otp_modules(), &Lockstep.Instrument.instrumented?/1)
  # Instrumented OTP works, under control and outside.
  {:error, bug} = Lockstep.check(&Lockstep.TestSupport.OTP.Account.body/0,
    instrument: [Lockstep.TestSupport.OTP.Account])
  outside = Lockstep.TestSupport.OTP.Workload.run() == Lockstep.TestSupport.OTP.Workload.expected()
  IO.puts("ms=#{div(us, 1000)} all=#{all} found=#{bug.kind == :exception} outside=#{outside}")
  """

  defp fresh(dir) do
    ebin = Path.join(:code.lib_dir(:lockstep), "ebin")

    {output, 0} =
      System.cmd("elixir", ["-pa", ebin, "-e", @code, "--", dir], stderr_to_stdout: true)

    [_, ms] = Regex.run(~r/ms=(\d+) all=true found=true outside=true/, output) || flunk(output)
    String.to_integer(ms)
  end

  test "a second fresh VM loads OTP's instrumented modules from the cache" do
    dir = Path.join(tmp_dir!(), "instrumented")
    cold = fresh(dir)
    entries = File.ls!(dir)

    for module <- Lockstep.Instrument.otp_modules() do
      assert Enum.any?(entries, &String.starts_with?(&1, "#{module}-")), "no entry for #{module}"
    end

    warm = fresh(dir)
    assert warm < cold

    # A corrupt entry is instrumented again and rewritten.
    [gen_server] = Enum.filter(entries, &String.starts_with?(&1, "gen_server-"))
    File.write!(Path.join(dir, gen_server), "not a beam")
    fresh(dir)
    assert {:ok, _} = :beam_lib.chunks(File.read!(Path.join(dir, gen_server)), [:attributes])
  end
end
