defmodule Lockstep.Otp.TaskTest do
  # The real Task and Task.Supervisor under control, each program run under plain OTP 25
  # and under Lockstep.
  use Lockstep.Test, async: true

  alias Lockstep.OtpCompare
  alias Lockstep.OtpTask.Fanout

  @moduletag :capture_log
  @app [Fanout]

  defp agree(fun, opts \\ []) do
    opts = Keyword.merge([iterations: 30, instrument: @app], opts)
    {plain, controlled} = OtpCompare.both(fun, opts)
    assert controlled == [plain]
    plain
  end

  test "async and await, await_many keeps the order of the tasks" do
    body = fn ->
      one = Task.async(fn -> Process.sleep(60) && :one end)
      two = Task.async(fn -> Process.sleep(20) && :two end)
      first = Task.await(one)

      many =
        Task.await_many([
          Task.async(fn -> Process.sleep(40) && 3 end),
          two,
          Task.async(fn -> 4 end)
        ])

      {first, many}
    end

    assert {:ok, {:one, [3, :two, 4]}} = agree(body)
  end

  test "await past its timeout exits the caller with {:timeout, {Task, :await, _}}; the task runs on" do
    body = fn ->
      task = Task.async(fn -> Process.sleep(300) && :late end)

      reason =
        try do
          Task.await(task, 50)
        catch
          :exit, {:timeout, {Task, :await, [^task, 50]}} -> :timeout
        end

      {reason, Process.alive?(task.pid), Task.shutdown(task, :brutal_kill),
       Process.alive?(task.pid)}
    end

    assert {:ok, {:timeout, true, nil, false}} = agree(body)
  end

  test "yield, yield_many and shutdown" do
    body = fn ->
      slow = Task.async(fn -> Process.sleep(200) && :slow end)
      fast = Task.async(fn -> :fast end)
      early = Task.yield(slow, 50)
      late = Task.yield(slow, 1_000)
      many = Task.yield_many([fast, Task.async(fn -> Process.sleep(500) && :never end)], 100)
      [{_, got_fast}, {sleeper, nil}] = many
      stopped = Task.shutdown(sleeper)
      finished = Task.async(fn -> :done end)
      Process.sleep(50)
      {early, late, got_fast, stopped, Task.shutdown(finished)}
    end

    assert {:ok, {nil, {:ok, :slow}, {:ok, :fast}, nil, {:ok, :done}}} = agree(body)
  end

  test "async_stream: ordered results, at most :max_concurrency jobs at once" do
    body = fn ->
      tab = Fanout.new_table()
      results = Fanout.squares(Enum.to_list(1..6), tab, max_concurrency: 3)
      {results, Fanout.max_running(tab)}
    end

    assert {:ok, {[ok: 1, ok: 4, ok: 9, ok: 16, ok: 25, ok: 36], 3}} = agree(body)
  end

  test "async_stream ordered: false yields results as the jobs finish" do
    body = fn ->
      tab = Fanout.new_table()

      results =
        Fanout.squares(Enum.to_list(1..5), tab, ordered: false, max_concurrency: 5, unit: 50)

      {results, Fanout.max_running(tab)}
    end

    assert {:ok, {[ok: 25, ok: 16, ok: 9, ok: 4, ok: 1], 5}} = agree(body)
  end

  test "async_stream with :timeout and on_timeout: :kill_task" do
    body = fn ->
      tab = Fanout.new_table()
      Fanout.squares(Enum.to_list(1..4), tab, timeout: 250, on_timeout: :kill_task, unit: 100)
    end

    assert {:ok, [exit: :timeout, exit: :timeout, ok: 9, ok: 16]} = agree(body)
  end

  test "Task.Supervisor: async, async_nolink of a crashing task, start_child, children" do
    body = fn ->
      {:ok, sup} = Task.Supervisor.start_link()
      value = Task.Supervisor.async(sup, fn -> :linked end) |> Task.await()
      crashed = Task.Supervisor.async_nolink(sup, fn -> raise "boom" end) |> Task.yield(1_000)
      me = self()

      {:ok, child} =
        Task.Supervisor.start_child(sup, fn -> receive(do: (:go -> send(me, :went))) end)

      kids = Task.Supervisor.children(sup)
      send(child, :go)
      receive(do: (:went -> :ok))
      tab = Fanout.new_table()
      stream = Fanout.squares_supervised(sup, [1, 2, 3], tab, max_concurrency: 2)

      {value, match?({:exit, {%RuntimeError{message: "boom"}, _}}, crashed), kids == [child],
       stream, Fanout.max_running(tab)}
    end

    assert {:ok, {:linked, true, true, [ok: 1, ok: 4, ok: 9], 2}} = agree(body, crash: :ignore)
  end

  test "a crashing async task: a trapping caller's await exits with the crash, the :EXIT arrives" do
    body = fn ->
      Process.flag(:trap_exit, true)
      task = Task.async(fn -> raise "task failed" end)
      reason = catch_exit(Task.await(task))
      got = receive(do: ({:EXIT, pid, {%RuntimeError{}, _}} -> pid == task.pid))

      {match?(
         {{%RuntimeError{message: "task failed"}, [_ | _]}, {Task, :await, [^task, 5000]}},
         reason
       ), got}
    end

    assert {:ok, {true, true}} = agree(body, crash: :ignore)
  end

  test "a crashing async task is a :crash under the default options, its exception reported" do
    body = fn -> Task.await(Task.async(fn -> raise "task failed" end)) end
    assert {:died, {%RuntimeError{message: "task failed"}, _}} = OtpCompare.plain(body)
    assert {:error, bug} = Lockstep.check(body, iterations: 5, instrument: @app)
    assert bug.kind == :crash
    # Task.Supervised catches the exception and exits with it, as in OTP.
    assert {:exit, {%RuntimeError{message: "task failed"}, [_ | _]}, _} = bug.reason
  end

  test "Task.start, Task.start_link and Task.completed" do
    body = fn ->
      me = self()
      {:ok, a} = Task.start(fn -> send(me, {:ran, :start}) end)
      {:ok, b} = Task.start_link(fn -> send(me, {:ran, :start_link}) end)
      ran = for _ <- 1..2, do: receive(do: ({:ran, how} -> how))
      {Enum.sort(ran), a != b, Task.await(Task.completed(:already))}
    end

    assert {:ok, {[:start, :start_link], true, :already}} = agree(body)
  end

  test "async_stream's ordered results hold in every schedule (the issue's test)" do
    body = fn ->
      tab = Fanout.new_table()
      inputs = Enum.to_list(1..8)
      assert Fanout.squares(inputs, tab, max_concurrency: 4) == Enum.map(inputs, &{:ok, &1 * &1})
      assert Fanout.max_running(tab) <= 4
    end

    assert %Lockstep.Summary{iterations: 1_000} =
             Lockstep.run(body, iterations: 1_000, instrument: @app)
  end
end
