defmodule Lockstep.MonitoredByTest do
  # `process_info(pid, :monitored_by)` lists the NIF resources that monitor `pid`. On OTP 25
  # it makes a reference to each without looking whether it is being freed, so a resource
  # freed while its monitor was still on a live process's list came back to life, was
  # destroyed twice, and the VM aborted (`ethr_mutex_lock(): Invalid argument`). Sessions
  # used to monitor their owner, which outlives them: asking the owner's watchers just
  # after a garbage collection had freed an iteration's session aborted the VM within a
  # few iterations. Owners are now watched by one resource that is never freed
  # (native/lockstep_nif/src/owners.rs).
  use ExUnit.Case, async: true

  require Lockstep

  @moduletag timeout: 120_000

  defp ebin, do: Path.join(:code.lib_dir(:lockstep), "ebin")

  # In a VM of its own: were it to abort, this test fails with its output, and the suite's
  # VM lives on.
  defp fresh_elixir(code),
    do: System.cmd("elixir", ["-pa", ebin(), "-e", code], stderr_to_stdout: true)

  test "asking who monitors an owner while its sessions are freed leaves the VM running" do
    code = """
    require Lockstep
    owner = self()

    # However many sessions it made, an owner is watched by one resource.
    for seed <- 1..5, do: Lockstep.run(fn -> :ok end, iterations: 3, seed: seed)
    {:monitored_by, watchers} = Process.info(self(), :monitored_by)
    IO.puts("resources watching the owner: \#{Enum.count(watchers, &is_reference/1)}")

    # Another process asks too, all the time (the owner serves its requests).
    asker =
      spawn(fn ->
        ask = fn ask ->
          Process.info(owner, :monitored_by)
          ask.(ask)
        end

        ask.(ask)
      end)

    for i <- 1..500 do
      Lockstep.run(
        fn ->
          me = self()
          child = Lockstep.spawn(fn -> Lockstep.send(me, Process.info(owner, :monitored_by)) end)
          Lockstep.monitor(child)

          Lockstep.receive do
            {:monitored_by, _} -> :ok
          end
        end,
        iterations: 2,
        seed: i
      )

      # The iteration's sessions are unreferenced now: the collection frees them while
      # the owner's list still had their monitors, and the owner asks at once.
      :erlang.garbage_collect()
      {:monitored_by, watchers} = Process.info(self(), :monitored_by)
      Process.put(:watchers, watchers)
    end

    Process.exit(asker, :kill)
    Process.delete(:watchers)
    :erlang.garbage_collect()
    Process.sleep(50)
    :erlang.garbage_collect()
    IO.puts("survived")
    """

    {out, status} = fresh_elixir(code)
    # An abort exits with status 134 and says so; a crash elsewhere, 139 and nothing.
    assert {status, out =~ "survived"} == {0, true}, "exit status #{status}:\n" <> out
    assert out =~ "resources watching the owner: 1\n", out
  end
end
