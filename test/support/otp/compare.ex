defmodule Lockstep.TestSupport.OTP.Compare do
  @moduledoc false
  # Runs one program on the plain BEAM and under Lockstep and returns what it did in each,
  # so a test can assert that real OTP code under control does what OTP 25 does.
  #
  # An outcome is `{:ok, value}`, `{:exit, reason}`, `{:error, exception}` or
  # `{:throw, value}`, with pids and references replaced by `:pid` and `:ref` (they are
  # never equal between two runs).

  @doc "The program's outcome in a fresh plain process."
  def plain(fun) do
    parent = self()
    ref = make_ref()
    # A dynamic call: this module is instrumented in some tests, and the plain run must
    # use the real spawn.
    pid =
      apply(:erlang, :spawn, [
        fn ->
          result = outcome(fun)
          stop_linked()
          send(parent, {ref, result})
        end
      ])

    receive do
      {^ref, outcome} -> outcome
    after
      10_000 ->
        stack = Process.info(pid, :current_stacktrace)
        Process.exit(pid, :kill)
        raise "the plain run of the program did not finish in 10 s: #{inspect(stack)}"
    end
  end

  # What the program started linked to its process would outlive it (a server ignores
  # its parent's :normal exit) and keep its registered name into the controlled run,
  # where names registered for real in the VM resolve.
  defp stop_linked do
    {:links, links} = Process.info(self(), :links)

    # :shutdown first, as a supervisor would (a Registry shuts its partitions down
    # quietly), then :kill for whatever ignores it.
    # Unlinked from all first: stopping one may stop another through their own links.
    pids = for pid <- links, is_pid(pid), do: {pid, Process.monitor(pid), Process.unlink(pid)}

    for {pid, ref, true} <- pids do
      Process.exit(pid, :shutdown)

      receive do
        {:DOWN, ^ref, _, _, _} -> :ok
      after
        1_000 ->
          Process.exit(pid, :kill)
          receive(do: ({:DOWN, ^ref, _, _, _} -> :ok))
      end
    end
  end

  @doc """
  The distinct outcomes of the program over the iterations of a Lockstep run (the
  program is the root); the run's options are `opts`.
  """
  def controlled(fun, opts \\ []) do
    parent = self()
    ref = make_ref()
    body = fn -> Lockstep.send(parent, {ref, outcome(fun)}) end
    summary = Lockstep.run(body, Keyword.put_new(opts, :iterations, 20))
    outcomes = collect(ref, [])
    {Enum.uniq(outcomes), summary}
  end

  defp collect(ref, acc) do
    receive do
      {^ref, outcome} -> collect(ref, [outcome | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  @doc "Runs `fun`, catching what it raises, throws or exits with."
  def outcome(fun) do
    normalize({:ok, fun.()})
  catch
    :exit, reason -> normalize({:exit, reason})
    :throw, value -> normalize({:throw, value})
    :error, reason -> normalize({:error, reason})
  end

  @doc "Pids and references replaced by `:pid` and `:ref`, recursively."
  def normalize(term) when is_pid(term), do: :pid
  def normalize(term) when is_reference(term), do: :ref
  def normalize(term) when is_list(term), do: normalize_list(term)

  def normalize(term) when is_tuple(term),
    do: term |> Tuple.to_list() |> Enum.map(&normalize/1) |> List.to_tuple()

  def normalize(%{__struct__: _} = struct), do: struct

  def normalize(term) when is_map(term),
    do: Map.new(term, fn {k, v} -> {normalize(k), normalize(v)} end)

  def normalize(term), do: term

  # Improper lists too (an alias is `[:alias | ref]`).
  defp normalize_list([head | tail]), do: [normalize(head) | normalize_list(tail)]
  defp normalize_list([]), do: []
  defp normalize_list(tail), do: normalize(tail)
end
