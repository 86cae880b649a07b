defmodule Lockstep.Timeout do
  @moduledoc false
  # Timeout values checked as OTP 25 checks them, so a bad value gives the error the
  # mirrored OTP call gives (verified against the real calls in test/lockstep/timeouts_test.exs):
  #
  #   * `receive … after t`: `t` must be `:infinity` or an integer in 0..4294967295, else
  #     `:erlang.error(:timeout_value)` — raised only when the process would wait: a message
  #     that matches at once is taken whatever `t` is. `Process.sleep/1`, `GenServer.call/3`
  #     and `Task.await/2` wait in such a receive, so they raise the same, after their own
  #     guard (`is_integer(t) and t >= 0` or `:infinity`, a `FunctionClauseError`).
  #   * `erlang:send_after/3` (and `Process.send_after/3`, `Task.await_many/2`'s timer):
  #     `:badarg` unless `t` is a non-negative integer whose deadline fits the VM's
  #     monotonic clock (about 2^63 ns). Lockstep's clock starts at 0, so the deadline
  #     `Lockstep.now() + t` must be at most 9223372036854 virtual ms.
  #
  # Errors carry OTP's `error_info`, so Elixir ≥ 1.15 prints what was wrong and what is
  # accepted under the usual "Erlang error: :timeout_value"; 1.14 prints the bare reason,
  # exactly as the OTP call does.

  @max_receive 4_294_967_295
  @max_deadline 9_223_372_036_854

  @doc "The largest `after` value a receive accepts (ms)."
  def max_receive, do: @max_receive

  @doc "The largest deadline of a virtual timer (ms since the iteration started)."
  def max_deadline, do: @max_deadline

  @doc "A timeout the guards of `Process.sleep/1`, `GenServer.call/3` and `Task.await/2` accept."
  defguard is_timeout(t) when t == :infinity or (is_integer(t) and t >= 0)

  @doc """
  An `after` value for the engine: `nil` (no timer), the ms, or `{:bad, t}` for a value a
  receive refuses once it has to wait (see `bad_after!/1`).
  """
  def receive_timeout(:infinity), do: nil
  def receive_timeout(t) when is_integer(t) and t >= 0 and t <= @max_receive, do: t
  def receive_timeout(t), do: {:bad, t}

  @doc "Raises what a receive with `after t` raises in OTP when it has to wait."
  def bad_after!(t) do
    :erlang.error(:timeout_value, [t], error_info: %{module: __MODULE__, function: :format_error})
  end

  @doc """
  Checks the time of a virtual timer started at virtual time `now`; raises `:badarg` (an
  `ArgumentError`) like `erlang:send_after/3` for a bad one. `args` are the caller's
  arguments with the time last, for the error's stack frame.
  """
  def timer_time!(ms, now, _args) when is_integer(ms) and ms >= 0 and now + ms <= @max_deadline,
    do: ms

  def timer_time!(_ms, _now, args) do
    :erlang.error(:badarg, args, error_info: %{module: __MODULE__, function: :format_error})
  end

  @doc false
  # OTP's error_info callback: what each bad argument was, by position.
  def format_error(:timeout_value, [{_m, _f, [t], _} | _]) do
    %{
      1 =>
        "#{inspect(t)} is not a valid `after` timeout: expected :infinity or an integer of " <>
          "virtual ms in 0..#{@max_receive}, as for Kernel's receive"
    }
  end

  def format_error(:badarg, [{_m, _f, args, _} | _]) when is_list(args) and args != [] do
    ms = List.last(args)

    text =
      if is_integer(ms) and ms >= 0 do
        "#{ms} virtual ms is beyond the latest timer deadline: Lockstep.now() + ms must be " <>
          "at most #{@max_deadline} (OTP's limit, about 2^63 ns)"
      else
        "#{inspect(ms)} is not a valid time for Lockstep.send_after/3: expected a " <>
          "non-negative integer of virtual ms, as for Process.send_after/3"
      end

    %{length(args) => text}
  end

  def format_error(_reason, _stacktrace), do: %{}
end
