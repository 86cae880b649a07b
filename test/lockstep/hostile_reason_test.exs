defmodule Lockstep.HostileReasonTest do
  # What a program raises, throws, exits with or sends can break the usual ways of
  # printing it. None of it may escape check/2: the BugFound comes back, its report shows
  # what it can, and its trace file is written.
  use ExUnit.Case, async: true

  require Lockstep

  alias Lockstep.{BugFound, TraceFile}
  alias Lockstep.HostileTerms, as: H
  import Lockstep.TestSupport

  # A child that fails, so the failure is a :crash of P.1 rather than of the root.
  defp in_child(fun) do
    fn ->
      Lockstep.spawn(fun)
      Lockstep.yield()
      Lockstep.yield()
      Lockstep.yield()
    end
  end

  @cases [
    {"an exception whose message/1 raises", quote(do: fn -> raise H.MessageRaises end),
     "H.MessageRaises"},
    {"an exception whose message/1 returns a non-string",
     quote(do: fn -> raise H.MessageNotBinary end), "H.MessageNotBinary"},
    {"an exception whose message/1 and Inspect both raise",
     quote(do: fn -> raise H.BothRaise end), "H.BothRaise"},
    {"a throw of a struct whose Inspect raises", quote(do: fn -> throw(%H.InspectRaises{}) end),
     "(throw)"},
    {"a throw of a struct whose Inspect returns garbage",
     quote(do: fn -> throw(%H.InspectNotDoc{detail: :x}) end), "H.InspectNotDoc"},
    {"an exit with a struct whose Inspect returns garbage",
     quote(do: fn -> exit({:shutdown_not, %H.InspectNotDoc{}}) end), "H.InspectNotDoc"},
    {"a FunctionClauseError whose argument cannot be inspected",
     quote(do: fn -> H.only_ok(%H.InspectNotDoc{}) end), "FunctionClauseError"},
    {"a child's throw of a list holding such a struct",
     quote(do: in_child(fn -> throw([%H.InspectNotDoc{}]) end)), "H.InspectNotDoc"},
    {"a child's exception whose message/1 and Inspect both raise",
     quote(do: in_child(fn -> raise H.BothRaise end)), "H.BothRaise"},
    {"a message whose Inspect returns garbage, then a failure",
     quote(
       do: fn ->
         Lockstep.send(self(), %H.InspectNotDoc{})
         Lockstep.recv()
         raise "after the odd message"
       end
     ), "after the odd message"},
    {"a throw of a function", quote(do: fn -> throw(fn -> :ok end) end), "(throw) #Function<"},
    {"a throw of a huge list", quote(do: fn -> throw(Enum.to_list(1..1_000_000)) end),
     "(throw) [1, 2, 3"},
    {"a throw of a deeply nested term",
     quote(do: fn -> throw(Enum.reduce(1..100_000, [], &[&1, &2])) end), "(throw)"},
    {"an exception with a 20 MB message",
     quote(do: fn -> raise :binary.copy("m", 20_000_000) end), "(RuntimeError) mmmm"},
    {"a throw of a 20 MB binary", quote(do: fn -> throw(:binary.copy("b", 20_000_000)) end),
     "(throw) \"bbbb"}
  ]

  for {label, body, shown} <- @cases do
    test "#{label}: check/2 returns the BugFound and the report shows it" do
      assert {:error, %BugFound{} = bug} =
               Lockstep.check(unquote(body), iterations: 1, seed: 1, trace_dir: tmp_dir!())

      assert bug.kind in [:exception, :crash]
      message = Exception.message(bug)
      shown = String.replace(unquote(shown), "H.", "Lockstep.HostileTerms.")
      assert message =~ shown
      assert message =~ "seed: 1"
      assert message =~ "Replay this exact schedule"
      # Bounded, whatever the reason's size.
      assert byte_size(message) < 100_000

      assert is_binary(bug.trace_path), "no trace file: #{bug.trace_error}"
      saved = TraceFile.load!(bug.trace_path)
      assert saved.reason =~ shown
      assert byte_size(saved.reason) < 20_000
    end
  end

  test "a deadlock whose blocked process holds an odd message still reports" do
    body = fn ->
      Lockstep.send(self(), %H.InspectNotDoc{})
      Lockstep.receive(do: (:never -> :ok))
    end

    assert {:error, %BugFound{kind: :deadlock} = bug} =
             Lockstep.check(body, iterations: 1, trace_dir: tmp_dir!())

    assert Exception.message(bug) =~ "Lockstep.HostileTerms.InspectNotDoc"
  end

  test "a report that cannot be built at all still says what is known" do
    {:error, bug} =
      Lockstep.check(fn -> raise "plain" end, iterations: 1, seed: 4, trace_dir: tmp_dir!())

    # A BugFound a broken tool might build by hand: a trace whose entries are not events.
    broken = %{bug | trace: [:not_an_event]}
    message = Exception.message(broken)
    assert message =~ "its full report could not be formatted"
    assert message =~ "seed: 4"
    assert message =~ bug.trace_path
  end
end
