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

  @exunit_options [:async, :register, :parameterize]

  @doc false
  defmacro __using__(opts) do
    defaults = Keyword.drop(opts, @exunit_options)
    exunit = Keyword.take(opts, @exunit_options)

    quote do
      # The test module runs under control too, so a ctest body may use plain spawn, send
      # and receive (SPEC §9). First, so that the module is instrumented before ExUnit's
      # own compile hook hands an async module to the runner.
      use Lockstep.Instrumented
      use ExUnit.Case, unquote(exunit)
      import Lockstep.Test, only: [ctest: 2, ctest: 3]
      require Lockstep
      @lockstep_defaults unquote(defaults)
    end
  end

  @doc """
  Defines a test whose body runs as the root process of `Lockstep.run/2`.
  `opts` are `Lockstep.run/2` options merged over the module's defaults.

  The body becomes a public zero-arity function of the test module, named after the
  test (`:"ctest increments are not lost"`), so a failure's trace file records it and
  `mix lockstep.replay PATH` replays it without being told what to run;
  `Lockstep.replay(&MyApp.CounterTest."ctest increments are not lost"/0, path)` does
  the same from Elixir.
  """
  defmacro ctest(name, opts \\ [], do: body) do
    location = "#{Path.relative_to_cwd(__CALLER__.file)}:#{__CALLER__.line}"

    # As ExUnit's `test`: the name is evaluated when the module body runs, and unquote
    # fragments in the body and the options (a ctest inside a `for`) are honoured.
    quote bind_quoted: [
            name: name,
            body: Macro.escape(body, unquote: true),
            opts: Macro.escape(opts, unquote: true),
            location: location
          ] do
      body_name = Lockstep.Test.__body_name__(__MODULE__, name)

      @doc false
      def unquote(body_name)(), do: unquote(body)

      test name do
        opts =
          @lockstep_defaults
          |> Keyword.merge(unquote(opts))
          |> Keyword.put_new(:name, "#{inspect(__MODULE__)} #{unquote(name)}")
          |> Keyword.put_new(:location, unquote(location))

        Lockstep.run(&(__MODULE__.unquote(body_name) / 0), opts)
      end
    end
  end

  @doc false
  # `:"ctest NAME"`, or `:"ctest NAME (2)"`… when another ctest of the module (in another
  # `describe`) already has that name.
  def __body_name__(module, name) do
    base = "ctest #{name}"

    Stream.iterate(1, &(&1 + 1))
    |> Stream.map(fn
      1 -> String.to_atom(base)
      n -> String.to_atom("#{base} (#{n})")
    end)
    |> Enum.find(&(not Module.defines?(module, {&1, 0})))
  end
end
