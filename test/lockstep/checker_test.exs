defmodule Lockstep.CheckerTest do
  # Lockstep.Checker.check/3 on hand-built histories: the facts the Rust tests state, now
  # through the public API (encoding, exact term equality, user models, bad input).
  use ExUnit.Case, async: true

  doctest Lockstep.Checker

  alias Lockstep.Checker
  alias Lockstep.HistoryModels.{AsUser, Bank, Garbage, Raises, Stack}
  alias Lockstep.Model.{CASRegister, Counter, KV, Queue, Register}

  # `{process, op, arg, result}` rows become invoke/complete pairs; `spans` orders them:
  # a list of `{:call, i}` / `{:ret, i}` / `{:info, i}` in time order.
  defp history(ops, spans) do
    Enum.map(spans, fn
      {:call, i} ->
        {p, op, arg, _} = Enum.at(ops, i)
        %{type: :invoke, id: i, process: p, op: op, arg: arg}

      {:ret, i} ->
        %{type: :ok, id: i, result: elem(Enum.at(ops, i), 3)}

      {:info, i} ->
        %{type: :info, id: i}

      {:fail, i} ->
        %{type: :fail, id: i}
    end)
  end

  # Sequential rows: each completes before the next starts.
  defp seq(ops), do: history(ops, Enum.flat_map(0..(length(ops) - 1), &[{:call, &1}, {:ret, &1}]))

  defp ops_of({:error, %{ops: ops}}), do: Enum.map(ops, &{&1.process, &1.op, &1.arg, &1.result})

  describe "register" do
    test "concurrent overlapping operations may be linearized either way" do
      ops = [{:a, :write, 1, :ok}, {:b, :read, nil, nil}, {:c, :read, nil, 1}]
      spans = [{:call, 0}, {:call, 1}, {:call, 2}, {:ret, 2}, {:ret, 1}, {:ret, 0}]
      assert Checker.check(history(ops, spans), Register) == :ok
    end

    test "a stale read after a completed write is not linearizable, and is shown with it" do
      ops = [{:a, :write, 1, :ok}, {:a, :write, 2, :ok}, {:b, :read, nil, 1}]
      result = Checker.check(seq(ops), Register, :linearizable)
      assert ops_of(result) == ops
      assert {:error, %{model: Register, consistency: :linearizable, minimal: true}} = result
    end

    test "values compare exactly: 1.0 is not 1" do
      assert {:error, _} =
               Checker.check(seq([{:a, :write, 1, :ok}, {:b, :read, nil, 1.0}]), Register)

      assert :ok =
               Checker.check(
                 seq([{:a, :write, {1, "x"}, :ok}, {:b, :read, nil, {1, "x"}}]),
                 Register
               )
    end

    test "an :info write may take effect later, or never, but not before it was invoked" do
      ops = [{:a, :write, 1, nil}, {:b, :read, nil, nil}, {:b, :read, nil, 1}]
      later = [{:call, 0}, {:info, 0}, {:call, 1}, {:ret, 1}, {:call, 2}, {:ret, 2}]
      assert Checker.check(history(ops, later), Register) == :ok
      # Never completed at all: the same.
      assert Checker.check(history(ops, later -- [{:info, 0}]), Register) == :ok

      before = [{:call, 2}, {:ret, 2}, {:call, 0}, {:info, 0}]
      assert {:error, _} = Checker.check(history(ops, before), Register)
    end

    test "a :fail operation did not happen" do
      ops = [{:a, :write, 1, nil}, {:b, :read, nil, 1}]
      spans = [{:call, 0}, {:fail, 0}, {:call, 1}, {:ret, 1}]
      assert {:error, %{ops: [%{op: :read}]}} = Checker.check(history(ops, spans), Register)
    end

    test "an initial value" do
      assert :ok = Checker.check(seq([{:a, :read, nil, 0}]), {Register, 0})
      assert {:error, _} = Checker.check(seq([{:a, :read, nil, 0}]), Register)
    end
  end

  test "CAS register: a lost CAS and two winners are caught; an :info CAS may have won" do
    two_winners = [{:a, :write, 0, :ok}, {:b, :cas, {0, 1}, true}, {:c, :cas, {0, 2}, true}]
    assert {:error, _} = Checker.check(seq(two_winners), CASRegister)

    lost = [{:a, :write, 0, :ok}, {:b, :cas, {0, 1}, false}, {:c, :read, nil, 0}]
    assert {:error, %{ops: ops}} = Checker.check(seq(lost), CASRegister)
    assert Enum.map(ops, & &1.op) == [:write, :cas]

    info = [{:a, :write, 0, :ok}, {:b, :cas, {0, 1}, nil}, {:c, :read, nil, 1}]
    spans = [{:call, 0}, {:ret, 0}, {:call, 1}, {:info, 1}, {:call, 2}, {:ret, 2}]
    assert Checker.check(history(info, spans), CASRegister) == :ok
  end

  test "counter: a lost update" do
    ops = [{:a, :add, 1, :ok}, {:b, :add, 1, :ok}, {:c, :read, nil, 1}]
    spans = [{:call, 0}, {:call, 1}, {:ret, 0}, {:ret, 1}, {:call, 2}, {:ret, 2}]
    assert {:error, _} = Checker.check(history(ops, spans), Counter)
    ok = [{:call, 0}, {:call, 1}, {:call, 2}, {:ret, 0}, {:ret, 2}, {:ret, 1}]
    assert Checker.check(history(ops, ok), Counter) == :ok
  end

  test "counter: values beyond 64 bits are Elixir integers, not an overflow" do
    big = Bitwise.bsl(1, 62)
    ops = [{:a, :add, big, :ok}, {:b, :add, big, :ok}, {:c, :add, big, :ok}]
    assert Checker.check(seq(ops ++ [{:d, :read, nil, 3 * big}]), Counter) == :ok
    assert {:error, _} = Checker.check(seq(ops ++ [{:d, :read, nil, 2 * big}]), Counter)

    huge = Bitwise.bsl(1, 70)

    assert Checker.check(seq([{:a, :add, huge, :ok}, {:b, :read, nil, huge + 1}]), {Counter, 1}) ==
             :ok

    assert Checker.check(seq([{:a, :read, nil, huge}]), {Counter, huge}) == :ok
    assert {:error, _} = Checker.check(seq([{:a, :read, nil, huge}]), Counter)
  end

  test "set: reads as lists or MapSets, in any order" do
    ops = [
      {:a, :add, 1, :ok},
      {:a, :add, 2, :ok},
      {:b, :read, nil, [2, 1]},
      {:b, :contains, 1, true},
      {:a, :remove, 1, :ok},
      {:b, :read, nil, MapSet.new([2])}
    ]

    assert Checker.check(seq(ops), Lockstep.Model.Set) == :ok
    bad = List.replace_at(ops, 5, {:b, :read, nil, [1, 2]})
    assert {:error, _} = Checker.check(seq(bad), Lockstep.Model.Set)
  end

  test "queue: FIFO order, :empty on an empty queue" do
    ops = [
      {:a, :enqueue, 1, :ok},
      {:a, :enqueue, 2, :ok},
      {:b, :dequeue, nil, 1},
      {:b, :dequeue, nil, 2},
      {:b, :dequeue, nil, :empty}
    ]

    assert Checker.check(seq(ops), Queue) == :ok
    swapped = [{:a, :enqueue, 1, :ok}, {:a, :enqueue, 2, :ok}, {:b, :dequeue, nil, 2}]
    assert {:error, _} = Checker.check(seq(swapped), Queue)
  end

  test "KV is checked per key and the failure names its key" do
    ops = [
      {:a, :write, {:x, 1}, :ok},
      {:b, :write, {:y, 1}, :ok},
      {:a, :read, :x, 1},
      {:b, :read, :y, nil},
      {:c, :cas, {:x, 1, 2}, true}
    ]

    assert {:error, %{key: :y, ops: ops}} = Checker.check(seq(ops), KV)
    assert Enum.map(ops, & &1.arg) == [{:y, 1}, :y]
  end

  test "KV's initial state is a map: its keys start at their values, the others at nil" do
    initial = {KV, %{x: 1}}

    for consistency <- [:linearizable, :sequential] do
      assert Checker.check(seq([{:a, :read, :x, 1}, {:b, :read, :y, nil}]), initial, consistency) ==
               :ok

      assert Checker.check(seq([{:a, :cas, {:x, 1, 2}, true}, {:a, :read, :x, 2}]), initial) ==
               :ok

      assert {:error, %{key: :x}} = Checker.check(seq([{:a, :read, :x, nil}]), initial)

      # The Elixir model's step/4 over the same map says the same.
      ops = [{:a, :read, :x, 1}, {:b, :write, {:x, nil}, :ok}, {:c, :read, :x, nil}]
      as_user = {AsUser, {KV, %{x: 1}}}
      assert Checker.check(seq(ops), initial, consistency) == :ok
      assert Checker.check(seq(ops), as_user, consistency) == :ok
    end
  end

  test "sequential consistency accepts a history linearizability rejects" do
    ops = [{:a, :write, 1, :ok}, {:b, :read, nil, nil}]
    assert {:error, _} = Checker.check(seq(ops), Register, :linearizable)
    assert Checker.check(seq(ops), Register, :sequential) == :ok
    # Program order still counts.
    ops = [{:a, :write, 1, :ok}, {:b, :read, nil, 1}, {:b, :read, nil, nil}]
    assert {:error, %{consistency: :sequential}} = Checker.check(seq(ops), Register, :sequential)
  end

  describe "user models" do
    test "a stack" do
      ops = [{:a, :push, 1, :ok}, {:b, :push, 2, :ok}, {:c, :pop, nil, 1}]
      concurrent = [{:call, 0}, {:call, 1}, {:ret, 1}, {:ret, 0}, {:call, 2}, {:ret, 2}]
      assert Checker.check(history(ops, concurrent), Stack) == :ok
      assert {:error, %{model: Stack}} = Checker.check(seq(ops), Stack)
    end

    test "agree with the built-in models on random histories" do
      :rand.seed(:exsss, 42)

      for _ <- 1..150 do
        for {model, kinds} <- [{Register, [:read, :write]}, {CASRegister, [:read, :write, :cas]}],
            events = random_history(Enum.random(1..7), kinds),
            initial = nil,
            consistency <- [:linearizable, :sequential] do
          rust = Checker.check(events, {model, initial}, consistency)
          user = Checker.check(events, {AsUser, {model, initial}}, consistency)
          assert match?(:ok, rust) == match?(:ok, user), inspect({model, consistency, events})
        end
      end
    end

    test "failed?/3 says which results did not happen" do
      # Record through History-like events: the caller decides :fail; Checker sees it.
      ops = [{:a, :withdraw, 8, :ok}, {:b, :withdraw, 8, nil}, {:c, :balance, nil, 2}]
      spans = [{:call, 0}, {:ret, 0}, {:call, 1}, {:fail, 1}, {:call, 2}, {:ret, 2}]
      assert Checker.check(history(ops, spans), Bank) == :ok
      assert Bank.failed?(:withdraw, 8, {:error, :insufficient})
    end

    test "a model that raises stops the check with its exception, leaving nothing behind" do
      assert_raise ArgumentError, "model bug", fn ->
        Checker.check(seq([{:a, :x, 1, :ok}]), Raises)
      end

      assert Process.info(self(), :message_queue_len) == {:message_queue_len, 0}
    end

    test "a model answering something else is named" do
      assert_raise ArgumentError,
                   ~r/Garbage.step\/4 must return \{:ok, state\} or :error, got: :maybe/,
                   fn ->
                     Checker.check(seq([{:a, :x, 1, :ok}]), Garbage)
                   end
    end
  end

  defp random_history(n, kinds) do
    ops =
      for i <- 0..(n - 1) do
        p = Enum.random([:a, :b, :c])

        case Enum.random(kinds) do
          :read ->
            {p, :read, nil, Enum.random([nil, 1, 2])}

          :write ->
            {p, :write, Enum.random([1, 2]), :ok}

          :cas ->
            {p, :cas, {Enum.random([nil, 1]), Enum.random([1, 2])}, Enum.random([true, false])}
        end
        |> then(&{i, &1})
      end

    # Random interleaving of calls and returns; some ops end as :info.
    ends = for {i, _} <- ops, do: if(:rand.uniform(5) == 1, do: {:info, i}, else: {:ret, i})
    spans = interleave(Enum.map(ops, fn {i, _} -> {:call, i} end), ends)
    history(Enum.map(ops, &elem(&1, 1)), spans)
  end

  # Each op's end after its call, otherwise random.
  defp interleave(calls, ends) do
    Enum.reduce(Enum.zip(calls, ends), [], fn {c, e}, acc ->
      at = Enum.random(0..length(acc))
      {before, rest} = Enum.split(acc, at)
      acc = before ++ [c] ++ rest
      at_e = Enum.random((at + 1)..length(acc))
      {b2, r2} = Enum.split(acc, at_e)
      b2 ++ [e] ++ r2
    end)
  end

  describe "bad input" do
    test "a malformed history names what is wrong" do
      assert_raise ArgumentError, ~r/a history must be a list of events/, fn ->
        Checker.check(:nope, Register)
      end

      assert_raise ArgumentError, ~r/event 0: expected a map with :type/, fn ->
        Checker.check([{:invoke, 1}], Register)
      end

      assert_raise ArgumentError,
                   ~r/event 0: :ok for id 7, which no earlier :invoke opened/,
                   fn ->
                     Checker.check([%{type: :ok, id: 7, result: 1}], Register)
                   end

      twice = seq([{:a, :write, 1, :ok}]) ++ [%{type: :ok, id: 0, result: :ok}]

      assert_raise ArgumentError,
                   ~r/event 2: :ok for id 0, which event 1 already completed/,
                   fn ->
                     Checker.check(twice, Register)
                   end

      reopened = [
        %{type: :invoke, id: 1, process: :a, op: :read},
        %{type: :invoke, id: 1, process: :a, op: :read}
      ]

      assert_raise ArgumentError,
                   ~r/event 1: invokes id 1 while it is still open \(invoked at event 0\)/,
                   fn ->
                     Checker.check(reopened, Register)
                   end

      assert_raise ArgumentError, ~r/event 0: an :invoke needs :process and :op/, fn ->
        Checker.check([%{type: :invoke, id: 1}], Register)
      end
    end

    test "an operation the model does not have, or an argument that does not fit" do
      assert_raise ArgumentError,
                   ~r/event 0: Lockstep.Model.Register has no operation :cas \(its operations: :read, :write\)/,
                   fn -> Checker.check(seq([{:a, :cas, {1, 2}, true}]), Register) end

      assert_raise ArgumentError, ~r/:cas: the argument must be \{from, to\}/, fn ->
        Checker.check(seq([{:a, :cas, 1, true}]), CASRegister)
      end

      assert_raise ArgumentError, ~r/:cas: the result must be true or false, got: :ok/, fn ->
        Checker.check(seq([{:a, :cas, {1, 2}, :ok}]), CASRegister)
      end

      assert_raise ArgumentError, ~r/:add: the argument must be an integer/, fn ->
        Checker.check(seq([{:a, :add, 1.5, :ok}]), Counter)
      end
    end

    test "a bad model or consistency" do
      assert_raise ArgumentError, ~r/String is not a Lockstep.Model/, fn ->
        Checker.check([], String)
      end

      assert_raise ArgumentError, ~r/a model must be a module/, fn -> Checker.check([], "x") end

      assert_raise ArgumentError,
                   ~r/consistency must be :linearizable or :sequential, got: :strong/,
                   fn ->
                     Checker.check([], Register, :strong)
                   end
    end
  end

  test "the time-line has one line per process and an axis" do
    ops = [{"P.1", :write, 1, :ok}, {"P.2", :write, 2, :ok}, {"P.3", :read, nil, 1}]
    {:error, details} = Checker.check(seq(ops), Register)
    lines = String.split(Checker.timeline(details), "\n")
    assert length(lines) == 4
    assert Enum.at(lines, 0) =~ ~r/^P.1 +\[write\(1\) → :ok/
    assert Enum.at(lines, 2) =~ ~r/^P.3 +\s+\[read\(\) → 1/
    assert List.last(lines) =~ "(event positions)"
  end

  test "a history of 1,000 operations is checked well within a second" do
    events =
      for i <- 1..1_000, reduce: [] do
        acc ->
          p = rem(i, 5)

          acc ++
            [
              %{type: :invoke, id: i, process: p, op: :write, arg: i},
              %{type: :ok, id: i, result: :ok}
            ]
      end

    {us, :ok} = :timer.tc(fn -> Checker.check(events, Register) end)
    assert us < 1_000_000
  end
end
