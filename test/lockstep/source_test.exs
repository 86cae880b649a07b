defmodule Lockstep.SourceTest do
  # `make test` runs `mix format --check-formatted` on Elixir 1.14 through 1.18. The
  # formatters disagree on one spelling: the zero-arity function type is written
  # `(() -> t)` by 1.14 and `(-> t)` from 1.15, each rewriting the other. Both parse to the
  # same AST, so this test finds either spelling in a typespec, on any Elixir; specs use
  # `Lockstep.body/0,1` instead.
  use ExUnit.Case, async: true

  @typespec_attributes [:spec, :type, :typep, :opaque, :callback, :macrocallback]

  defp zero_arity_fun_types(file) do
    {:ok, ast} = file |> File.read!() |> Code.string_to_quoted(columns: true)

    {_, found} =
      Macro.prewalk(ast, [], fn
        {:@, meta, [{attribute, _, [spec]}]} = node, acc when attribute in @typespec_attributes ->
          {node, if(zero_arity?(spec), do: ["#{file}:#{meta[:line]}" | acc], else: acc)}

        node, acc ->
          {node, acc}
      end)

    found
  end

  defp zero_arity?(spec) do
    {_, found?} =
      Macro.prewalk(spec, false, fn
        [{:->, _, [[], _result]}] = node, _ -> {node, true}
        node, found? -> {node, found?}
      end)

    found?
  end

  test "no typespec writes a zero-arity function type literally" do
    files = Path.wildcard("{lib,examples,test,bench}/**/*.{ex,exs}")
    assert length(files) > 20
    assert Enum.flat_map(files, &zero_arity_fun_types/1) == []
  end

  test "Lockstep.body/0,1 are the zero-arity function type" do
    {:ok, types} = Code.Typespec.fetch_types(Lockstep)

    rendered =
      for {:type, {name, _, _} = type} <- types, name == :body, into: %{} do
        {length(elem(type, 2)), Macro.to_string(Code.Typespec.type_to_quoted(type))}
      end

    assert rendered[1] =~ ~r/^body\(result\) :: \((\(\) )?-> result\)$/
    assert rendered[0] == "body() :: body(any())"
  end
end
