defmodule Lockstep.HostileTerms do
  @moduledoc false
  # Terms that break the usual ways of printing them, for the tests of failure reports.
  # Their Inspect implementations live here (compiled with the test support code) so that
  # they are part of the consolidated Inspect protocol.

  defmodule MessageRaises do
    @moduledoc false
    defexception [:detail]
    @impl true
    def message(_), do: raise("message/1 of MessageRaises broke")
  end

  defmodule MessageNotBinary do
    @moduledoc false
    defexception [:detail]
    @impl true
    def message(_), do: {:not, :a, :string}
  end

  defmodule InspectRaises do
    @moduledoc false
    defstruct [:detail]
  end

  defmodule InspectNotDoc do
    @moduledoc false
    defstruct [:detail]
  end

  defmodule BothRaise do
    @moduledoc false
    defexception [:detail]
    @impl true
    def message(_), do: raise("message/1 of BothRaise broke")
  end

  defimpl Inspect, for: InspectRaises do
    def inspect(_, _), do: raise("Inspect of InspectRaises broke")
  end

  defimpl Inspect, for: InspectNotDoc do
    def inspect(_, _), do: {:not_a_doc, self()}
  end

  defimpl Inspect, for: BothRaise do
    def inspect(_, _), do: raise(ArgumentError, "Inspect of BothRaise broke")
  end

  @doc "Accepts only `:ok`: called with anything else, a FunctionClauseError carries the argument."
  def only_ok(:ok), do: :ok
end
