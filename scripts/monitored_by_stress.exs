# Stress for the VM abort that freed sessions caused (native/lockstep_nif/src/owners.rs):
# many short iterations — managed processes that spawn, link, monitor, kill, exit early,
# raise; `workers: 2` every fifth round; an owner killed mid-run (a test timeout) every
# seventh — while two processes, the owners, the test process and the managed processes
# keep asking `process_info(pid, :monitored_by)` and `:monitors` of the owners, the test
# process and the managed processes.
#
#   MIX_ENV=prod mix run scripts/monitored_by_stress.exs
#
# VARIANT (all | plain | links | raising | early_exit), SECS (60) the wall-clock time,
# SELF=0 to have no process ask about itself (only about others). Prints "survived N
# rounds"; before the owners' watch, every variant aborted the VM within seconds.
require Lockstep

variant = System.get_env("VARIANT", "all")
secs = String.to_integer(System.get_env("SECS", "60"))
deadline = System.monotonic_time(:millisecond) + secs * 1000

defmodule Peek do
  @self_look System.get_env("SELF", "1") == "1"
  def look(pid) when pid == self() and not @self_look, do: :ok

  def look(pid) do
    _ = Process.info(pid, :monitored_by)
    _ = :erlang.process_info(pid, :monitors)
    _ = :erlang.process_info(pid, [:monitored_by, :monitors, :links])
    :ok
  end

  # Looks at the processes `table` names, and at 20 others, for ever.
  def hammer(table) do
    pids = for {_, p} <- :ets.tab2list(table), is_pid(p), do: p
    Enum.each(pids, &look/1)
    for p <- Process.list() |> Enum.take_random(20), do: look(p)
    hammer(table)
  end
end

table = :ets.new(:targets, [:public, :set])
:ets.insert(table, {:test, self()})
hammers = for _ <- 1..2, do: spawn(fn -> Peek.hammer(table) end)

me_owner = self()

bodies = %{
  plain: fn ->
    me = self()
    Peek.look(me)

    p =
      Lockstep.spawn(fn ->
        Peek.look(self())
        Lockstep.send(me, :hi)
      end)

    :ets.insert(table, {:managed, p})

    Lockstep.receive do
      :hi -> :ok
    end

    Peek.look(me_owner)
  end,
  links: fn ->
    me = self()

    a =
      Lockstep.spawn(fn ->
        Peek.look(self())

        Lockstep.receive do
          :go -> :ok
        end
      end)

    Lockstep.link(a)
    ref = Lockstep.monitor(a)
    b = Lockstep.spawn(fn -> Lockstep.exit(a, :kill) end)
    :ets.insert(table, {:managed, b})

    Lockstep.receive do
      {:DOWN, ^ref, _, _, _} -> :ok
      {:EXIT, _, _} -> :ok
    after
      10 -> :ok
    end

    _ = me
  end,
  raising: fn ->
    p =
      Lockstep.spawn(fn ->
        Peek.look(self())
        :ok
      end)

    :ets.insert(table, {:managed, p})
    if :rand.uniform(3) == 1, do: raise("boom")
    :ok
  end,
  early_exit: fn ->
    for _ <- 1..3 do
      Lockstep.spawn(fn ->
        Peek.look(self())

        Lockstep.receive do
          :never -> :ok
        end
      end)
    end

    :ok
  end
}

names =
  case variant do
    "all" -> Map.keys(bodies)
    v -> [String.to_atom(v)]
  end

loop = fn loop, i ->
  if System.monotonic_time(:millisecond) < deadline do
    name = Enum.at(names, rem(i, length(names)))
    body = bodies[name]
    workers = if rem(i, 5) == 0, do: 2, else: 1

    case rem(i, 7) do
      0 ->
        # A test timeout: the owner is killed mid-run.
        {owner, mref} =
          spawn_monitor(fn ->
            :ets.insert(table, {:owner, self()})

            Lockstep.check(fn -> Lockstep.receive(do: (:never -> :ok)) end,
              iterations: 50,
              timeout: 100_000
            )
          end)

        Process.sleep(:rand.uniform(5))
        Peek.look(owner)
        Process.exit(owner, :kill)

        receive do
          {:DOWN, ^mref, _, _, _} -> :ok
        end

      _ ->
        {owner, mref} =
          spawn_monitor(fn ->
            :ets.insert(table, {:owner, self()})
            Lockstep.check(body, iterations: 5, seed: i, workers: workers)
            Peek.look(self())
            :erlang.garbage_collect()
            Peek.look(self())
            Lockstep.check(body, iterations: 3, seed: i + 1)
            :erlang.garbage_collect()
            Peek.look(self())
          end)

        receive do
          {:DOWN, ^mref, _, _, _} -> :ok
        end

        _ = owner
    end

    # The test process as owner too.
    Lockstep.check(body, iterations: 2, seed: i)
    :erlang.garbage_collect()
    Peek.look(self())

    if rem(i, 200) == 0,
      do: IO.puts("#{i} iterations, live sessions #{Lockstep.Native.live_sessions()}")

    loop.(loop, i + 1)
  else
    i
  end
end

n = loop.(loop, 1)
Enum.each(hammers, &Process.exit(&1, :kill))
IO.puts("survived #{n} rounds (#{variant}, #{secs}s)")
