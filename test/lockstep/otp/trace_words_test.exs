defmodule Lockstep.OTP.TraceWordsTest do
  # OTP's traffic in a report reads as what it means (issue 12, item 4): calls, casts,
  # replies to aliases, :proc_lib's start handshake and :sys messages, with the server's
  # registered name beside it and the request — not the envelope — truncated.
  use ExUnit.Case, async: true

  alias Lockstep.{ProcRef, Trace}
  alias Lockstep.TestSupport.OTP.Account

  @p2 %ProcRef{name: "P.2"}

  defp call(request), do: {:"$gen_call", {@p2, [:alias | make_ref()]}, request}

  test "each OTP message shape, sent, received and delivered" do
    labels = %{"P.1" => "P.1 (:account)"}
    send_of = fn msg -> Trace.describe({:send, "P.2", "P.1", msg, :delivered}, labels) end

    assert send_of.(call({:withdraw, 60})) == "calls P.1 (:account) {:withdraw, 60}"
    assert send_of.({:"$gen_cast", {:put, 1}}) == "casts {:put, 1} to P.1 (:account)"
    assert send_of.({[:alias | make_ref()], {:ok, 40}}) == "replies {:ok, 40} to P.1 (:account)"

    assert send_of.({:ack, @p2, {:ok, @p2}}) ==
             "acknowledges its start to P.1 (:account): {:ok, P.2}"

    assert send_of.({:system, {@p2, [:alias | make_ref()]}, :get_state}) ==
             "sends the system message :get_state to P.1 (:account)"

    assert Trace.describe({:send, "P.2", "P.1", call(:balance), :in_flight}) ==
             "calls P.1 :balance  (in flight)"

    assert Trace.describe({:send, "P.2", :external, call(:balance), :delivered}) ==
             "calls a process outside the run :balance"

    assert Trace.describe({:receive, "P.1", "P.2", call(:balance)}, labels) ==
             "receives the call :balance from P.2"

    assert Trace.describe({:receive, "P.2", "P.1", {[:alias | make_ref()], 100}}, labels) ==
             "receives the reply 100 from P.1 (:account)"

    assert Trace.describe({:deliver, "P.2", "P.1", {:"$gen_cast", :go}}) ==
             "gets the cast :go from P.2 (delivered)"

    # Anything else is a plain message.
    assert Trace.describe({:send, "P.2", "P.1", {:ack, :not_a_pid_tuple}, :delivered}) ==
             "sends {:ack, :not_a_pid_tuple} to P.1"
  end

  test "the request is truncated, not the envelope" do
    request = {:put, String.duplicate("x", 40), String.duplicate("y", 40)}
    text = Trace.describe({:send, "P.2", "P.1", call(request), :delivered})
    assert String.starts_with?(text, "calls P.1 {:put, \"xxx")
    assert String.ends_with?(text, "…")
    refute text =~ "$gen_call"
    refute text =~ "alias"
  end

  test "the account's report reads as calls and replies, the server named beside them" do
    {:error, bug} =
      Lockstep.check(fn -> Account.body_named() end, instrument: [Account], iterations: 500)

    message = Exception.message(bug)
    assert message =~ ~r/P\.\d+\s+calls P\.1 \(:lockstep_account\) :balance/
    assert message =~ ~r/P\.1 \(:lockstep_account\)\s+replies 100 to P\.\d/
    assert message =~ ~r/P\.1 \(:lockstep_account\)\s+receives the call \{:put_balance, 40\}/
    assert message =~ "acknowledges its start to P: {:ok, P.1}"
    refute message =~ "$gen_call"
    refute message =~ "[:alias |"
  end

  test "a server with no registered name is shown with the module it runs" do
    {:error, bug} =
      Lockstep.check(fn -> Account.body() end, instrument: [Account], iterations: 500)

    assert bug.proc_labels == %{"P.1" => inspect(Account)}
    message = Exception.message(bug)
    assert message =~ ~r/P\.\d+\s+calls P\.1 \(#{inspect(Account)}\) :balance/
    assert message =~ ~r/P\.1 \(#{inspect(Account)}\)\s+replies 100 to P\.\d/

    # The label travels in the trace file, so a replayed report reads the same.
    file = Lockstep.TraceFile.load!(bug.trace_path)
    assert file.proc_labels == %{"P.1" => inspect(Account)}

    replayed =
      assert_raise Lockstep.BugFound, fn ->
        Lockstep.replay(fn -> Account.body() end, bug.trace_path)
      end

    assert replayed.proc_labels == %{"P.1" => inspect(Account)}
  end

  test "an operation inside OTP is shown at the user's line that led to it" do
    {:error, bug} =
      Lockstep.check(fn -> Account.body() end, instrument: [Account], iterations: 500)

    message = Exception.message(bug)

    # `balance = balance(account)` and `:ok = put_balance(…)` in `withdraw/2`, not gen.erl.
    assert message =~
             ~r/calls P\.1 \(#{inspect(Account)}\) :balance  at test\/support\/otp\/account\.ex:14\n/

    assert message =~
             ~r/calls P\.1 \(#{inspect(Account)}\) \{:put_balance, 40\}  at test\/support\/otp\/account\.ex:17\n/

    # A server's own loop has no user code on its stack: OTP's line stays.
    assert message =~ ~r/receives the call :balance from P\.\d  at gen_server\.erl:\d+\n/
    refute message =~ ~r/calls P\.1 .* at gen\.erl/
  end
end
