defmodule Lockstep.OpsSupport do
  @moduledoc false
  # Running one program twice — plainly, against the real OTP functions, and in a managed
  # process against an ops module — and comparing what each call returned or raised.
  #
  # A program takes a module `m` and calls `m.target(args)` for the targets of an ops
  # module's `__ops__/0`: `Lockstep.OpsSupport.Real.Time` and `.Real.State` have a function
  # of each target name that makes the original call (`:erlang.send_after/3` for
  # `send_after/3`…), so the same program runs on OTP or on Lockstep.

  require Lockstep

  @doc "What `fun` returned (`{:ok, value}`) or raised (`{class, reason, message}`)."
  def outcome(fun) do
    {:ok, fun.()}
  catch
    class, reason ->
      {class, reason, message(class, reason, __STACKTRACE__)}
  end

  defp message(:error, reason, stacktrace),
    do: Exception.message(Exception.normalize(:error, reason, stacktrace))

  defp message(_class, _reason, _stacktrace), do: nil

  @doc "Runs `fun` in a fresh plain process and returns its `outcome/1`."
  def plain(fun) do
    {pid, ref} = spawn_monitor(fn -> exit({:outcome, outcome(fun)}) end)

    receive do
      {:DOWN, ^ref, :process, ^pid, {:outcome, result}} -> result
    after
      10_000 -> raise "plain program did not finish"
    end
  end

  @doc """
  Runs `fun` as the root of a one-iteration run and returns its `outcome/1`. `opts` go to
  `Lockstep.run/2`.
  """
  def managed(fun, opts \\ []) do
    test = self()
    tag = make_ref()
    Lockstep.run(fn -> Lockstep.send(test, {tag, outcome(fun)}) end, [iterations: 1] ++ opts)

    receive do
      {^tag, result} -> result
    after
      0 -> raise "the run did not report an outcome"
    end
  end

  @doc "A receive for plain code: the next message, or `:none` after `ms` (wall time)."
  def plain_next(ms \\ 500) do
    receive do
      msg -> msg
    after
      ms -> :none
    end
  end

  @doc "A receive for managed code: the next message, or `:none` after `ms` (virtual)."
  def managed_next(ms \\ 500) do
    Lockstep.receive do
      msg -> msg
    after
      ms -> :none
    end
  end

  defmodule Real do
    @moduledoc false
    # A module per ops module, with each target making the original call.
    for ops <- [Lockstep.Instrument.Ops.Time, Lockstep.Instrument.Ops.State] do
      name = Module.concat(__MODULE__, List.last(Module.split(ops)))

      contents =
        for {{mod, fun, arity}, target} <- ops.__ops__() do
          args = Macro.generate_arguments(arity, __MODULE__)

          quote do
            def unquote(target)(unquote_splicing(args)),
              do: unquote(mod).unquote(fun)(unquote_splicing(args))
          end
        end

      Module.create(name, contents, Macro.Env.location(__ENV__))
    end
  end
end
