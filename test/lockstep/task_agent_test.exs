defmodule Lockstep.TaskAgentTest do
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{Agent, BugFound, Task}

  # Runs `fun` as the root of every iteration and returns the values it returned.
  defp results(fun, opts) do
    test = self()
    Lockstep.run(fn -> Lockstep.send(test, {:root_result, fun.()}) end, opts)
    collect()
  end

  defp collect do
    receive do
      {:root_result, value} -> [value | collect()]
    after
      0 -> []
    end
  end

  # The value every iteration returned (the same in all, up to pids).
  defp result(fun, opts \\ [iterations: 20]) do
    values = results(fun, opts)
    assert length(values) == Keyword.get(opts, :iterations, 100)
    assert [_] = values |> Enum.map(&shape/1) |> Enum.uniq()
    hd(values)
  end

  # `term` with every pid and reference replaced by a placeholder, to compare iterations.
  defp shape(pid) when is_pid(pid), do: :pid
  defp shape(ref) when is_reference(ref), do: :ref
  defp shape(list) when is_list(list), do: Enum.map(list, &shape/1)

  defp shape(tuple) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> shape() |> List.to_tuple()

  defp shape(%_{} = struct),
    do: struct |> Map.from_struct() |> shape() |> Map.put(:__struct__, struct.__struct__)

  defp shape(map) when is_map(map), do: Map.new(map, fn {k, v} -> {shape(k), shape(v)} end)
  defp shape(other), do: other

  defp exit_of(fun) do
    fun.()
  catch
    :exit, reason -> {:exited, reason}
  end

  describe "Task.async/1 and await/2" do
    test "await returns the task's result" do
      assert result(fn ->
               task = Task.async(fn -> 6 * 7 end)
               %Task{pid: pid, ref: ref, owner: owner} = task
               {Task.await(task), is_pid(pid), is_reference(ref), owner == self()}
             end) == {42, true, true, true}
    end

    test "a task sleeping 10_000 virtual ms advances Lockstep.now() by 10_000" do
      assert result(fn ->
               t0 = Lockstep.now()
               task = Task.async(fn -> Lockstep.sleep(10_000) && :slept end)
               {Task.await(task, 20_000), Lockstep.now() - t0}
             end) == {:slept, 10_000}
    end

    test "an await timeout exits with {:timeout, {Lockstep.Task, :await, _}} in virtual time" do
      {exited, waited} =
        result(fn ->
          t0 = Lockstep.now()
          task = Task.async(fn -> Lockstep.sleep(10_000) end)
          exited = exit_of(fn -> Task.await(task, 100) end)
          {exited, Lockstep.now() - t0}
        end)

      assert {:exited, {:timeout, {Task, :await, [%Task{}, 100]}}} = exited
      assert waited == 100
    end

    test "a task that dies makes await exit with its reason" do
      {crashed, normal} =
        result(
          fn ->
            # Trap exits, or the link to the crashing task would kill the owner first.
            Lockstep.flag(:trap_exit, true)
            crashing = Task.async(fn -> raise "task failed" end)
            quitting = Task.async(fn -> exit(:normal) end)
            {exit_of(fn -> Task.await(crashing) end), exit_of(fn -> Task.await(quitting, 50) end)}
          end,
          iterations: 20,
          crash: :ignore
        )

      assert {:exited,
              {{%RuntimeError{message: "task failed"}, [_ | _]}, {Task, :await, [_, 5000]}}} =
               crashed

      assert {:exited, {:normal, {Task, :await, [%Task{}, 50]}}} = normal
    end

    test "async links: a crashing task kills its non-trapping owner" do
      assert {%RuntimeError{message: "task failed"}, [_ | _]} =
               result(
                 fn ->
                   owner =
                     Lockstep.spawn(fn ->
                       Lockstep.receive(do: (:go -> :ok))
                       Task.await(Task.async(fn -> raise "task failed" end))
                     end)

                   ref = Lockstep.monitor(owner)
                   Lockstep.send(owner, :go)

                   Lockstep.receive do
                     {:DOWN, ^ref, :process, _, reason} -> reason
                   end
                 end,
                 iterations: 20,
                 crash: :ignore
               )
    end

    test "only the owner may await" do
      assert result(fn ->
               me = self()
               task = Task.async(fn -> :x end)

               Lockstep.spawn(fn ->
                 outcome =
                   try do
                     Task.await(task)
                   rescue
                     e in ArgumentError -> Exception.message(e) =~ "owner"
                   end

                 Lockstep.send(me, {:other, outcome})
               end)

               other = Lockstep.receive(do: ({:other, outcome} -> outcome))
               {other, Task.await(task)}
             end) == {true, :x}
    end
  end

  describe "Task.await_many/2" do
    test "returns the results in the order of the tasks" do
      assert result(fn ->
               t0 = Lockstep.now()

               tasks =
                 for {value, delay} <- [a: 300, b: 100, c: 200, d: 0] do
                   Task.async(fn ->
                     Lockstep.sleep(delay)
                     value
                   end)
                 end

               {Task.await_many(tasks, 1_000), Lockstep.now() - t0, Task.await_many([])}
             end) == {[:a, :b, :c, :d], 300, []}
    end

    test "one timeout covers all tasks" do
      {exited, waited} =
        result(fn ->
          t0 = Lockstep.now()
          fast = Task.async(fn -> Lockstep.sleep(50) && :fast end)
          slow = Task.async(fn -> Lockstep.sleep(500) && :slow end)
          exited = exit_of(fn -> Task.await_many([fast, slow], 100) end)
          {exited, Lockstep.now() - t0}
        end)

      assert {:exited, {:timeout, {Task, :await_many, [[%Task{}, %Task{}], 100]}}} = exited
      assert waited == 100
    end
  end

  describe "Task.start/1 and start_link/1" do
    test "run the function in a new process" do
      assert result(fn ->
               me = self()
               {:ok, a} = Task.start(fn -> Lockstep.send(me, {:ran, :start}) end)
               {:ok, b} = Task.start_link(fn -> Lockstep.send(me, {:ran, :start_link}) end)
               got = Enum.sort(for _ <- 1..2, do: Lockstep.receive(do: ({:ran, kind} -> kind)))
               {is_pid(a), is_pid(b), a != b, got}
             end) == {true, true, true, [:start, :start_link]}
    end

    test "start_link links the caller" do
      assert {:EXIT, {%RuntimeError{message: "boom"}, _}} =
               result(
                 fn ->
                   Lockstep.flag(:trap_exit, true)
                   {:ok, pid} = Task.start_link(fn -> raise "boom" end)

                   Lockstep.receive do
                     {:EXIT, ^pid, reason} -> {:EXIT, reason}
                   end
                 end,
                 iterations: 10,
                 crash: :ignore
               )
    end
  end

  describe "Agent" do
    test "get, update, get_and_update, cast and stop" do
      assert result(fn ->
               {:ok, agent} = Agent.start_link(fn -> 1 end)
               got = Agent.get(agent, & &1)
               :ok = Agent.update(agent, &(&1 + 10))
               before = Agent.get_and_update(agent, fn n -> {n, n * 2} end)
               :ok = Agent.cast(agent, &(&1 + 1))
               after_cast = Agent.get(agent, &{:value, &1})
               stopped = Agent.stop(agent)
               {got, before, after_cast, stopped, Lockstep.alive?(agent)}
             end) == {1, 11, {:value, 23}, :ok, false}
    end

    test "named agents, start/2, and calls to a stopped agent" do
      {values, exited} =
        result(fn ->
          {:ok, _} = Agent.start(fn -> %{} end, name: :gen_agent)
          {:error, {:already_started, _}} = Agent.start_link(fn -> :other end, name: :gen_agent)
          :ok = Agent.update(:gen_agent, &Map.put(&1, :k, :v))
          values = Agent.get(:gen_agent, &Map.to_list/1)
          :ok = Agent.stop(:gen_agent, :shutdown, 1_000)
          {values, exit_of(fn -> Agent.get(:gen_agent, & &1) end)}
        end)

      assert values == [k: :v]

      assert {:exited, {:noproc, {Lockstep.GenServer, :call, [:gen_agent, {:get, _}, 5000]}}} =
               exited
    end

    test "get_and_update whose function returns no {reply, state} stops the agent, as Agent does" do
      {exited, alive?} =
        result(
          fn ->
            {:ok, agent} = Agent.start(fn -> 1 end)
            exited = exit_of(fn -> Agent.get_and_update(agent, fn n -> n end) end)
            {exited, Lockstep.alive?(agent)}
          end,
          iterations: 10,
          crash: :ignore
        )

      assert {:exited, {{:bad_return_value, 1}, {Lockstep.GenServer, :call, [_, _, 5000]}}} =
               exited

      refute alive?
    end

    test "a slow get times out in virtual time" do
      {exited, waited} =
        result(fn ->
          {:ok, agent} = Agent.start_link(fn -> 0 end)
          t0 = Lockstep.now()

          exited =
            exit_of(fn ->
              Agent.get(agent, fn n -> Lockstep.sleep(1_000) && n end, 100)
            end)

          {exited, Lockstep.now() - t0}
        end)

      assert {:exited, {:timeout, {Lockstep.GenServer, :call, [_, {:get, _}, 100]}}} = exited
      assert waited == 100
    end

    test "get then update from two tasks loses an update; get_and_update does not" do
      body = fn atomic? ->
        fn ->
          {:ok, agent} = Agent.start_link(fn -> 0 end)

          tasks =
            for _ <- 1..2 do
              Task.async(fn ->
                if atomic? do
                  Agent.get_and_update(agent, fn n -> {n, n + 1} end)
                else
                  n = Agent.get(agent, & &1)
                  Agent.update(agent, fn _ -> n + 1 end)
                end
              end)
            end

          Task.await_many(tasks)
          final = Agent.get(agent, & &1)
          if final != 2, do: raise("lost update: agent holds #{final}")
          final
        end
      end

      bug = assert_raise BugFound, fn -> Lockstep.run(body.(false), iterations: 300, seed: 11) end
      assert bug.kind == :exception
      assert {:error, %RuntimeError{message: "lost update: agent holds 1"}, _} = bug.reason

      assert %Lockstep.Summary{iterations: 300} =
               Lockstep.run(body.(true), iterations: 300, seed: 11)
    end
  end
end
