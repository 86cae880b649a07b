defmodule Lockstep.Options do
  @moduledoc false
  # Validation of `Lockstep.run/2` options into a config map. Every error names the key,
  # the value and what is accepted.

  @strategies [:random, :pct, :fair_pct, :pos, :idpct, :exhaustive]

  @max_u64 18_446_744_073_709_551_615
  @max_u32 4_294_967_295

  @defaults [
    iterations: 100,
    strategy: :pct,
    bug_depth: 3,
    max_steps: 10_000,
    fail_on_max_steps: false,
    timeout: 5_000,
    delivery: :instant,
    crash: :fail,
    blocked_at_end: :kill,
    strict_control: false,
    timers: :on_idle,
    trace_dir: "_build/lockstep/traces",
    workers: 1,
    nodes: [],
    instrument: []
  ]

  @known Keyword.keys(@defaults) ++ [:seed, :name, :location]

  def validate!(fun, opts) do
    unless is_function(fun, 0) do
      raise ArgumentError,
            "Lockstep expects a zero-arity function as the root process, got: #{inspect(fun)}"
    end

    unless Keyword.keyword?(opts) do
      raise ArgumentError, "Lockstep options must be a keyword list, got: #{inspect(opts)}"
    end

    exhaustive? = exhaustive?(opts[:strategy])
    if exhaustive?, do: check_exhaustive_workers!(opts)
    Enum.each(opts, fn {key, value} -> check_key!(key, value) end)
    check_iterations!(opts[:iterations], exhaustive?)
    # An exhaustive search runs until its tree is explored unless told to stop sooner.
    defaults = if exhaustive?, do: Keyword.put(@defaults, :iterations, :infinity), else: @defaults
    opts = Keyword.merge(defaults, opts)

    {strategy, strategy_opts} = normalize_strategy!(opts[:strategy], opts[:bug_depth])
    strategy_opts = strategy_defaults(strategy, strategy_opts, opts[:max_steps])

    %{
      iterations: opts[:iterations],
      strategy: strategy,
      strategy_opts: strategy_opts,
      user_strategy: user_strategy(opts),
      seed: Keyword.get_lazy(opts, :seed, &default_seed/0),
      max_steps: opts[:max_steps],
      fail_on_max_steps: opts[:fail_on_max_steps],
      timeout: opts[:timeout],
      delivery: opts[:delivery],
      crash: opts[:crash],
      blocked_at_end: opts[:blocked_at_end],
      strict_control: opts[:strict_control],
      timers: opts[:timers],
      name: name(opts[:name], fun),
      location: opts[:location],
      trace_dir: System.get_env("LOCKSTEP_TRACE_DIR") || opts[:trace_dir],
      workers: workers(opts[:workers]),
      nodes: opts[:nodes],
      instrument: Lockstep.Instrument.modules!(opts[:instrument])
    }
  end

  defp check_key!(:instrument, value), do: Lockstep.Instrument.modules!(value)

  defp check_key!(:timers, value) do
    unless value in [:on_idle, :anytime], do: bad!(:timers, value, ":on_idle or :anytime")
  end

  # The engine counts iterations and steps in 64 bits and PCT depths in 32; `:timeout` is
  # only used by the owner's wall-clock watch, so any positive integer works.
  # `:infinity` is for exhaustive search only (checked with the strategy, below).
  defp check_key!(:iterations, :infinity), do: :ok

  defp check_key!(key, value) when key in [:iterations, :max_steps] do
    check_range!(key, value, 1, @max_u64)
  end

  defp check_key!(:bug_depth, value), do: check_range!(:bug_depth, value, 1, @max_u32)

  defp check_key!(:timeout, value) do
    unless is_integer(value) and value > 0, do: bad!(:timeout, value, "a positive integer")
  end

  # Seeds are the engine's 64-bit seeds as they are: no reduction, so the seed printed in a
  # report is exactly the one to pass back.
  defp check_key!(:seed, value), do: check_range!(:seed, value, 0, @max_u64)

  defp check_key!(:fail_on_max_steps, value) do
    unless is_boolean(value), do: bad!(:fail_on_max_steps, value, "true or false")
  end

  defp check_key!(:delivery, value) do
    unless value in [:instant, :delayed], do: bad!(:delivery, value, ":instant or :delayed")
  end

  defp check_key!(:crash, value) do
    unless value in [:fail, :ignore, :strict],
      do: bad!(:crash, value, ":fail, :ignore or :strict")
  end

  defp check_key!(:blocked_at_end, value) do
    unless value in [:kill, :fail], do: bad!(:blocked_at_end, value, ":kill or :fail")
  end

  defp check_key!(:strict_control, value) do
    unless is_boolean(value), do: bad!(:strict_control, value, "true or false")
  end

  defp check_key!(:name, value) do
    unless is_binary(value) or is_atom(value), do: bad!(:name, value, "a string or an atom")
  end

  defp check_key!(:location, value) do
    unless is_binary(value), do: bad!(:location, value, "a \"file:line\" string")
  end

  defp check_key!(:trace_dir, value) do
    unless is_binary(value), do: bad!(:trace_dir, value, "a path (string)")
  end

  defp check_key!(:strategy, _value), do: :ok

  defp check_key!(:nodes, value) do
    unless is_list(value) and Enum.all?(value, &is_atom/1) do
      bad!(:nodes, value, "a list of connected node names (see Node.list/0)")
    end

    for node <- value do
      cond do
        node == Node.self() ->
          bad!(:nodes, value, "other nodes than this one (#{inspect(node)} is this node)")

        node not in Node.list() ->
          raise ArgumentError,
                "invalid value for option :nodes: #{inspect(node)} is not connected to " <>
                  "#{inspect(Node.self())}. Connect it first (Node.connect/1) — it must run " <>
                  "the same code, Lockstep and the test's modules included"

        true ->
          :ok
      end
    end
  end

  defp check_key!(:workers, value) do
    unless value == :auto or (is_integer(value) and value > 0 and value <= 1024) do
      bad!(:workers, value, "a positive integer up to 1024, or :auto (one per scheduler)")
    end
  end

  defp check_key!(key, value) do
    raise ArgumentError,
          "unknown option #{inspect(key)} (value #{inspect(value)}); Lockstep.run/2 accepts " <>
            Enum.map_join(@known, ", ", &inspect/1)
  end

  defp exhaustive?(:exhaustive), do: true
  defp exhaustive?({:exhaustive, _}), do: true
  defp exhaustive?(_), do: false

  defp check_iterations!(:infinity, false) do
    bad!(
      :iterations,
      :infinity,
      "a positive integer (:infinity is accepted only with strategy: :exhaustive, which " <>
        "stops when it has explored every interleaving)"
    )
  end

  defp check_iterations!(_iterations, _exhaustive?), do: :ok

  # The workers of an exhaustive search share its one tree in this VM's memory (see
  # `Lockstep.Search`): other nodes cannot take part.
  defp check_exhaustive_workers!(opts) do
    if opts[:nodes] not in [nil, []] do
      raise ArgumentError,
            "invalid value for option :nodes: strategy :exhaustive runs its workers on this " <>
              "node only (its search tree is shared in this VM's memory); use workers: n " <>
              "to use this machine's schedulers, and nodes: with a randomised strategy " <>
              "(got nodes: #{inspect(opts[:nodes])})"
    end
  end

  defp check_range!(key, value, min, max) do
    unless is_integer(value) and value >= min and value <= max do
      bad!(key, value, range_text(min, max))
    end
  end

  defp range_text(1, max), do: "a positive integer in 1..#{max}#{bits(max)}"
  defp range_text(0, max), do: "a non-negative integer in 0..#{max}#{bits(max)}"

  defp bits(@max_u64), do: " (it must fit in 64 bits)"
  defp bits(@max_u32), do: " (it must fit in 32 bits)"

  defp bad!(key, value, accepted) do
    raise ArgumentError,
          "invalid value for option #{inspect(key)}: got #{inspect(value)}, expected #{accepted}"
  end

  defp normalize_strategy!({name, strategy_opts}, bug_depth) when is_atom(name) do
    unless Keyword.keyword?(strategy_opts) do
      bad!(:strategy, {name, strategy_opts}, "{name, keyword list of strategy options}")
    end

    check_strategy_name!(name)
    {name, strategy_options!(name, strategy_opts, bug_depth)}
  end

  defp normalize_strategy!(name, bug_depth) when is_atom(name) do
    check_strategy_name!(name)
    {name, strategy_options!(name, [], bug_depth)}
  end

  defp normalize_strategy!(other, _) do
    bad!(
      :strategy,
      other,
      "one of #{Enum.map_join(@strategies, ", ", &inspect/1)}, or {name, opts}"
    )
  end

  defp check_strategy_name!(name) when name in @strategies, do: :ok

  defp check_strategy_name!(name) do
    bad!(:strategy, name, "one of #{Enum.map_join(@strategies, ", ", &inspect/1)}")
  end

  # Options each strategy accepts; all are positive integers. Depths are 32-bit in the
  # engine, the fair-PCT switch step is 64-bit like `:max_steps`.
  @strategy_options %{
    random: [],
    pos: [],
    pct: [:bug_depth],
    fair_pct: [:bug_depth, :fair_switch],
    idpct: [:d_min, :d_max]
  }

  @strategy_option_max %{
    bug_depth: @max_u32,
    fair_switch: @max_u64,
    d_min: @max_u32,
    d_max: @max_u32
  }

  defp strategy_options!(:exhaustive, opts, _bug_depth) do
    Enum.each(opts, fn
      {:dpor, mode} when mode in [:optimal, :source, :none] ->
        :ok

      {:dpor, mode} ->
        bad!(
          :strategy,
          {:exhaustive, opts},
          "dpor: :optimal, :source or :none (got #{inspect(mode)})"
        )

      {:preemption_bound, bound}
      when is_nil(bound) or (is_integer(bound) and bound >= 0 and bound <= @max_u32) ->
        :ok

      {:preemption_bound, bound} ->
        bad!(
          :strategy,
          {:exhaustive, opts},
          "preemption_bound: nil or #{range_text(0, @max_u32)} (got #{inspect(bound)})"
        )

      {key, value} ->
        raise ArgumentError,
              "invalid value for option :strategy: unknown strategy option " <>
                "#{inspect(key)} (value #{inspect(value)}) in #{inspect({:exhaustive, opts})}; " <>
                ":exhaustive accepts :dpor, :preemption_bound"
    end)

    opts |> Keyword.put_new(:dpor, :optimal) |> Keyword.put_new(:preemption_bound, nil)
  end

  defp strategy_options!(name, opts, bug_depth) do
    accepted = Map.fetch!(@strategy_options, name)

    Enum.each(opts, fn {key, value} ->
      cond do
        key not in accepted ->
          raise ArgumentError,
                "invalid value for option :strategy: unknown strategy option " <>
                  "#{inspect(key)} (value #{inspect(value)}) in #{inspect({name, opts})}; " <>
                  "#{inspect(name)} accepts " <>
                  if(accepted == [],
                    do: "no options",
                    else: Enum.map_join(accepted, ", ", &inspect/1)
                  )

        not (is_integer(value) and value > 0 and value <= @strategy_option_max[key]) ->
          bad!(
            :strategy,
            {name, opts},
            "#{key}: #{range_text(1, @strategy_option_max[key])} (got #{inspect(value)})"
          )

        true ->
          :ok
      end
    end)

    if :bug_depth in accepted, do: Keyword.put_new(opts, :bug_depth, bug_depth), else: opts
  end

  defp strategy_defaults(:fair_pct, opts, max_steps),
    do: Keyword.put_new(opts, :fair_switch, max(div(max_steps, 2), 1))

  defp strategy_defaults(:idpct, given, _max_steps) do
    opts = given |> Keyword.put_new(:d_min, 2) |> Keyword.put_new(:d_max, 6)

    if opts[:d_min] > opts[:d_max] do
      # Name the default the user did not give: it is half of the comparison.
      bad!(
        :strategy,
        {:idpct, given},
        "d_min <= d_max (here d_min is #{opts[:d_min]} and d_max #{opts[:d_max]}; " <>
          "they default to 2 and 6)"
      )
    end

    opts
  end

  defp strategy_defaults(_name, opts, _max_steps), do: opts

  defp user_strategy(opts) do
    case opts[:strategy] do
      {name, []} -> name
      other -> other
    end
  end

  defp workers(:auto), do: System.schedulers_online()
  defp workers(n), do: n

  defp default_seed do
    exunit_seed() || :rand.uniform(2_147_483_648)
  end

  defp exunit_seed do
    if Process.whereis(ExUnit.Server) do
      ExUnit.configuration()[:seed]
    end
  end

  # An anonymous function is named after the function that defined it:
  # `-test counter race/1-fun-0-` in `MyTest` gives "MyTest.test counter race".
  defp name(nil, fun) do
    info = Function.info(fun)
    fun_name = Atom.to_string(info[:name])

    enclosing =
      case Regex.run(~r{^-(.+)/\d+-fun-\d+-$}, fun_name) do
        [_, inner] -> inner
        nil -> fun_name
      end

    "#{inspect(info[:module])}.#{enclosing}"
  end

  defp name(name, _) when is_atom(name), do: Atom.to_string(name)
  defp name(name, _), do: name
end
