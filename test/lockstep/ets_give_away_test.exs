defmodule Lockstep.ETSGiveAwayTest do
  # `:ets.give_away/3` inside a run: the new owner's 'ETS-TRANSFER' is a message of the
  # schedule (receivable by Lockstep.receive and by instrumented code), the BEAM's own copy
  # of it is never taken nor reported, and the errors are OTP's.
  use Lockstep.Test, iterations: 100, async: true

  require Lockstep
  alias Lockstep.BugFound

  # A receiver that takes the table, reports what it got and whether it owns the table.
  defp api_receiver(report_to) do
    Lockstep.spawn(fn ->
      Lockstep.receive do
        {:"ETS-TRANSFER", tab, from, gift} ->
          Lockstep.send(report_to, {:got, tab, from, gift, :ets.info(tab, :owner) == self()})
          # the table dies with its owner
          Lockstep.receive(do: (:done -> :ok))
      end
    end)
  end

  defp run!(body, opts) do
    summary = Lockstep.run(body, Keyword.merge([iterations: 100], opts))
    assert summary.iterations == Keyword.get(opts, :iterations, 100)
    summary
  end

  describe "through the Lockstep API" do
    for strategy <- [:random, :pct] do
      test "the new owner receives the transfer with Lockstep.receive (#{strategy})" do
        test = self()

        run!(
          fn ->
            me = self()
            receiver = api_receiver(me)
            tab = Lockstep.ETS.new(:gift_table, [:public])
            Lockstep.ETS.insert(tab, {:k, 1})
            assert Lockstep.ETS.give_away(tab, receiver, :the_gift) == true
            assert :ets.info(tab, :owner) == receiver

            Lockstep.receive do
              {:got, ^tab, ^me, :the_gift, true} -> Kernel.send(test, :transferred)
            end

            Lockstep.send(receiver, :done)
          end,
          strategy: unquote(strategy),
          seed: 11
        )

        assert_received :transferred
      end
    end

    test "a named table's transfer names the table, as OTP's does" do
      run!(
        fn ->
          me = self()
          receiver = api_receiver(me)
          :named_gift = Lockstep.ETS.new(:named_gift, [:named_table, :public])
          Lockstep.ETS.give_away(:named_gift, receiver, 7)

          Lockstep.receive do
            {:got, :named_gift, ^me, 7, true} -> :ok
          end

          Lockstep.send(receiver, :done)
        end,
        strategy: :random,
        seed: 3
      )
    end

    test "the transfer is an event of the trace, sent by the giver" do
      body = fn ->
        me = self()
        receiver = api_receiver(me)
        tab = Lockstep.ETS.new(:traced_gift, [])
        Lockstep.ETS.give_away(tab, receiver, :g)
        Lockstep.receive(do: ({:got, _, _, :g, true} -> :ok))
        raise "stop here"
      end

      assert {:error, %BugFound{} = bug} =
               Lockstep.check(body, iterations: 1, strategy: :random, seed: 5)

      report = Exception.message(bug)
      assert report =~ "sends {:\"ETS-TRANSFER\""
      assert report =~ "receives {:\"ETS-TRANSFER\""
    end

    test "the BEAM's copy is not reported as a message sent around Lockstep" do
      body = fn ->
        receiver =
          Lockstep.spawn(fn ->
            Lockstep.receive(do: (:never -> :ok))
          end)

        tab = Lockstep.ETS.new(:unclaimed_gift, [])
        Lockstep.ETS.give_away(tab, receiver, :g)
        Lockstep.receive(do: (:never -> :ok))
      end

      assert {:error, %BugFound{kind: :deadlock} = bug} =
               Lockstep.check(body, iterations: 1, strategy: :random, seed: 5)

      report = Exception.message(bug)
      assert report =~ "mailbox: {:\"ETS-TRANSFER\""
      refute report =~ "message(s) sent around Lockstep"
      refute report =~ "lockstep_ets_transfer_copy"
    end

    test "a heir's transfer (the BEAM's, outside the schedule) is named in a deadlock report" do
      body = fn ->
        me = self()

        heir = Lockstep.spawn(fn -> Lockstep.receive(do: ({:"ETS-TRANSFER", _, _, _} -> :ok)) end)

        Lockstep.spawn(fn ->
          Lockstep.ETS.new(:heir_table, [{:heir, heir, :h}])
          Lockstep.send(me, :made)
        end)

        Lockstep.receive(do: (:made -> :ok))
        Lockstep.receive(do: (:never -> :ok))
      end

      assert {:error, %BugFound{kind: :deadlock} = bug} =
               Lockstep.check(body, iterations: 5, strategy: :random, seed: 1)

      report = Exception.message(bug)
      assert report =~ "an 'ETS-TRANSFER' of a table's :heir is sent by the BEAM"
      refute report =~ "a plain send in code that is not instrumented"
    end

    test "errors are :ets's: not the owner, to oneself, to a process of the run that ended" do
      test = self()

      run!(
        fn ->
          tab = Lockstep.ETS.new(:owned, [:public])
          me = self()
          ended = Lockstep.spawn(fn -> :ok end)
          ref = Lockstep.monitor(ended)
          Lockstep.receive(do: ({:DOWN, ^ref, :process, _, _} -> :ok))

          other =
            Lockstep.spawn(fn ->
              result =
                try do
                  Lockstep.ETS.give_away(tab, me, :x)
                rescue
                  e in ArgumentError -> {:raised, Exception.message(e)}
                end

              Lockstep.send(me, {:not_owner, result})
            end)

          not_owner = Lockstep.receive(do: ({:not_owner, r} -> r))
          to_self = assert_raise(ArgumentError, fn -> Lockstep.ETS.give_away(tab, me, :x) end)
          to_ended = assert_raise(ArgumentError, fn -> Lockstep.ETS.give_away(tab, ended, :x) end)
          assert :ets.info(tab, :owner) == me
          Kernel.send(test, {:errors, not_owner, to_self.message, to_ended.message, other})
        end,
        iterations: 20,
        strategy: :random,
        seed: 9
      )

      assert_received {:errors, {:raised, not_owner}, to_self, to_ended, _other}
      assert not_owner =~ "not the owner"
      assert to_self =~ "already the owner"
      assert to_ended =~ "terminated process"
    end

    test "to a process outside the run, the BEAM's own message, with the gift as given" do
      test = self()

      outside =
        Kernel.spawn(fn ->
          receive do
            {:"ETS-TRANSFER", tab, from, gift} ->
              Kernel.send(test, {:outside_got, tab, from, gift})
          end
        end)

      run!(
        fn ->
          tab = Lockstep.ETS.new(:to_outside, [:public])
          Lockstep.ETS.give_away(tab, outside, :plain_gift)
          Kernel.send(test, {:gave, tab, self()})
        end,
        iterations: 1,
        strategy: :random,
        seed: 1
      )

      assert_receive {:gave, tab, giver}
      assert_receive {:outside_got, ^tab, ^giver, :plain_gift}
    end
  end

  describe "instrumented code (a ctest body)" do
    # The same program as plain OTP code, run by ExUnit alone first (what OTP does) and
    # then under Lockstep.
    def hand_over_and_check do
      me = self()

      receiver =
        spawn(fn ->
          receive do
            {:"ETS-TRANSFER", tab, from, data} ->
              :ets.insert(tab, {:by_new_owner, true})
              send(me, {:got, from, data, :ets.info(tab, :owner) == self()})
              # the table dies with its owner
              receive(do: (:done -> :ok))
          end
        end)

      tab = :ets.new(:plain_gift, [:protected])
      :ets.insert(tab, {:k, 1})
      true = :ets.give_away(tab, receiver, {:gift, 1})

      receive do
        {:got, from, {:gift, 1}, true} ->
          result = {from == me, :ets.lookup(tab, :by_new_owner)}
          send(receiver, :done)
          result
      end
    end

    test "plain OTP: the new owner gets the message and may write" do
      assert hand_over_and_check() == {true, [by_new_owner: true]}
    end

    ctest "under Lockstep: the same", strategy: :random do
      assert hand_over_and_check() == {true, [by_new_owner: true]}
    end

    ctest "under Lockstep, PCT: the same", strategy: :pct do
      assert hand_over_and_check() == {true, [by_new_owner: true]}
    end

    defmodule TableKeeper do
      use GenServer
      use Lockstep.Instrumented

      def init(test), do: {:ok, test}

      def handle_info({:"ETS-TRANSFER", tab, _from, :keep}, test) do
        send(test, {:kept, :ets.info(tab, :owner) == self()})
        {:noreply, test}
      end
    end

    ctest "a GenServer takes the table in handle_info", strategy: :random, iterations: 50 do
      {:ok, keeper} = GenServer.start_link(TableKeeper, self())
      tab = :ets.new(:kept, [])
      :ets.give_away(tab, keeper, :keep)

      receive do
        {:kept, owns?} -> assert owns?
      end

      GenServer.stop(keeper)
    end

    ctest "a catch-all receive never takes the BEAM's copy", strategy: :random do
      me = self()

      receiver =
        spawn(fn ->
          first = receive(do: (any -> any))
          send(me, {:first, first})
        end)

      tab = :ets.new(:catch_all, [])
      :ets.give_away(tab, receiver, :g)

      receive do
        {:first, first} -> assert {:"ETS-TRANSFER", ^tab, ^me, :g} = first
      end
    end
  end
end
