defmodule Lockstep.Instrument.AsyncInstrumentTest.Fresh do
  @moduledoc false
  # Fresh Erlang modules on disk, never instrumented before, so that two async test
  # modules race to instrument them for the first time.

  def module!(name) do
    :global.trans({{__MODULE__, name}, self()}, fn ->
      if :code.is_loaded(name) == false do
        dir = Path.join(System.tmp_dir!(), "ls_async_#{System.os_time(:nanosecond)}")
        File.mkdir_p!(dir)

        source = """
        -module(#{name}).
        -export([ping/1, loop/0]).
        ping(P) -> P ! {ping, self()}, receive pong -> pong after 1000 -> timeout end.
        loop() -> receive {ping, F} -> F ! pong, loop(); stop -> ok end.
        """

        path = Path.join(dir, "#{name}.erl")
        File.write!(path, source)
        {:ok, ^name, binary} = :compile.file(String.to_charlist(path), [:binary, :debug_info])
        beam = Path.join(dir, "#{name}.beam")
        File.write!(beam, binary)
        :code.add_patha(String.to_charlist(dir))
        {:module, ^name} = :code.load_binary(name, String.to_charlist(beam), binary)
      end

      name
    end)
  end

  # Instruments `modules` from 6 processes at once; then each module is instrumented
  # exactly once and works inside and outside a run.
  def race!(modules) do
    1..6
    |> Task.async_stream(fn _ -> Lockstep.Instrument.instrument!(modules) end, timeout: 60_000)
    |> Enum.each(fn {:ok, _} -> :ok end)

    for module <- modules do
      true = Lockstep.Instrument.instrumented?(module)
      pid = spawn(module, :loop, [])
      :pong = module.ping(pid)
      send(pid, :stop)
    end

    :ok
  end
end

defmodule Lockstep.Instrument.AsyncInstrumentTest.A do
  use ExUnit.Case, async: true
  alias Lockstep.Instrument.AsyncInstrumentTest.Fresh

  test "instruments a shared and an own module while B does the same" do
    shared = Fresh.module!(:ls_async_shared)
    own = Fresh.module!(:ls_async_a)
    assert Fresh.race!([shared, own]) == :ok
  end
end

defmodule Lockstep.Instrument.AsyncInstrumentTest.B do
  use ExUnit.Case, async: true
  alias Lockstep.Instrument.AsyncInstrumentTest.Fresh

  test "instruments a shared and an own module while A does the same" do
    shared = Fresh.module!(:ls_async_shared)
    own = Fresh.module!(:ls_async_b)
    assert Fresh.race!([shared, own]) == :ok
  end
end
