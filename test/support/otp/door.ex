defmodule Lockstep.TestSupport.OTP.Door do
  @moduledoc false
  # A plain :gen_statem code lock (state functions), the shape of OTP's own example: the
  # right code opens the door, which locks itself again after a state timeout; a `:lock`
  # cast while locked is postponed until the door is open (where it locks it); an event
  # timeout and a generic timeout note inactivity. Every event it handled is in its data.
  @behaviour :gen_statem

  def start_link(code, open_ms), do: :gen_statem.start_link(__MODULE__, {code, open_ms}, [])

  def press(door, code), do: :gen_statem.call(door, {:press, code})
  def lock(door), do: :gen_statem.cast(door, :lock)
  def idle_in(door, ms), do: :gen_statem.call(door, {:idle_in, ms})
  def ping_in(door, ms), do: :gen_statem.call(door, {:ping_in, ms})
  def events(door), do: :gen_statem.call(door, :events)

  @impl true
  def callback_mode, do: :state_functions

  @impl true
  def init({code, open_ms}), do: {:ok, :locked, %{code: code, open_ms: open_ms, events: []}}

  def locked({:call, from}, {:press, code}, %{code: code} = data) do
    {:next_state, :open, note(data, :opened),
     [{:reply, from, :opened}, {:state_timeout, data.open_ms, :relock}]}
  end

  def locked({:call, from}, {:press, _wrong}, _data),
    do: {:keep_state_and_data, [{:reply, from, :wrong_code}]}

  def locked(:cast, :lock, data), do: {:keep_state, note(data, :lock_postponed), [:postpone]}
  def locked(type, event, data), do: common(:locked, type, event, data)

  def open(:state_timeout, :relock, data), do: {:next_state, :locked, note(data, :relocked)}
  def open(:cast, :lock, data), do: {:next_state, :locked, note(data, :locked_by_cast)}
  def open(type, event, data), do: common(:open, type, event, data)

  defp common(state, {:call, from}, :events, data),
    do: {:keep_state_and_data, [{:reply, from, {state, Enum.reverse(data.events)}}]}

  defp common(_state, {:call, from}, {:idle_in, ms}, _data),
    do: {:keep_state_and_data, [{:reply, from, :ok}, {:timeout, ms, :idle}]}

  defp common(_state, {:call, from}, {:ping_in, ms}, _data),
    do: {:keep_state_and_data, [{:reply, from, :ok}, {{:timeout, :ping}, ms, :ping}]}

  defp common(_state, :timeout, :idle, data), do: {:keep_state, note(data, :idle)}
  defp common(_state, {:timeout, :ping}, :ping, data), do: {:keep_state, note(data, :ping)}

  defp note(data, event), do: %{data | events: [event | data.events]}
end
