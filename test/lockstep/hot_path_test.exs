defmodule Lockstep.HotPathTest do
  # The one-message hop (lockstep_nif/src/handoff.rs): a sent message is carried to the
  # sender's next sync point and may travel inside the receiver's wake-up; a receive reports
  # what it took with its next sync point. These tests pin what must not change because of
  # that: receive semantics, mailbox order, exclusivity, and what the trace records.
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.Controller
  import Lockstep.TestSupport, only: [normalize_pids: 1]

  defp drive(fun, opts \\ []) do
    {:ok, ctl} = Controller.start_link(Keyword.merge([strategy: :random, seed: 1], opts))
    Controller.spawn_root(ctl, fun)
    result = Controller.await_done(ctl, 10_000)
    GenServer.stop(ctl)
    result
  end

  describe "a message handed over with the wake-up" do
    test "that no clause takes stays in the mailbox, in arrival order" do
      me = self()

      Lockstep.run(
        fn ->
          root = self()

          receiver =
            Lockstep.spawn(fn ->
              # :old is in the mailbox, untaken, when the receive for :go blocks.
              Lockstep.send(root, :ready)

              Lockstep.receive do
                :go -> :ok
              end

              rest = for _ <- 1..3, do: Lockstep.recv()
              Lockstep.send(root, {:rest, rest})
            end)

          Lockstep.receive(do: (:ready -> :ok))
          Lockstep.send(receiver, :first)
          Lockstep.send(receiver, :second)
          Lockstep.send(receiver, :go)
          Lockstep.send(receiver, :third)

          Lockstep.receive do
            {:rest, rest} -> Kernel.send(me, {:rest, rest})
          end
        end,
        iterations: 50,
        strategy: :random
      )

      for _ <- 1..50 do
        assert_received {:rest, [:first, :second, :third]}
      end
    end

    test "guards and pins apply to it as to a message in the mailbox" do
      me = self()

      Lockstep.run(
        fn ->
          root = self()
          ref = make_ref()

          receiver =
            Lockstep.spawn(fn ->
              got =
                for _ <- 1..2 do
                  Lockstep.receive do
                    {^ref, n} when n > 10 -> {:big, n}
                  end
                end

              Lockstep.send(root, {:got, got, Lockstep.recv(), Lockstep.recv()})
            end)

          Lockstep.send(receiver, {make_ref(), 99})
          Lockstep.send(receiver, {ref, 1})
          Lockstep.send(receiver, {ref, 11})
          Lockstep.send(receiver, {ref, 12})

          Lockstep.receive do
            {:got, got, a, b} -> Kernel.send(me, {:got, got, a, b, ref})
          end
        end,
        iterations: 30
      )

      for _ <- 1..30 do
        assert_received {:got, [{:big, 11}, {:big, 12}], {other, 99}, {ref, 1}, ref}
                        when is_reference(other)
      end
    end

    test "that no clause takes lets a receive with `after` time out" do
      me = self()

      Lockstep.run(
        fn ->
          root = self()

          receiver =
            Lockstep.spawn(fn ->
              result =
                Lockstep.receive do
                  :wanted -> :got_it
                after
                  100 -> {:timed_out, Lockstep.now()}
                end

              Lockstep.send(root, {result, Lockstep.recv()})
            end)

          Lockstep.send(receiver, :unwanted)
          Lockstep.receive(do: (result -> Kernel.send(me, result)))
        end,
        iterations: 20
      )

      for _ <- 1..20, do: assert_received({{:timed_out, 100}, :unwanted})
    end

    test "is recorded as received at the step the receiver took it" do
      result =
        drive(fn ->
          root = self()

          echo =
            Lockstep.spawn(fn ->
              Lockstep.receive(do: ({:ping, from} -> Lockstep.send(from, :pong)))
            end)

          Lockstep.send(echo, {:ping, root})
          Lockstep.receive(do: (:pong -> :ok))
        end)

      assert result.kind == :pass

      assert normalize_pids(result.trace) == [
               {1, {:start, "P"}},
               {2, {:spawn, "P", "P.1"}},
               {3, {:start, "P.1"}},
               {3, {:block, "P.1"}},
               {4, {:send, "P", "P.1", {:ping, {:pid, 1}}, :delivered}},
               {4, {:block, "P"}},
               {5, {:receive, "P.1", "P", {:ping, {:pid, 1}}}},
               {6, {:send, "P.1", "P", :pong, :delivered}},
               {6, {:exit, "P.1", :normal}},
               {7, {:receive, "P", "P.1", :pong}},
               {7, {:exit, "P", :normal}}
             ]
    end
  end

  describe "exclusivity under heavy traffic" do
    # Every managed process marks a shared cell as its own when it resumes and checks the
    # mark is still its own just before its next sync point: two processes running at once
    # (on two schedulers) would overwrite each other's mark.
    test "no managed process runs while another does" do
      cell = :atomics.new(1, [])
      clash = :counters.new(1, [])

      body = fn ->
        root = self()
        n = 6

        mark = fn me ->
          :atomics.put(cell, 1, me)
          # some work between sync points, long enough for another scheduler to interleave
          Enum.reduce(1..200, 0, &(&1 + &2))

          if :atomics.get(cell, 1) != me, do: :counters.add(clash, 1, 1)
        end

        peers =
          for i <- 1..n do
            Lockstep.spawn(fn ->
              mark.(i)

              for _ <- 1..30 do
                Lockstep.receive do
                  {:ball, from} ->
                    mark.(i)
                    Lockstep.send(from, :back)
                    mark.(i)
                end
              end
            end)
          end

        for _ <- 1..30, p <- peers do
          mark.(100)
          Lockstep.send(p, {:ball, root})
          mark.(100)
        end

        for _ <- 1..(30 * n) do
          Lockstep.receive(do: (:back -> mark.(100)))
        end
      end

      assert System.schedulers_online() >= 2
      summary = Lockstep.run(body, iterations: 40, strategy: :random)
      assert summary.iterations == 40
      assert :counters.get(clash, 1) == 0
    end
  end

  describe "a message carried to the next sync point" do
    test "reaches its target whatever the sender's next operation is" do
      me = self()

      nexts = [
        yield: fn -> Lockstep.yield() end,
        now: fn -> Lockstep.now() end,
        spawn: fn -> Lockstep.spawn(fn -> :ok end) end,
        alive: fn -> Lockstep.alive?(self()) end,
        monitor: fn -> Lockstep.monitor(self()) end,
        random: fn -> Lockstep.random(2) end,
        exit: fn -> :ok end
      ]

      for {name, next} <- nexts do
        Lockstep.run(
          fn ->
            root = self()

            receiver =
              Lockstep.spawn(fn ->
                Lockstep.receive do
                  {:msg, from} -> Lockstep.send(from, :got)
                end
              end)

            sender =
              Lockstep.spawn(fn ->
                Lockstep.send(receiver, {:msg, root})
                next.()
              end)

            _ = sender

            Lockstep.receive do
              :got -> Kernel.send(me, {:ok, name})
            end
          end,
          iterations: 10
        )

        for _ <- 1..10, do: assert_received({:ok, ^name})
      end
    end

    test "to self is in the mailbox for the next receive" do
      me = self()

      Lockstep.run(
        fn ->
          Lockstep.send(self(), :to_me)

          Lockstep.receive do
            :to_me -> Kernel.send(me, :got_own)
          after
            0 -> Kernel.send(me, :missed_own)
          end
        end,
        iterations: 10
      )

      for _ <- 1..10, do: assert_received(:got_own)
    end
  end

  describe "the test process's own mailbox" do
    test "unrelated messages waiting in it are left alone, in order, by runs" do
      for i <- 1..2_000, do: Kernel.send(self(), {:unrelated, i})

      Lockstep.run(
        fn ->
          child = Lockstep.spawn(fn -> Lockstep.receive(do: (:hi -> :ok)) end)
          Lockstep.send(child, :hi)
        end,
        iterations: 20
      )

      {:messages, messages} = Process.info(self(), :messages)
      assert messages == for(i <- 1..2_000, do: {:unrelated, i})
    end
  end
end
