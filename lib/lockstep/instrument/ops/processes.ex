defmodule Lockstep.Instrument.Ops.Processes do
  @moduledoc false
  # Placeholder until the full process operations land: send and spawn only.
  alias Lockstep.Runtime

  def __ops__, do: [{{:erlang, :send, 2}, :send}, {{:erlang, :spawn, 1}, :spawn}]

  def send(dest, msg), do: Runtime.send(dest, msg)
  def spawn(fun), do: Runtime.spawn(fun, false)
end
