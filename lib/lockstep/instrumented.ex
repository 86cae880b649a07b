defmodule Lockstep.Instrumented do
  @moduledoc """
  `use Lockstep.Instrumented` in a module makes its unmodified code run under Lockstep's
  control in managed processes, wherever it is compiled — a test file, an `.exs` script,
  a module defined in `iex`:

      defmodule MyTest.Pinger do
        use Lockstep.Instrumented

        def ping(pid) do
          send(pid, {:ping, self()})
          receive do
            :pong -> :ok
          end
        end
      end

  It turns debug info on for the module (`mix test` compiles test files without it) and
  instruments the module from its bytecode as soon as it is compiled (an `@after_compile`
  hook), as `Lockstep.Instrument.instrument!/1` does for modules compiled to `.beam` files.
  Outside a run the module behaves exactly as it would without it. `use Lockstep.Test`
  does the same for the test module.
  """

  defmacro __using__(_opts) do
    quote do
      @compile {:debug_info, true}
      @after_compile Lockstep.Instrumented
    end
  end

  @doc false
  def __after_compile__(env, bytecode),
    do: Lockstep.Instrument.after_compile!(env.module, bytecode)
end
