defmodule Lockstep.ProcRef do
  @moduledoc false
  # A managed pid shown by its symbolic name in reports (`P.1` instead of `#PID<0.150.0>`).
  defstruct [:name]

  defimpl Inspect do
    def inspect(%{name: name}, _opts), do: name
  end
end
