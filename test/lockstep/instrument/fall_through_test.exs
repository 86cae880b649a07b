defmodule Lockstep.Instrument.FallThroughTest do
  # Outside a run, instrumented code must do exactly what the original does (SPEC §9): the
  # same result or the same exception (class and reason), and the same messages left in the
  # caller's mailbox. `:ls_ops` (test/support/erlang/ls_ops.erl) has one function per
  # rewritten operation; `:ls_ops_plain` is the same code, compiled from the same abstract
  # code under another name and never instrumented. Each case runs in a fresh process
  # (registered names, trap_exit and exit signals stay there), once per module.
  use ExUnit.Case, async: true

  setup_all do
    Lockstep.Instrument.instrument!([:ls_ops])
    load_plain_copy(:ls_ops, :ls_ops_plain)
    :ok
  end

  defp load_plain_copy(module, name) do
    {^module, binary, _} = :code.get_object_code(module)

    {:ok, {^module, [debug_info: {:debug_info_v1, backend, data}]}} =
      :beam_lib.chunks(binary, [:debug_info])

    {:ok, forms} = backend.debug_info(:erlang_v1, module, data, [])

    forms =
      Enum.map(forms, fn
        {:attribute, anno, :module, ^module} -> {:attribute, anno, :module, name}
        form -> form
      end)

    {:ok, ^name, plain} = :compile.forms(forms, [:binary])
    {:module, ^name} = :code.load_binary(name, ~c"#{name}.beam", plain)
  end

  # {function, args} | {function, args, messages already in the mailbox} |
  # {function, args, messages, :shape} (compare shapes: integers, lists)
  @cases [
    {:bang, [:self, :hi]},
    {:bang, [:ls_ft_nobody, :hi]},
    {:bang, [123, :hi]},
    {:send2, [:self, :hi]},
    {:send2, [:ls_ft_nobody, :hi]},
    {:send3, [:self, :hi, [:noconnect]]},
    {:send3, [:self, :hi, [:bad_option]]},
    {:send_ref, [:self, :via_fun]},
    {:spawn1, [:ok_fun]},
    {:spawn1, [:not_a_fun]},
    {:spawn3, [:lists, :seq, [1, 2]]},
    {:spawn3, [1, 2, 3]},
    {:spawn_link1, [:ok_fun]},
    {:spawn_monitor1, [:ok_fun]},
    {:spawn_monitor1, [:not_a_fun]},
    {:spawn_opt2, [:ok_fun, [:monitor]]},
    {:spawn_opt2, [:ok_fun, [:link]]},
    {:spawn_opt2, [:ok_fun, :not_a_list]},
    {:link1, [:self]},
    {:link1, [:not_a_pid]},
    {:unlink1, [:self]},
    {:unlink1, [:not_a_pid]},
    {:monitor2, [:process, :self]},
    {:monitor2, [:process, :ls_ft_nobody]},
    {:monitor2, [:process, {:ls_ft_nobody, :nonode@nohost}]},
    {:monitor2, [:bad_type, :self]},
    {:monitor3, [:process, :self, [{:alias, :demonitor}]]},
    {:monitor3, [:process, :self, [:bad_option]]},
    {:demonitor1, [:a_ref]},
    {:demonitor1, [:not_a_ref]},
    {:demonitor2, [:a_ref, [:flush, :info]]},
    {:demonitor2, [:a_ref, [:info]]},
    {:demonitor2, [:a_ref, [:bad_option]]},
    {:alias0, []},
    {:alias1, [[:reply]]},
    {:alias1, [:not_a_list]},
    {:unalias1, [:a_ref]},
    {:unalias1, [:not_a_ref]},
    {:trap_exit, [true]},
    {:trap_exit, [:maybe]},
    {:exit2, [:self, :normal]},
    {:exit2, [:self, :boom]},
    {:exit2, [:not_a_pid, :boom]},
    {:alive, [:self]},
    {:alive, [:not_a_pid]},
    {:register2, [:ls_ft_name, :self]},
    {:register2, [:undefined, :self]},
    {:register2, [:ls_ft_name, :not_a_pid]},
    {:unregister1, [:ls_ft_nobody]},
    {:whereis1, [:ls_ft_nobody]},
    {:whereis1, [123]},
    {:registered0, [], [], :shape},
    {:send_after3, [0, :self, :tick]},
    {:send_after3, [-1, :self, :tick]},
    {:send_after3, [0, 123, :tick]},
    {:start_timer3, [0, :self, :tick]},
    {:start_timer3, [:soon, :self, :tick]},
    {:cancel_timer1, [:a_ref]},
    {:cancel_timer1, [:not_a_ref]},
    {:cancel_timer2, [:a_ref, [{:async, false}, {:info, true}]]},
    {:cancel_timer2, [:a_ref, [{:async, true}]]},
    {:cancel_timer2, [:a_ref, :not_a_list]},
    {:read_timer1, [:a_ref]},
    {:read_timer1, [:not_a_ref]},
    {:sleep1, [0]},
    {:sleep1, [:forever]},
    {:monotonic_time1, [:millisecond], [], :shape},
    {:monotonic_time1, [:fortnight]},
    {:system_time1, [:second], [], :shape},
    {:system_time1, [:fortnight]},
    {:os_system_time1, [:second], [], :shape},
    {:node0, []},
    {:node1, [:self]},
    {:node1, [:not_a_pid]},
    {:nodes0, []},
    {:yield0, []},
    {:ets_new, [:ls_ft_table, [:named_table, :public]]},
    {:ets_new, [:ls_ft_table, [:bad_option]]},
    {:ets_insert, [:ls_ft_no_table, {1, 2}]},
    {:ets_lookup, [:ls_ft_no_table, 1]},
    {:ets_delete, [:ls_ft_no_table]},
    {:rand_uniform, [10], [], :shape},
    {:rand_uniform, [0]},
    {:recv_after, [0], [:hello]},
    {:recv_after, [0], []},
    {:recv_after, [:soon], []},
    {:recv_after, [:soon], [:hello]},
    {:recv_only_after, [0]},
    {:recv_only_after, [-1]},
    {:recv_bound, [:t], [{:x, 1}, {:t, 2}]},
    {:recv_bound, [:t], [{:x, 1}]},
    {:recv_export, [0], [{:b, 7}]},
    {:recv_export, [0], [{:c, 7}]},
    {:recv_nested, [], [:first, :second]},
    {:recv_nested, [], [:first]},
    {:recv_nested, [], [:second]}
  ]

  test "ls_ops is instrumented, its copy is not" do
    assert Lockstep.Instrument.instrumented?(:ls_ops)
    refute Lockstep.Instrument.instrumented?(:ls_ops_plain)
  end

  for {c, i} <- Enum.with_index(@cases) do
    {function, args, preload, compare} =
      case c do
        {f, a} -> {f, a, [], :exact}
        {f, a, p} -> {f, a, p, :exact}
        {f, a, p, cmp} -> {f, a, p, cmp}
      end

    @tag op: {function, args, preload}
    test "#{function}(#{Enum.map_join(args, ", ", &inspect/1)}) with #{inspect(preload)} in the mailbox (#{i})",
         %{op: {function, args, preload}} do
      plain = outcome(:ls_ops_plain, function, args, preload)
      instrumented = outcome(:ls_ops, function, args, preload)
      assert normalize(instrumented, unquote(compare)) == normalize(plain, unquote(compare))
    end
  end

  defp outcome(module, function, args, preload) do
    parent = self()
    tag = make_ref()

    {pid, monitor} =
      spawn_monitor(fn ->
        Enum.each(preload, &send(self(), &1))
        args = Enum.map(args, &arg/1)

        result =
          try do
            case function do
              :send_ref -> {:ok, apply(apply(module, :send_ref, []), args)}
              _ -> {:ok, apply(module, function, args)}
            end
          catch
            class, reason -> {class, reason}
          end

        # timers of 0 ms and the 'DOWN' of a spawned process arrive
        Process.sleep(10)
        send(parent, {tag, result, flush([])})
      end)

    receive do
      {^tag, result, messages} ->
        Process.demonitor(monitor, [:flush])
        {result, messages}

      {:DOWN, ^monitor, :process, ^pid, reason} ->
        {:died, reason}
    after
      5_000 -> flunk("#{module}.#{function} did not return")
    end
  end

  defp arg(:self), do: self()
  defp arg(:a_ref), do: make_ref()
  defp arg(:ok_fun), do: fn -> :ok end
  defp arg(other), do: other

  defp flush(acc) do
    receive do
      msg -> flush([msg | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  defp normalize(term, :exact), do: anonymize(term)
  defp normalize(term, :shape), do: term |> anonymize() |> shape()

  defp anonymize(pid) when is_pid(pid), do: :pid
  defp anonymize(ref) when is_reference(ref), do: :ref
  defp anonymize(fun) when is_function(fun), do: :fun
  defp anonymize(list) when is_list(list), do: Enum.map(list, &anonymize/1)

  defp anonymize(tuple) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> anonymize() |> List.to_tuple()

  defp anonymize(other), do: other

  defp shape(n) when is_integer(n), do: :integer
  defp shape(list) when is_list(list), do: :list
  defp shape(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> Enum.map(&shape/1)
  defp shape(other), do: other
end
