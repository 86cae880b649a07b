defmodule Lockstep.TestSupport.OTP.Account do
  @moduledoc false
  # A plain `use GenServer` bank account, written as people write it: `withdraw/2` reads
  # the balance with one call and writes it with another, so two withdrawals can both pass
  # the check (a lost update). `withdraw_fixed/2` is the one-call fix.
  use GenServer

  def start_link(balance, opts \\ []), do: GenServer.start_link(__MODULE__, balance, opts)

  def balance(account), do: GenServer.call(account, :balance)
  def put_balance(account, value), do: GenServer.call(account, {:put_balance, value})

  def withdraw(account, amount) do
    balance = balance(account)

    if balance >= amount do
      :ok = put_balance(account, balance - amount)
      {:ok, balance - amount}
    else
      {:error, :insufficient_funds}
    end
  end

  def withdraw_fixed(account, amount), do: GenServer.call(account, {:withdraw, amount})

  # The body of the issue's test: two clients withdraw 60 from 100; at most one may succeed.
  def body(withdraw \\ &withdraw/2, opts \\ []) do
    {:ok, account} = start_link(100, opts)
    parent = self()

    for _ <- 1..2 do
      spawn(fn -> send(parent, {:done, withdraw.(account, 60)}) end)
    end

    results = for _ <- 1..2, do: receive(do: ({:done, result} -> result))
    final = balance(account)
    successes = Enum.count(results, &match?({:ok, _}, &1))

    if successes > 1 or final < 0 do
      raise "overdrawn: #{inspect(results)}, balance #{final}"
    end

    {results, final}
  end

  def fixed_body, do: body(&withdraw_fixed/2)

  # The same, with the account registered as :lockstep_account.
  def body_named, do: body(&withdraw/2, name: :lockstep_account)

  @impl true
  def init(balance), do: {:ok, balance}

  @impl true
  def handle_call(:balance, _from, balance), do: {:reply, balance, balance}
  def handle_call({:put_balance, value}, _from, _balance), do: {:reply, :ok, value}

  def handle_call({:withdraw, amount}, _from, balance) when balance >= amount,
    do: {:reply, {:ok, balance - amount}, balance - amount}

  def handle_call({:withdraw, _amount}, _from, balance),
    do: {:reply, {:error, :insufficient_funds}, balance}
end
