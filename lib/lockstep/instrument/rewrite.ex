defmodule Lockstep.Instrument.Rewrite do
  @moduledoc false
  # The rewriting half of `Lockstep.Instrument`: a pass over a module's Erlang abstract
  # code (the `erlang_v1` debug info of an Elixir or an Erlang module alike) that turns the
  # operations of SPEC §9 into sync points. It is the technique of Concuerror's
  # instrumenter (Christakis, Gotovos, Sagonas, "Systematic Testing for Detecting
  # Concurrency Errors in Erlang Programs", ICST 2013): every operation whose outcome
  # depends on the interleaving goes through the scheduler, and everything else runs as it
  # is.
  #
  # Rules:
  #
  #   * A call `M:F(A1..An)` listed in the ops table (remote, an auto-imported local BIF
  #     call, `Dest ! Msg`, or a `fun M:F/N` value) becomes
  #
  #         case erlang:get('$lockstep') of
  #           undefined -> M:F(V1..Vn);     % not managed: the original call
  #           _ -> Ops:Target(V1..Vn)       % managed: a sync point of the run
  #         end
  #
  #     with non-trivial arguments bound to fresh variables first, so each is evaluated
  #     once and nested operations are not copied. (Erlang leaves the order in which a
  #     call's arguments are evaluated unspecified; left to right is one of the orders.)
  #
  #   * A `receive` becomes the same test around two copies: the original receive, left
  #     entirely as it was (a process that is not managed never becomes one, so nothing in
  #     it needs a check), and a call to `Lockstep.Runtime.instrumented_receive/3` — the
  #     receive protocol of the `Lockstep.receive` macro — given one fun of two modes:
  #     `(scan, Tag, Wait)` selects the first message of this run matching a clause, and
  #     `(test, Msg, _)` tests a message handed over with the wake-up. The message it returns is matched again by the original
  #     clauses in a `case` in the caller's scope, so the clause bodies, their exported
  #     variables, the implicitly bound variables of the patterns (Erlang's pins) and the
  #     `after` body keep their meaning exactly, and the `after` value is computed at run
  #     time as it was.
  #
  #   * Patterns and guards are never rewritten (guards cannot call these functions), and
  #     every generated node keeps the annotation (file line) of the code it replaces, so
  #     stack traces point at the user's line.
  #
  #   * The managed branch first notes its call site, `"lib/my_app/server.ex:12"`, when the
  #     iteration captures its trace (`'$lockstep_sites'` is in the process dictionary:
  #     only in the re-run of a failing iteration that builds the report), so the events
  #     of the operation show where it was made:
  #
  #         _ -> case erlang:get('$lockstep_sites') of
  #                undefined -> ok;
  #                _ -> 'Elixir.Lockstep.Runtime':site(<<"lib/my_app/server.ex:12">>)
  #              end,
  #              Ops:Target(V1..Vn)
  #
  # Generated variables are named `'$lockstep_N'`: no Erlang or Elixir variable can be
  # spelled with a `$`.

  @runtime :"Elixir.Lockstep.Runtime"
  @managed_key :"$lockstep"
  @nomatch :"$lockstep_nomatch"
  @matched :"$lockstep_msg"
  @timed_out :"$lockstep_timeout"
  @sites_key :"$lockstep_sites"

  defstruct table: %{},
            locals: MapSet.new(),
            no_auto_import: MapSet.new(),
            counter: 0,
            operations: 0,
            file: "nofile",
            library?: false

  @doc false
  # Rewrites `forms`; `table` maps `{module, function, arity}` to `{ops_module, target}`.
  # `library?`: the module is OTP's or Elixir's (its call sites are looked up at run time,
  # see `Runtime.library_site/1`). Returns the new forms and how many operations became
  # sync points.
  def forms(forms, table, library? \\ false) do
    state = %__MODULE__{
      library?: library?,
      table: table,
      locals: local_functions(forms),
      no_auto_import: no_auto_import(forms)
    }

    {forms, state} = Enum.map_reduce(forms, state, &form/2)
    {forms, state.operations}
  end

  defp local_functions(forms) do
    for {:function, _, name, arity, _} <- forms, into: MapSet.new(), do: {name, arity}
  end

  # `-compile(no_auto_import)` turns off every auto-import (Elixir modules carry it: their
  # calls are all remote), `{no_auto_import, [F/A]}` some.
  defp no_auto_import(forms) do
    Enum.reduce(forms, MapSet.new(), fn
      {:attribute, _, :compile, options}, acc ->
        options
        |> List.wrap()
        |> Enum.reduce(acc, fn
          :no_auto_import, _acc -> :all
          {:no_auto_import, list}, acc when acc != :all -> MapSet.union(acc, MapSet.new(list))
          _other, acc -> acc
        end)

      _form, acc ->
        acc
    end)
  end

  defp form({:attribute, _, :file, {file, _line}} = form, state),
    do: {form, %{state | file: Path.relative_to_cwd(to_string(file))}}

  defp form({:function, anno, name, arity, clauses}, state) do
    {clauses, state} = Enum.map_reduce(clauses, state, &clause/2)
    {{:function, anno, name, arity, clauses}, state}
  end

  defp form(form, state), do: {form, state}

  defp clause({:clause, anno, patterns, guards, body}, state) do
    {body, state} = exprs(body, state)
    {{:clause, anno, patterns, guards, body}, state}
  end

  defp exprs(list, state), do: Enum.map_reduce(list, state, &expr/2)

  # Operations ------------------------------------------------------------------------------

  defp expr({:call, anno, {:remote, _, {:atom, _, m}, {:atom, _, f}} = callee, args}, state) do
    {args, state} = exprs(args, state)

    case Map.fetch(state.table, {m, f, length(args)}) do
      {:ok, target} -> guarded(anno, callee, target, args, state)
      :error -> {{:call, anno, callee, args}, state}
    end
  end

  defp expr({:call, anno, {:atom, fanno, f}, args}, state) do
    {args, state} = exprs(args, state)
    arity = length(args)

    with true <- auto_imported?(f, arity, state),
         {:ok, target} <- Map.fetch(state.table, {:erlang, f, arity}) do
      guarded(anno, remote(fanno, :erlang, f), target, args, state)
    else
      _ -> {{:call, anno, {:atom, fanno, f}, args}, state}
    end
  end

  defp expr({:op, anno, :!, dest, msg}, state) do
    {[dest, msg], state} = exprs([dest, msg], state)

    case Map.fetch(state.table, {:erlang, :send, 2}) do
      {:ok, target} -> guarded(anno, remote(anno, :erlang, :send), target, [dest, msg], state)
      :error -> {{:op, anno, :!, dest, msg}, state}
    end
  end

  defp expr({:fun, anno, {:function, {:atom, _, m}, {:atom, _, f}, {:integer, _, n}}} = e, state),
    do: fun_reference(e, anno, m, f, n, state)

  defp expr({:fun, anno, {:function, m, f, n}} = e, state)
       when is_atom(m) and is_atom(f) and is_integer(n),
       do: fun_reference(e, anno, m, f, n, state)

  # The receive `Lockstep.receive` expands to is already the run's protocol: only the user
  # code in its bodies is rewritten.
  defp expr({:receive, anno, clauses}, state) when is_list(clauses) do
    if lockstep_receive?(clauses) do
      {clauses, state} = Enum.map_reduce(clauses, state, &clause/2)
      {{:receive, anno, clauses}, state}
    else
      receive_({:receive, anno, clauses}, anno, clauses, nil, state)
    end
  end

  defp expr({:receive, anno, clauses, timeout, after_body} = original, state) do
    if lockstep_receive?(clauses) do
      {clauses, state} = Enum.map_reduce(clauses, state, &clause/2)
      {after_body, state} = exprs(after_body, state)
      {{:receive, anno, clauses, timeout, after_body}, state}
    else
      receive_(original, anno, clauses, {timeout, after_body}, state)
    end
  end

  # Forms that hold patterns: only their expressions are rewritten.
  defp expr({:clause, _, _, _, _} = c, state), do: clause(c, state)

  defp expr({:match, anno, pattern, e}, state) do
    {e, state} = expr(e, state)
    {{:match, anno, pattern, e}, state}
  end

  defp expr({kind, anno, pattern, e}, state)
       when kind in [:generate, :b_generate, :maybe_match] do
    {e, state} = expr(e, state)
    {{kind, anno, pattern, e}, state}
  end

  defp expr({:fun, anno, {:clauses, clauses}}, state) do
    {clauses, state} = Enum.map_reduce(clauses, state, &clause/2)
    {{:fun, anno, {:clauses, clauses}}, state}
  end

  defp expr({:named_fun, anno, name, clauses}, state) do
    {clauses, state} = Enum.map_reduce(clauses, state, &clause/2)
    {{:named_fun, anno, name, clauses}, state}
  end

  # Every other expression: its sub-terms after the annotation.
  defp expr(tuple, state) when is_tuple(tuple) and tuple_size(tuple) >= 2 do
    [tag, anno | rest] = Tuple.to_list(tuple)
    {rest, state} = Enum.map_reduce(rest, state, &expr/2)
    {List.to_tuple([tag, anno | rest]), state}
  end

  defp expr(list, state) when is_list(list), do: exprs(list, state)
  defp expr(other, state), do: {other, state}

  # Every clause of the macro's receive starts by reporting the message it took.
  defp lockstep_receive?([_ | _] = clauses) do
    Enum.all?(clauses, fn
      {:clause, _, _, _,
       [{:call, _, {:remote, _, {:atom, _, @runtime}, {:atom, _, :consumed}}, _} | _]} ->
        true

      _ ->
        false
    end)
  end

  defp lockstep_receive?(_), do: false

  defp auto_imported?(f, arity, state) do
    not MapSet.member?(state.locals, {f, arity}) and
      state.no_auto_import != :all and
      not MapSet.member?(state.no_auto_import, {f, arity}) and
      :erl_internal.bif(f, arity)
  end

  defp guarded(anno, callee, {ops, target}, args, state) do
    state = %{state | operations: state.operations + 1}
    {binds, vars, state} = bind_args(anno, args, state)
    original = {:call, anno, callee, vars}
    controlled = located(anno, {:call, anno, remote(anno, ops, target), vars}, state)
    block(anno, binds ++ [if_managed(anno, controlled, original)], state)
  end

  # `fun erlang:send/2` as a value: a fun of the same arity whose body is the guarded call.
  defp fun_reference(original, anno, m, f, n, state) do
    case Map.fetch(state.table, {m, f, n}) do
      {:ok, target} ->
        {params, state} = fresh_vars(anno, n, state)
        {body, state} = guarded(anno, remote(anno, m, f), target, params, state)
        {{:fun, anno, {:clauses, [{:clause, anno, params, [], [body]}]}}, state}

      :error ->
        {original, state}
    end
  end

  # Receive -------------------------------------------------------------------------------

  defp receive_(original, anno, clauses, after_clause, state) do
    state = %{state | operations: state.operations + 1}
    {tag, state} = fresh_var(anno, state)
    {seq, state} = fresh_var(anno, state)
    {msg, state} = fresh_var(anno, state)

    {wait, state} = fresh_var(anno, state)

    # This run's messages, `{Tag, msg, Seq, Payload}`, and messages from outside the run
    # (neither tagged with this run's tag nor a real exit signal, which the runtime
    # handles), in one selective receive: the first in mailbox order that a clause takes.
    scan_clauses =
      for {:clause, canno, [pattern], guards, _body} <- clauses do
        tagged = {:tuple, canno, [tag, {:atom, canno, :msg}, seq, {:match, canno, pattern, msg}]}
        {:clause, canno, [tagged], guards, [{:tuple, canno, [seq, msg]}]}
      end ++
        for {:clause, canno, [pattern], guards, _body} <- clauses do
          outside = outside_guard(canno, msg, tag)
          guards = if guards == [], do: [[outside]], else: Enum.map(guards, &(&1 ++ [outside]))

          {:clause, canno, [{:match, canno, pattern, msg}], guards,
           [{:tuple, canno, [{:atom, canno, :external}, msg]}]}
        end

    nomatch = [{:atom, anno, @nomatch}]
    scan_body = {:receive, anno, scan_clauses, wait, nomatch}

    test_clauses =
      for(
        {:clause, canno, [pattern], guards, _body} <- clauses,
        do: {:clause, canno, [pattern], guards, [{:atom, canno, true}]}
      ) ++
        [{:clause, anno, [{:var, anno, :_}], [], [{:atom, anno, false}]}]

    # Both in one fun, `(scan, Tag, Wait)` and `(test, Msg, _)`: a receive makes one
    # closure, not two (OTP 25 allocates every fun it makes, about 10-20 ns each).
    underscore = {:var, anno, :_}

    matcher =
      {:fun, anno,
       {:clauses,
        [
          {:clause, anno, [{:atom, anno, :scan}, tag, wait], [], [scan_body]},
          {:clause, anno, [{:atom, anno, :test}, msg, underscore], [],
           [{:case, anno, msg, test_clauses}]}
        ]}}

    {clauses, state} = Enum.map_reduce(clauses, state, &clause/2)

    {timeout, on_timeout, state} =
      case after_clause do
        nil ->
          {{:atom, anno, :infinity}, [], state}

        {timeout, body} ->
          {timeout, state} = expr(timeout, state)
          {body, state} = exprs(body, state)
          {timeout, [{:clause, anno, [{:atom, anno, @timed_out}], [], body}], state}
      end

    description = {:string, anno, String.to_charlist(describe(anno, original, state))}

    call =
      {:call, anno, remote(anno, @runtime, :instrumented_receive),
       [matcher, timeout, description]}

    matched =
      {:clause, anno, [{:tuple, anno, [{:atom, anno, @matched}, msg]}], [],
       [{:case, anno, msg, clauses}]}

    controlled = located(anno, {:case, anno, call, [matched | on_timeout]}, state)
    {if_managed(anno, controlled, original), state}
  end

  # Not one of this run's messages or wake-ups (tuples whose first element is the run's
  # tag), nor a real `{'EXIT', _, _}`, nor the BEAM's copy of a scheduled 'ETS-TRANSFER'
  # (`Lockstep.ETS.give_away/3`, its gift marked `{Marker, Gift}`):
  #   not is_tuple(M) orelse (tuple_size(M) < 1 orelse element(1, M) =/= Tag)
  #     andalso (tuple_size(M) =/= 3 orelse element(1, M) =/= 'EXIT')
  #     andalso (tuple_size(M) =/= 4 orelse element(1, M) =/= 'ETS-TRANSFER'
  #              orelse not is_tuple(element(4, M)) orelse tuple_size(element(4, M)) =/= 2
  #              orelse element(1, element(4, M)) =/= Marker)
  defp outside_guard(anno, msg, tag) do
    op = fn name, a, b -> {:op, anno, name, a, b} end
    call = fn name, args -> {:call, anno, remote(anno, :erlang, name), args} end
    first = call.(:element, [{:integer, anno, 1}, msg])
    size = call.(:tuple_size, [msg])

    untagged = op.(:orelse, op.(:<, size, {:integer, anno, 1}), op.(:"=/=", first, tag))

    not_exit =
      op.(
        :orelse,
        op.(:"=/=", size, {:integer, anno, 3}),
        op.(:"=/=", first, {:atom, anno, :EXIT})
      )

    gift = call.(:element, [{:integer, anno, 4}, msg])

    not_transfer_copy =
      Enum.reduce(
        [
          op.(:"=/=", first, {:atom, anno, :"ETS-TRANSFER"}),
          {:op, anno, :not, call.(:is_tuple, [gift])},
          op.(:"=/=", call.(:tuple_size, [gift]), {:integer, anno, 2}),
          op.(
            :"=/=",
            call.(:element, [{:integer, anno, 1}, gift]),
            {:atom, anno, Lockstep.ETS.transfer_copy_marker()}
          )
        ],
        op.(:"=/=", size, {:integer, anno, 4}),
        &op.(:orelse, &2, &1)
      )

    op.(
      :orelse,
      {:op, anno, :not, call.(:is_tuple, [msg])},
      op.(:andalso, op.(:andalso, untagged, not_exit), not_transfer_copy)
    )
  end

  # "receive at lib/my_app/server.ex:12 matching {:get, _} | :stop", for deadlock reports.
  defp describe(anno, original, state) do
    patterns =
      original
      |> elem(2)
      |> Enum.map(fn {:clause, _, [pattern], _, _} -> pattern_text(pattern) end)
      |> Enum.join(" | ")

    "receive at #{site(anno, state)} matching " <>
      String.slice(patterns, 0, 160)
  end

  defp pattern_text(pattern) do
    pattern |> :erl_pp.expr() |> IO.iodata_to_binary()
  rescue
    _ -> "_"
  end

  # Building blocks -------------------------------------------------------------------------

  # The managed branch of an operation at a known line: in an iteration that captures its
  # trace (a failing one, run again for the report; the process dictionary says so), the
  # call site is noted for the events the operation records. Every other iteration pays
  # one look-up of a key that is not there.
  defp located(anno, controlled, state) do
    case :erl_anno.line(anno) do
      line when is_integer(line) and line > 0 ->
        site = site(anno, state) |> String.to_charlist()
        text = {:bin, anno, [{:bin_element, anno, {:string, anno, site}, :default, [:utf8]}]}
        check = {:call, anno, remote(anno, :erlang, :get), [{:atom, anno, @sites_key}]}

        note =
          {:case, anno, check,
           [
             {:clause, anno, [{:atom, anno, :undefined}], [], [{:atom, anno, :ok}]},
             {:clause, anno, [{:var, anno, :_}], [],
              [{:call, anno, remote(anno, @runtime, site_function(state)), [text]}]}
           ]}

        {:block, anno, [note, controlled]}

      _ ->
        controlled
    end
  end

  # A library's operation is shown at the user's line that led to it, found at run time.
  defp site_function(%{library?: true}), do: :library_site
  defp site_function(_state), do: :site

  # "lib/my_app/server.ex:12": the file of the annotation (code from another file, as an
  # included header's), else the module's, relative to the working directory.
  defp site(anno, state) do
    file =
      case :erl_anno.file(anno) do
        :undefined -> state.file
        file -> Path.relative_to_cwd(to_string(file))
      end

    "#{file}:#{:erl_anno.line(anno)}"
  end

  defp if_managed(anno, controlled, original) do
    check = {:call, anno, remote(anno, :erlang, :get), [{:atom, anno, @managed_key}]}

    {:case, anno, check,
     [
       {:clause, anno, [{:atom, anno, :undefined}], [], [original]},
       {:clause, anno, [{:var, anno, :_}], [], [controlled]}
     ]}
  end

  defp remote(anno, m, f), do: {:remote, anno, {:atom, anno, m}, {:atom, anno, f}}

  defp bind_args(anno, args, state) do
    {pairs, state} =
      Enum.map_reduce(args, state, fn arg, state ->
        if trivial?(arg) do
          {{[], arg}, state}
        else
          {var, state} = fresh_var(anno, state)
          {{[{:match, anno, var, arg}], var}, state}
        end
      end)

    {Enum.flat_map(pairs, &elem(&1, 0)), Enum.map(pairs, &elem(&1, 1)), state}
  end

  defp trivial?({kind, _, _}) when kind in [:var, :atom, :integer, :float, :char, :string],
    do: true

  defp trivial?({nil, _}), do: true
  defp trivial?(_), do: false

  defp block(_anno, [single], state), do: {single, state}
  defp block(anno, exprs, state), do: {{:block, anno, exprs}, state}

  defp fresh_var(anno, state) do
    n = state.counter + 1
    {{:var, anno, :"$lockstep_#{n}"}, %{state | counter: n}}
  end

  defp fresh_vars(anno, count, state) do
    Enum.map_reduce(List.duplicate(nil, count), state, fn _, state -> fresh_var(anno, state) end)
  end
end
