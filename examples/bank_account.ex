defmodule Lockstep.Examples.BankAccount do
  @moduledoc """
  The bundled racy example `make demo` runs: a plain `use GenServer` bank account, with
  nothing in it that knows about Lockstep. `withdraw/2` checks the balance, then sets the
  new one — two calls, so two concurrent withdrawals can both pass the check and the account
  goes overdrawn. `withdraw_atomic/2` does the check and the update in one call.

  Lockstep tests it unmodified: `instrument: [Lockstep.Examples.BankAccount]` makes its
  code, and OTP's `GenServer` machinery under it, run under control.
  """
  use GenServer

  def start_link(balance), do: GenServer.start_link(__MODULE__, balance)
  def balance(account), do: GenServer.call(account, :balance)
  def put_balance(account, balance), do: GenServer.call(account, {:put_balance, balance})

  @doc "Check, then act: the race."
  def withdraw(account, amount) do
    balance = balance(account)

    if balance >= amount do
      put_balance(account, balance - amount)
    else
      {:error, :insufficient_funds}
    end
  end

  @doc "The check and the update in one call: no race."
  def withdraw_atomic(account, amount), do: GenServer.call(account, {:withdraw, amount})

  @impl true
  def init(balance), do: {:ok, balance}

  @impl true
  def handle_call(:balance, _from, balance), do: {:reply, balance, balance}
  def handle_call({:put_balance, new}, _from, _balance), do: {:reply, :ok, new}

  def handle_call({:withdraw, amount}, _from, balance) when balance >= amount,
    do: {:reply, :ok, balance - amount}

  def handle_call({:withdraw, _amount}, _from, balance),
    do: {:reply, {:error, :insufficient_funds}, balance}
end

defmodule Lockstep.Examples.BankAccount.Test do
  @moduledoc """
  The test `make demo` runs, in plain Elixir: an account holding 100, two clients
  withdrawing 60 each at once; at most one may succeed.
  """
  alias Lockstep.Examples.BankAccount

  @doc "Two concurrent withdrawals with `withdraw` (`:racy`) or `withdraw_atomic`."
  def body(kind) do
    {:ok, account} = BankAccount.start_link(100)
    test = self()

    for _ <- 1..2 do
      spawn(fn ->
        result =
          case kind do
            :racy -> BankAccount.withdraw(account, 60)
            :atomic -> BankAccount.withdraw_atomic(account, 60)
          end

        send(test, {:withdrew, result})
      end)
    end

    results =
      for _ <- 1..2 do
        receive do
          {:withdrew, result} -> result
        end
      end

    balance = BankAccount.balance(account)

    unless balance >= 0 and Enum.count(results, &(&1 == :ok)) <= 1 do
      raise "overdrawn: both withdrawals of 60 from 100 succeeded (#{inspect(results)}), " <>
              "balance #{balance}"
    end
  end

  def racy, do: body(:racy)
  def atomic, do: body(:atomic)

  @instrument [Lockstep.Examples.BankAccount, __MODULE__]

  @doc "What `make demo` runs."
  def demo do
    Lockstep.Examples.demo(
      "Two clients withdraw 60 at once from a plain `use GenServer` account holding 100,\n" <>
        "tested unmodified under Lockstep (instrument: [Lockstep.Examples.BankAccount])…\n",
      {&__MODULE__.racy/0, "The one-call version (withdraw_atomic/2) passes the same search:",
       &__MODULE__.atomic/0},
      iterations: 500,
      name: "bank_account_demo",
      seed: 2026,
      instrument: @instrument
    )
  end
end
