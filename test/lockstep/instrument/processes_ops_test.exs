defmodule Lockstep.Instrument.ProcessesOpsTest do
  # Each program runs twice: in a plain process on the real BIFs (`Plain`) and as the root
  # of a Lockstep run on `Lockstep.Instrument.Ops.Processes` (`Managed`), over many
  # interleavings; the results and exceptions (class and reason) must be equal, and each
  # test also states what OTP 25 answers.
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.Instrument.Ops.Processes, as: Ops

  @kernel_clashes [
    send: 2,
    spawn: 1,
    spawn: 3,
    spawn_link: 1,
    spawn_link: 3,
    spawn_monitor: 1,
    spawn_monitor: 3,
    node: 0,
    node: 1
  ]

  defmodule Plain do
    @moduledoc false
    # The real calls, under the ops' names.
    import Kernel,
      except: [
        send: 2,
        spawn: 1,
        spawn: 3,
        spawn_link: 1,
        spawn_link: 3,
        spawn_monitor: 1,
        spawn_monitor: 3,
        node: 0,
        node: 1
      ]

    for {{m, f, a}, target} <-
          Enum.uniq_by(Ops.__ops__(), fn {{_, _, a}, t} -> {t, a} end) do
      args = Macro.generate_arguments(a, __MODULE__)

      def unquote(target)(unquote_splicing(args)),
        do: unquote(m).unquote(f)(unquote_splicing(args))
    end

    def recv(timeout) do
      receive do
        m -> m
      after
        timeout -> :timeout
      end
    end

    def flush, do: flush([])

    defp flush(acc) do
      case recv(0) do
        :timeout -> Enum.reverse(acc)
        m -> flush([m | acc])
      end
    end
  end

  defmodule Managed do
    @moduledoc false
    # The ops functions, and receives through Lockstep.
    import Kernel,
      except: [
        send: 2,
        spawn: 1,
        spawn: 3,
        spawn_link: 1,
        spawn_link: 3,
        spawn_monitor: 1,
        spawn_monitor: 3,
        node: 0,
        node: 1
      ]

    require Lockstep

    for {target, a} <- Enum.uniq(for {{_, _, a}, t} <- Ops.__ops__(), do: {t, a}) do
      args = Macro.generate_arguments(a, __MODULE__)
      defdelegate unquote(target)(unquote_splicing(args)), to: Ops
    end

    def recv(timeout) do
      Lockstep.receive do
        m -> m
      after
        timeout -> :timeout
      end
    end

    def flush, do: flush([])

    defp flush(acc) do
      case recv(0) do
        :timeout -> Enum.reverse(acc)
        m -> flush([m | acc])
      end
    end
  end

  # An MFA for the spawn forms.
  def echo(o, parent, x), do: o.send(parent, {:echo, x})

  defp outcome(fun) do
    {:ok, fun.()}
  catch
    class, reason -> {class, reason}
  end

  # The program's outcome on the real BIFs; then, in every iteration of a run, the same
  # program on the ops must come out the same. Returns the outcome.
  defp compare(program, opts \\ []) do
    parent = self()

    {pid, ref} =
      Kernel.spawn_monitor(fn ->
        Kernel.send(parent, {:plain, self(), outcome(fn -> program.(Plain) end)})
      end)

    expected =
      receive do
        {:plain, ^pid, result} -> result
      end

    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    end

    Lockstep.run(
      fn ->
        got = outcome(fn -> program.(Managed) end)

        unless got == expected do
          raise "under Lockstep: #{inspect(got)}, plain OTP: #{inspect(expected)}"
        end
      end,
      Keyword.merge([iterations: 25, crash: :ignore], opts)
    )

    expected
  end

  defp dead_pid(o) do
    {pid, ref} = o.spawn_monitor(fn -> :ok end)
    {:DOWN, ^ref, :process, ^pid, :normal} = o.recv(:infinity)
    pid
  end

  defp waiting(o), do: o.spawn(fn -> o.recv(:infinity) end)

  describe "the ops table" do
    test "every entry names an exported function of the ops module, of the same arity" do
      Code.ensure_loaded!(Ops)

      for {{m, f, a}, target} <- Ops.__ops__() do
        assert function_exported?(Ops, target, a), "#{target}/#{a} for #{inspect({m, f, a})}"
        Code.ensure_loaded!(m)
        assert function_exported?(m, f, a), "#{inspect(m)}.#{f}/#{a} does not exist"
      end

      assert length(Ops.__ops__()) == length(Enum.uniq_by(Ops.__ops__(), &elem(&1, 0)))
    end

    test "the Kernel functions Elixir's compiler inlines are listed under :erlang" do
      listed = for {mfa, _} <- Ops.__ops__(), do: mfa

      for {f, a} <- @kernel_clashes do
        assert {:erlang, f, a} in listed
      end
    end
  end

  describe "send" do
    test "to a pid, itself, an unregistered name, {name, node} and bad destinations" do
      assert compare(fn o ->
               r1 = o.send(self(), :a)
               r2 = outcome(fn -> o.send(:lockstep_ops_nobody, :b) end)
               r3 = o.send({:lockstep_ops_nobody, o.node()}, :c)
               r4 = outcome(fn -> o.send(1, :d) end)
               r5 = outcome(fn -> o.send({:a, :b, :c}, :e) end)
               {r1, r2, r3, r4, r5, o.flush()}
             end) ==
               {:ok, {:a, {:error, :badarg}, :c, {:error, :badarg}, {:error, :badarg}, [:a]}}
    end

    test "send/3 and Process.send/3 answer :ok and check their options" do
      assert compare(fn o ->
               r1 = o.send(self(), :a, [:noconnect])
               r2 = outcome(fn -> o.send(self(), :b, [:bogus]) end)
               r3 = outcome(fn -> o.send(:lockstep_ops_nobody, :c, []) end)
               r4 = outcome(fn -> o.send(self(), :d, :notalist) end)
               {r1, r2, r3, r4, o.flush()}
             end) ==
               {:ok, {:ok, {:error, :badarg}, {:error, :badarg}, {:error, :badarg}, [:a]}}
    end

    test "a message between two processes" do
      assert compare(fn o ->
               me = self()
               o.spawn(fn -> o.send(me, {:hi, o.recv(:infinity)}) end) |> o.send(:there)
               o.recv(:infinity)
             end) == {:ok, {:hi, :there}}
    end
  end

  describe "spawn" do
    test "the fun, node and MFA forms run the child" do
      assert compare(fn o ->
               me = self()
               o.spawn(fn -> o.send(me, 1) end)
               o.spawn(o.node(), fn -> o.send(me, 2) end)
               o.spawn(__MODULE__, :echo, [o, me, 3])
               o.spawn(o.node(), __MODULE__, :echo, [o, me, 4])
               Enum.sort(for _ <- 1..4, do: o.recv(:infinity))
             end) == {:ok, [1, 2, {:echo, 3}, {:echo, 4}]}
    end

    test "a badarg prints the message OTP prints for it, naming the argument" do
      message = fn fun ->
        try do
          fun.()
        rescue
          e -> Exception.message(e)
        end
      end

      {:ok, messages} =
        compare(fn o ->
          [
            message.(fn -> o.send(:lockstep_nobody, :hi) end),
            message.(fn -> o.send(3, :hi) end),
            message.(fn -> o.send(self(), :hi, [:bogus]) end),
            message.(fn -> o.link(3) end),
            message.(fn -> o.unlink(3) end),
            message.(fn -> o.monitor(:process, 3) end),
            message.(fn -> o.demonitor(3, []) end),
            message.(fn -> o.exit(3, :kill) end),
            message.(fn -> o.is_process_alive(3) end),
            message.(fn -> o.register(:lockstep_x, 3) end),
            message.(fn -> o.unregister(:lockstep_nobody) end),
            message.(fn -> o.whereis("x") end),
            message.(fn -> o.process_flag(:trap_exit, :yes) end)
          ]
        end)

      assert Enum.at(messages, 0) =~ "1st argument: invalid destination"
      assert Enum.at(messages, 3) =~ "1st argument: not a pid"
      assert Enum.at(messages, 11) =~ "1st argument: not an atom"
      refute Enum.any?(messages, &(&1 == "argument error"))
    end

    test "bad arguments raise badarg" do
      assert compare(fn o ->
               [
                 outcome(fn -> o.spawn(:not_a_fun) end),
                 outcome(fn -> o.spawn(__MODULE__, :echo, :not_a_list) end),
                 outcome(fn -> o.spawn("m", :f, []) end),
                 outcome(fn -> o.spawn_link(1) end),
                 outcome(fn -> o.spawn_monitor(1) end),
                 outcome(fn -> o.spawn(1, fn -> :ok end) end)
               ]
             end) == {:ok, List.duplicate({:error, :badarg}, 6)}
    end

    test "spawn_link: a trapping parent gets the child's exit signal" do
      assert compare(fn o ->
               false = o.process_flag(:trap_exit, true)
               pid = o.spawn_link(fn -> exit(:oops) end)
               {:EXIT, ^pid, r1} = o.recv(:infinity)
               pid2 = o.spawn_link(__MODULE__, :echo, [o, self(), 5])
               msgs = [o.recv(:infinity), o.recv(:infinity)]
               {r1, {:echo, 5} in msgs, {:EXIT, pid2, :normal} in msgs}
             end) == {:ok, {:oops, true, true}}
    end

    test "spawn_monitor watches a child that exits at once" do
      assert compare(fn o ->
               {pid, ref} = o.spawn_monitor(fn -> exit(:at_once) end)
               {:DOWN, ^ref, :process, ^pid, r1} = o.recv(:infinity)
               {pid2, ref2} = o.spawn_monitor(__MODULE__, :echo, [o, self(), 6])
               msgs = [o.recv(:infinity), o.recv(:infinity)]
               {r1, {:echo, 6} in msgs, {:DOWN, ref2, :process, pid2, :normal} in msgs}
             end) == {:ok, {:at_once, true, true}}
    end

    test "spawn_opt honours :link and :monitor and checks the other options" do
      assert compare(fn o ->
               o.process_flag(:trap_exit, true)
               {pid, ref} = o.spawn_opt(fn -> exit(:x) end, [:link, :monitor])
               got = Enum.sort([o.recv(:infinity), o.recv(:infinity)])
               pid2 = o.spawn_opt(fn -> :ok end, [{:priority, :high}, {:fullsweep_after, 10}])

               {pid3, ref3} =
                 o.spawn_opt(__MODULE__, :echo, [o, self(), 7], [{:monitor, [alias: :demonitor]}])

               msgs = [o.recv(:infinity), o.recv(:infinity)]

               {got == Enum.sort([{:EXIT, pid, :x}, {:DOWN, ref, :process, pid, :x}]),
                is_pid(pid2), {:DOWN, ref3, :process, pid3, :normal} in msgs,
                outcome(fn -> o.spawn_opt(fn -> :ok end, [:bogus]) end),
                outcome(fn -> o.spawn_opt(fn -> :ok end, [{:monitor, [:bad]}]) end),
                outcome(fn -> o.spawn_opt(fn -> :ok end, :link) end)}
             end) ==
               {:ok, {true, true, true, {:error, :badarg}, {:error, :badarg}, {:error, :badarg}}}
    end
  end

  describe "links" do
    test "a link to a dead process raises noproc, or brings {:EXIT, pid, :noproc} to a trapping caller" do
      assert compare(fn o ->
               dead = dead_pid(o)
               r1 = outcome(fn -> o.link(dead) end)
               o.process_flag(:trap_exit, true)
               r2 = o.link(dead)
               {r1, r2, o.flush() == [{:EXIT, dead, :noproc}], outcome(fn -> o.link(1) end)}
             end) == {:ok, {{:error, :noproc}, true, true, {:error, :badarg}}}
    end

    test "an abnormal exit propagates through a link; unlink stops it" do
      assert compare(fn o ->
               me = self()

               middle = fn unlink? ->
                 o.spawn(fn ->
                   o.recv(:infinity)
                   child = o.spawn(fn -> o.recv(:infinity) && exit(:boom) end)
                   true = o.link(child)
                   if unlink?, do: true = o.unlink(child)
                   o.send(child, :go)
                   o.send(me, {:survived, o.recv(100)})
                 end)
               end

               pid = middle.(false)
               ref = o.monitor(:process, pid)
               o.send(pid, :start)
               {:DOWN, ^ref, :process, ^pid, reason} = o.recv(:infinity)
               o.send(middle.(true), :start)
               {reason, o.recv(:infinity), outcome(fn -> o.unlink(:x) end)}
             end) == {:ok, {:boom, {:survived, :timeout}, {:error, :badarg}}}
    end
  end

  describe "monitors" do
    test "by pid: the exit reason, or :noproc for a dead pid; Process.monitor/1 alike" do
      assert compare(fn o ->
               pid = o.spawn(fn -> o.recv(:infinity) && exit(:bye) end)
               ref = o.process_monitor(pid)
               o.send(pid, :go)
               {:DOWN, ^ref, :process, ^pid, r1} = o.recv(:infinity)
               dead = dead_pid(o)
               ref2 = o.monitor(:process, dead)
               {:DOWN, ^ref2, :process, ^dead, r2} = o.recv(:infinity)
               {r1, r2}
             end) == {:ok, {:bye, :noproc}}
    end

    test "by name and {name, node}: the :DOWN names {name, node}; an unheld name is :noproc at once" do
      assert compare(fn o ->
               node = o.node()
               ref = o.monitor(:process, :lockstep_ops_unheld)
               r1 = o.flush()
               ref2 = o.monitor(:process, {:lockstep_ops_unheld, node})
               r2 = o.flush()
               pid = waiting(o)
               true = o.register(:lockstep_ops_held, pid)
               ref3 = o.monitor(:process, :lockstep_ops_held)
               ref4 = o.monitor(:process, {:lockstep_ops_held, node})
               o.exit(pid, :kill)
               downs = [o.recv(:infinity), o.recv(:infinity)]

               {r1 == [{:DOWN, ref, :process, {:lockstep_ops_unheld, node}, :noproc}],
                r2 == [{:DOWN, ref2, :process, {:lockstep_ops_unheld, node}, :noproc}],
                Enum.sort(downs) ==
                  Enum.sort([
                    {:DOWN, ref3, :process, {:lockstep_ops_held, node}, :killed},
                    {:DOWN, ref4, :process, {:lockstep_ops_held, node}, :killed}
                  ])}
             end) == {:ok, {true, true, true}}
    end

    test "monitoring one's own name sets nothing up; bad arguments raise badarg" do
      assert compare(fn o ->
               true = o.register(:lockstep_ops_me, self())
               ref = o.monitor(:process, :lockstep_ops_me)

               {is_reference(ref), o.demonitor(ref, [:info]),
                outcome(fn -> o.monitor(:process, 1) end),
                outcome(fn -> o.monitor(:process, {:a, :b, :c}) end),
                outcome(fn -> o.monitor(:bogus, self()) end),
                outcome(fn -> o.process_monitor("name") end),
                outcome(fn -> o.monitor(:process, self(), [:bogus]) end),
                outcome(fn -> o.monitor(:process, self(), alias: :bogus) end)}
             end) ==
               {:ok,
                {true, false, {:error, :badarg}, {:error, :badarg}, {:error, :badarg},
                 {:error, :badarg}, {:error, :badarg}, {:error, :badarg}}}
    end

    test "demonitor: true; :info tells whether it was active; :flush removes the :DOWN" do
      assert compare(fn o ->
               pid = waiting(o)
               ref = o.monitor(:process, pid)
               r1 = o.demonitor(ref, [:info])
               r2 = o.demonitor(ref, [:info])
               ref2 = o.monitor(:process, pid)
               o.exit(pid, :kill)
               {:DOWN, ^ref2, _, _, :killed} = down = o.recv(:infinity)
               o.send(self(), down)
               r3 = o.demonitor(ref2, [:flush, :info])
               dead = dead_pid(o)
               ref3 = o.monitor(:process, dead)
               o.yield()
               r4 = o.demonitor(ref3, [:flush])

               {r1, r2, r3, r4, o.flush(), o.demonitor(make_ref()),
                outcome(fn -> o.demonitor(:ref) end),
                outcome(fn -> o.demonitor(ref, [:bogus]) end),
                outcome(fn -> o.demonitor(ref, :flush) end)}
             end) ==
               {:ok,
                {true, false, false, true, [], true, {:error, :badarg}, {:error, :badarg},
                 {:error, :badarg}}}
    end
  end

  describe "aliases" do
    test "alias/0 and unalias/1: messages through it until it is deactivated" do
      assert compare(fn o ->
               a = o.make_alias()
               me = self()

               child =
                 o.spawn(fn ->
                   o.recv(:infinity)
                   o.send(a, :first)
                   o.send(me, :sent_first)
                   o.recv(:infinity)
                   o.send(a, :late)
                   o.send(me, :sent_late)
                 end)

               o.send(child, :go)
               r1 = [o.recv(:infinity), o.recv(:infinity)]
               r2 = o.unalias(a)
               o.send(child, :go)

               {r1, r2, o.recv(:infinity), o.recv(10), o.unalias(a), o.unalias(make_ref()),
                outcome(fn -> o.unalias(:x) end), outcome(fn -> o.make_alias([:bogus]) end)}
             end) ==
               {:ok,
                {[:first, :sent_first], true, :sent_late, :timeout, false, false,
                 {:error, :badarg}, {:error, :badarg}}}
    end

    test "alias([:reply]) takes one message" do
      assert compare(fn o ->
               a = o.make_alias([:reply])
               me = self()
               o.spawn(fn -> o.send(a, 1) && o.send(a, 2) && o.send(me, :done) end)
               {o.recv(:infinity), o.recv(:infinity), o.recv(10), o.unalias(a)}
             end) == {:ok, {1, :done, :timeout, false}}
    end

    test "monitor/3 alias modes: demonitor, reply_demonitor, explicit_unalias" do
      assert compare(fn o ->
               me = self()

               replier = fn ->
                 o.spawn(fn ->
                   to = o.recv(:infinity)
                   o.send(to, :reply1)
                   o.send(me, :sent1)
                   to = o.recv(:infinity)
                   o.send(to, :reply2)
                   o.send(me, :sent2)
                   o.recv(:infinity)
                 end)
               end

               run = fn mode, between ->
                 pid = replier.()
                 ref = o.monitor(:process, pid, alias: mode)
                 o.send(pid, ref)
                 first = [o.recv(:infinity), o.recv(:infinity)]
                 between.(ref)
                 o.send(pid, ref)
                 second = [o.recv(:infinity), o.recv(10)]
                 o.exit(pid, :kill)
                 {first, second, o.recv(10) |> elem_or(0)}
               end

               {run.(:demonitor, &o.demonitor/1), run.(:reply_demonitor, fn _ -> :ok end),
                run.(:explicit_unalias, &o.demonitor/1)}
             end) ==
               {:ok,
                {{[:reply1, :sent1], [:sent2, :timeout], :timeout},
                 {[:reply1, :sent1], [:sent2, :timeout], :timeout},
                 {[:reply1, :sent1], [:reply2, :sent2], :timeout}}}
    end
  end

  # The messages before monitor `ref`'s :DOWN, and its reason.
  def until_down(o, ref, seen) do
    case o.recv(:infinity) do
      {:DOWN, ^ref, :process, _, reason} -> {reason, Enum.reverse(seen)}
      other -> until_down(o, ref, [other | seen])
    end
  end

  def elem_or(:timeout, _), do: :timeout
  def elem_or(tuple, i) when is_tuple(tuple), do: elem(tuple, i)

  describe "process_flag, exit and is_process_alive" do
    test "process_flag: :trap_exit returns the previous value; other flags are the real ones" do
      assert compare(fn o ->
               {o.process_flag(:trap_exit, true), o.process_flag(:trap_exit, false),
                outcome(fn -> o.process_flag(:trap_exit, 1) end),
                o.process_flag(:priority, :normal), outcome(fn -> o.process_flag(:bogus, 1) end)}
             end) == {:ok, {false, true, {:error, :badarg}, :normal, {:error, :badarg}}}
    end

    test "exit/2: :kill, :normal to another process, a trapping target, bad arguments" do
      assert compare(fn o ->
               a = waiting(o)
               ref = o.monitor(:process, a)
               true = o.exit(a, :normal)
               alive = o.is_process_alive(a)
               true = o.exit(a, :kill)
               dead = o.is_process_alive(a)
               {:DOWN, ^ref, _, _, r1} = o.recv(:infinity)
               me = self()

               b =
                 o.spawn(fn ->
                   o.process_flag(:trap_exit, true)
                   o.send(me, :trapping)
                   o.send(me, o.recv(:infinity))
                 end)

               :trapping = o.recv(:infinity)
               o.exit(b, :normal)
               {:EXIT, ^me, :normal} = o.recv(:infinity)

               {alive, dead, r1, outcome(fn -> o.exit(1, :x) end),
                outcome(fn -> o.is_process_alive(:x) end)}
             end) == {:ok, {true, false, :killed, {:error, :badarg}, {:error, :badarg}}}
    end

    test "exit(self(), reason) takes effect before it returns, :normal included" do
      assert compare(fn o ->
               me = self()

               watch = fn body ->
                 {_pid, ref} = o.spawn_monitor(body)
                 until_down(o, ref, [])
               end

               {watch.(fn -> o.exit(self(), :normal) && o.send(me, :survived) end),
                watch.(fn -> o.exit(self(), :bye) && o.send(me, :survived) end),
                watch.(fn ->
                  o.process_flag(:trap_exit, true)
                  o.exit(self(), :normal)
                  {:EXIT, pid, :normal} = o.recv(0)
                  o.send(me, pid == self())
                end),
                watch.(fn ->
                  o.process_flag(:trap_exit, true)
                  o.exit(self(), :kill)
                  o.send(me, :survived)
                end)}
             end) ==
               {:ok, {{:normal, []}, {:bye, []}, {:normal, [true]}, {:killed, []}}}
    end
  end

  describe "registered names" do
    test "register, whereis, unregister, registered and their badargs" do
      assert compare(fn o ->
               pid = waiting(o)
               other = waiting(o)
               dead = dead_pid(o)

               {o.register(:lockstep_ops_r1, pid), o.whereis(:lockstep_ops_r1) == pid,
                :lockstep_ops_r1 in o.registered(),
                outcome(fn -> o.register(:lockstep_ops_r1, other) end),
                outcome(fn -> o.register(:lockstep_ops_r2, pid) end),
                outcome(fn -> o.register(:lockstep_ops_r3, dead) end),
                outcome(fn -> o.register(:undefined, other) end),
                outcome(fn -> o.register("name", other) end),
                outcome(fn -> o.register(:lockstep_ops_r4, :not_a_pid) end),
                o.unregister(:lockstep_ops_r1), o.whereis(:lockstep_ops_r1),
                outcome(fn -> o.unregister(:lockstep_ops_r1) end),
                outcome(fn -> o.unregister("x") end), outcome(fn -> o.whereis("x") end)}
             end) ==
               {:ok,
                {true, true, true, {:error, :badarg}, {:error, :badarg}, {:error, :badarg},
                 {:error, :badarg}, {:error, :badarg}, {:error, :badarg}, true, :undefined,
                 {:error, :badarg}, {:error, :badarg}, {:error, :badarg}}}
    end

    test "a name dies with its process" do
      assert compare(fn o ->
               pid = waiting(o)
               true = o.register(:lockstep_ops_dies, pid)
               ref = o.monitor(:process, pid)
               o.exit(pid, :kill)
               {:DOWN, ^ref, _, _, _} = o.recv(:infinity)
               o.whereis(:lockstep_ops_dies)
             end) == {:ok, :undefined}
    end

    test "Process.register/2 and Process.whereis/1 keep the wrappers' guards and errors" do
      {:ok, {nil, clause, argument}} =
        compare(fn o ->
          dead = dead_pid(o)

          {:error, %ArgumentError{message: message}} =
            outcome(fn -> o.process_register(dead, :lockstep_ops_w) end)

          {o.process_whereis(:lockstep_ops_nobody),
           outcome(fn -> o.process_register(self(), :undefined) end),
           String.replace(message, inspect(dead), "PID")}
        end)

      assert clause == {:error, :function_clause}

      assert argument ==
               "could not register PID with name :lockstep_ops_w because it is not alive, " <>
                 "the name is already taken, or it has already been given another name"
    end
  end

  describe ":global" do
    test "register_name, whereis_name, send, unregister_name" do
      name = {:lockstep_ops_global, System.unique_integer()}

      assert compare(fn o ->
               me = self()
               other = waiting(o)

               {o.global_register_name(name, me), o.global_register_name(name, other),
                o.global_register_name(name, other, &:global.random_exit_name/3),
                o.global_whereis_name(name) == me, name in o.global_registered_names(),
                o.global_send(name, :via_global) == me, o.recv(0), o.global_unregister_name(name),
                o.global_whereis_name(name), outcome(fn -> o.global_send(name, :lost) end)}
             end) ==
               {:ok,
                {:yes, :no, :no, true, true, true, :via_global, :ok, :undefined,
                 {:exit, {:badarg, {name, :lost}}}}}
    end
  end

  describe "nodes and yield" do
    test "node/0,1, nodes/0,1, yield/0 on a single node" do
      assert compare(fn o ->
               {o.node(), o.node(self()), o.node(make_ref()), outcome(fn -> o.node(1) end),
                o.nodes(), o.nodes(:this), o.nodes([:this, :visible]), o.nodes(:connected),
                outcome(fn -> o.nodes(:bogus) end), o.yield()}
             end) ==
               {:ok,
                {:nonode@nohost, :nonode@nohost, :nonode@nohost, {:error, :badarg}, [],
                 [:nonode@nohost], [:nonode@nohost], [], {:error, :badarg}, true}}
    end

    test "on simulated nodes: node/1 of a remote child, nodes/0 until a partition's tick" do
      Lockstep.run(
        fn ->
          [:a, :b] = Lockstep.Cluster.start_nodes([:a, :b])
          assert Enum.sort(Ops.nodes()) == [:a, :b]
          me = self()
          child = Ops.spawn(:a, fn -> Ops.send(me, {Ops.node(), Ops.nodes()}) end)
          assert Ops.node(child) == :a

          {:a, seen} = Lockstep.recv()
          assert Enum.sort(seen) == [:b, :nonode@nohost]

          Lockstep.Cluster.partition([:nonode@nohost], [:a])
          assert Enum.sort(Ops.nodes()) == [:a, :b]
          Lockstep.sleep(20_000)
          assert Ops.nodes() == [:b]
          assert Enum.sort(Ops.nodes(:known)) == [:a, :b, :nonode@nohost]
          ref = Ops.monitor(:process, {:whoever, :a})
          assert Lockstep.recv() == {:DOWN, ref, :process, {:whoever, :a}, :noconnection}
        end,
        iterations: 20
      )
    end
  end

  describe "processes outside the run" do
    test "monitor, is_process_alive, link, unlink and exit are the real BIFs" do
      outside = Kernel.spawn(fn -> Process.sleep(:infinity) end)

      Lockstep.run(
        fn ->
          ref = Ops.monitor(:process, outside)
          assert Ops.is_process_alive(outside)
          assert Ops.link(outside) and Ops.unlink(outside)
          assert Ops.exit(outside, :kill)

          # The real :DOWN lands in the real mailbox, untagged.
          receive do
            {:DOWN, ^ref, :process, ^outside, :killed} -> :ok
          after
            2_000 -> flunk("no real :DOWN")
          end

          refute Ops.is_process_alive(outside)

          # alias/0 is a real alias too: an outside process can reply through it.
          a = Ops.make_alias()
          Kernel.spawn(fn -> Kernel.send(a, :from_outside) end)

          receive do
            :from_outside -> :ok
          after
            2_000 -> flunk("no reply through the alias")
          end

          assert Ops.unalias(a)
          refute Ops.unalias(a)
          ref2 = Ops.monitor(:process, outside, alias: :demonitor)
          assert Ops.demonitor(ref2, [:flush, :info]) in [true, false]
          assert Ops.node(outside) == :nonode@nohost
        end,
        iterations: 1
      )

      refute Process.alive?(outside)
    end

    test "a send to a process outside the run is a real send" do
      test = self()
      collector = Kernel.spawn(fn -> receive do: (m -> Kernel.send(test, {:got, m})) end)

      Lockstep.run(fn -> assert Ops.send(collector, :hello) == :hello end, iterations: 1)

      assert_receive {:got, :hello}, 2_000
    end
  end

  describe "bugs the ops let Lockstep find" do
    # The classic: look the server up, start and register it if absent. Two clients racing
    # through the gap both start one, and the second register/2 raises badarg.
    def ensure_server_racy do
      case Ops.whereis(:lockstep_ops_server) do
        :undefined ->
          pid = Ops.spawn(fn -> Lockstep.recv() end)
          Ops.register(:lockstep_ops_server, pid)
          pid

        pid ->
          pid
      end
    end

    def ensure_server_fixed do
      pid = Ops.spawn(fn -> Lockstep.recv() end)

      try do
        Ops.register(:lockstep_ops_server, pid)
        pid
      catch
        :error, :badarg ->
          Ops.exit(pid, :kill)

          case Ops.whereis(:lockstep_ops_server) do
            :undefined -> ensure_server_fixed()
            winner -> winner
          end
      end
    end

    defp two_clients(ensure) do
      fn ->
        me = self()
        for _ <- 1..2, do: Ops.spawn(fn -> Ops.send(me, ensure.()) end)
        [a, b] = [Lockstep.recv(), Lockstep.recv()]
        assert a == b
      end
    end

    test "whereis-then-register is found; the fixed version passes" do
      assert {:error, %Lockstep.BugFound{kind: :crash} = bug} =
               Lockstep.check(two_clients(&ensure_server_racy/0), iterations: 500)

      # OTP's badarg, as Elixir shows it, from the second register/2
      assert Exception.message(bug) =~ "(ArgumentError) argument error"
      assert Exception.message(bug) =~ "FAILS to register"

      assert {:ok, %Lockstep.Summary{iterations: 300}} =
               Lockstep.check(two_clients(&ensure_server_fixed/0), iterations: 300)
    end

    test "a stale :DOWN after demonitor/1 without :flush is found; with it the run passes" do
      body = fn flush ->
        fn ->
          worker = Ops.spawn(fn -> Lockstep.recv() end)
          ref = Ops.monitor(:process, worker)
          Ops.send(worker, :stop)
          Ops.demonitor(ref, flush)

          Lockstep.receive do
            {:DOWN, ^ref, _, _, _} -> raise "stale :DOWN after demonitor"
          after
            0 -> :ok
          end
        end
      end

      assert {:error, %Lockstep.BugFound{kind: :exception}} =
               Lockstep.check(body.([]), iterations: 300)

      assert {:ok, _} = Lockstep.check(body.([:flush]), iterations: 300)
    end
  end
end
