defmodule Lockstep.Test do
  @moduledoc """
  ExUnit integration: `use Lockstep.Test` in a test module (it implies `use ExUnit.Case`),
  then write controlled tests with `ctest/3`.

      defmodule MyApp.CounterTest do
        use Lockstep.Test, iterations: 300, async: true

        ctest "increments are not lost", strategy: :random do
          counter = Lockstep.spawn(fn -> MyApp.Counter.loop(0) end)
          # ... spawn clients, assert on the final value ...
        end
      end

  Options given to `use` (other than ExUnit's own `:async`) are module-level defaults for
  every `ctest` in the module; options given to `ctest` override them. The test's name
  becomes the run's `:name` and ExUnit's seed the default `:seed`, so `mix test --seed N`
  repeats a search exactly. A bug fails the test like any assertion, with the Lockstep
  report (trace and replay command) as the failure message.
  """

  use ExUnit.CaseTemplate

  @exunit_options [:async, :register, :parameterize]

  using opts do
    defaults = Keyword.drop(opts, @exunit_options)

    quote do
      import Lockstep.Test, only: [ctest: 2, ctest: 3]
      require Lockstep
      @lockstep_defaults unquote(defaults)
    end
  end

  @doc """
  Defines a test whose body runs as the root process of `Lockstep.run/2`.
  `opts` are `Lockstep.run/2` options merged over the module's defaults.
  """
  defmacro ctest(name, opts \\ [], do: body) do
    location = "#{Path.relative_to_cwd(__CALLER__.file)}:#{__CALLER__.line}"

    quote do
      test unquote(name) do
        opts =
          @lockstep_defaults
          |> Keyword.merge(unquote(opts))
          |> Keyword.put_new(:name, "#{inspect(__MODULE__)} #{unquote(name)}")
          |> Keyword.put_new(:location, unquote(location))

        Lockstep.run(fn -> unquote(body) end, opts)
      end
    end
  end
end
