defmodule Lockstep.Instrument.InstrumentTest do
  use ExUnit.Case, async: true

  alias Lockstep.{Instrument, InstrumentError}
  alias Lockstep.TestSupport.PlainCounter

  # A module compiled from Erlang source into `dir` with `opts`, and loaded from there.
  defp erlang_module!(dir, name, source, opts) do
    path = Path.join(dir, "#{name}.erl")
    File.write!(path, source)
    {:ok, ^name, binary} = :compile.file(String.to_charlist(path), [:binary | opts])
    beam = Path.join(dir, "#{name}.beam")
    File.write!(beam, binary)
    :code.add_patha(String.to_charlist(dir))
    :code.purge(name)
    {:module, ^name} = :code.load_binary(name, String.to_charlist(beam), binary)
    name
  end

  describe "InstrumentError names the module and the fix" do
    test "an unknown module" do
      e = assert_raise InstrumentError, fn -> Instrument.instrument!([:ls_no_such_module]) end
      assert e.reason == :not_found
      assert Exception.message(e) =~ "cannot instrument :ls_no_such_module"
      assert Exception.message(e) =~ "Code.ensure_loaded"
    end

    test "a module compiled without debug info" do
      dir = Lockstep.TestSupport.tmp_dir!("ls_nodebug")

      mod =
        erlang_module!(
          dir,
          :ls_nodebug,
          "-module(ls_nodebug).\n-export([f/0]).\nf() -> ok.\n",
          []
        )

      e = assert_raise InstrumentError, fn -> Instrument.instrument!(mod) end
      assert e.reason == {:no_debug_info, :disk}
      assert Exception.message(e) =~ "debug_info: false"
      assert Exception.message(e) =~ "use Lockstep.Instrumented"
    end

    test "a NIF module" do
      dir = Lockstep.TestSupport.tmp_dir!("ls_nif")

      source = """
      -module(ls_nif_mod).
      -export([f/0]).
      -on_load(init/0).
      init() -> catch erlang:load_nif("/nonexistent/ls_nif", 0), ok.
      f() -> erlang:nif_error(not_loaded).
      """

      mod = erlang_module!(dir, :ls_nif_mod, source, [:debug_info])
      e = assert_raise InstrumentError, fn -> Instrument.instrument!(mod) end
      assert e.reason == :nif
      assert Exception.message(e) =~ "NIF"
    end

    test "Lockstep's own modules" do
      e = assert_raise InstrumentError, fn -> Instrument.instrument!(Lockstep.Runtime) end
      assert e.reason == :lockstep
      assert Exception.message(e) =~ "Remove it from :instrument"
    end

    test "the runtime system's modules" do
      for mod <- [:erlang, :application, :code] do
        e = assert_raise InstrumentError, fn -> Instrument.instrument!(mod) end
        assert e.reason == :runtime_system
      end
    end

    test "a module compiled in memory without use Lockstep.Instrumented" do
      [{mod, _}] =
        Code.compile_string(
          "defmodule LsInMemory#{System.unique_integer([:positive])} do def f, do: :ok end"
        )

      e = assert_raise InstrumentError, fn -> Instrument.instrument!(mod) end
      assert e.reason == :in_memory
      assert Exception.message(e) =~ "use Lockstep.Instrumented"
    end

    test "an unknown application" do
      e = assert_raise InstrumentError, fn -> Instrument.instrument!({:app, :ls_no_such_app}) end
      assert {:app, _} = e.reason
    end

    test "entries that are not modules, through the run options" do
      for bad <- ["MyModule", 42, {:app, "x"}, nil] do
        e = assert_raise ArgumentError, fn -> Lockstep.run(fn -> :ok end, instrument: [bad]) end
        assert Exception.message(e) =~ "invalid :instrument entry"
      end

      e =
        assert_raise InstrumentError, fn ->
          Lockstep.run(fn -> :ok end, instrument: [:ls_nope])
        end

      assert e.module == :ls_nope
    end
  end

  test "the controller instruments what it is given, and names a bad module at once" do
    e =
      assert_raise InstrumentError, fn ->
        Lockstep.Controller.start_link(instrument: [:ls_no_such_module_either])
      end

    assert e.module == :ls_no_such_module_either
    {:ok, ctl} = Lockstep.Controller.start_link(instrument: [:ls_loop])
    assert Instrument.instrumented?(:ls_loop)
    GenServer.stop(ctl)
  end

  test ":otp and a non-empty list bring OTP's process machinery along" do
    assert Instrument.modules!([:otp]) == Instrument.otp_modules()
    assert [:ls_loop | otp] = Instrument.modules!([:ls_loop])
    assert otp == Instrument.otp_modules()
    assert Instrument.modules!([]) == []
    assert Enum.all?(Instrument.otp_modules(), &Instrument.instrumented?/1)
  end

  test "{:app, app} lists the application's modules" do
    assert PlainCounter in Instrument.modules!({:app, :lockstep})
  end

  test "instrumenting twice loads once; concurrent callers are serialised" do
    Instrument.instrument!([:ls_ops])
    md5 = :ls_ops.module_info(:md5)

    1..8
    |> Task.async_stream(fn _ -> Instrument.instrument!([:ls_ops, PlainCounter]) end)
    |> Enum.each(fn {:ok, _} -> :ok end)

    assert :ls_ops.module_info(:md5) == md5
    assert Instrument.instrumented?(:ls_ops) and Instrument.instrumented?(PlainCounter)
  end

  test "a recompiled module is instrumented again, but never by killing a process in its code" do
    dir = Lockstep.TestSupport.tmp_dir!("ls_changed")

    v1 =
      "-module(ls_changed).\n-export([v/0, loop/0]).\nv() -> 1.\n" <>
        "loop() -> receive {From, v} -> From ! v(), loop(); stop -> ok end.\n"

    erlang_module!(dir, :ls_changed, v1, [:debug_info])
    Instrument.instrument!(:ls_changed)
    assert Instrument.instrumented?(:ls_changed)

    # A process loops in the instrumented v1 (local calls keep it there).
    pid = spawn(fn -> apply(:ls_changed, :loop, []) end)

    # v2 is compiled and loaded: v1 is now old code, still run by `pid`.
    erlang_module!(dir, :ls_changed, String.replace(v1, "v() -> 1.", "v() -> 2."), [:debug_info])
    refute Instrument.instrumented?(:ls_changed)

    e = assert_raise InstrumentError, fn -> Instrument.instrument!(:ls_changed) end
    assert e.reason == :old_code_in_use
    assert Process.alive?(pid)
    send(pid, {self(), :v})
    assert_receive 1

    ref = Process.monitor(pid)
    send(pid, :stop)
    assert_receive {:DOWN, ^ref, _, _, :normal}

    Instrument.instrument!(:ls_changed)
    assert Instrument.instrumented?(:ls_changed)
    assert apply(:ls_changed, :v, []) == 2
  end

  test "a process running the original code survives instrumentation and keeps working" do
    pid = :ls_loop.start()
    Instrument.instrument!(:ls_loop)
    assert Instrument.instrumented?(:ls_loop)
    assert Process.alive?(pid)
    assert :ls_loop.ping(pid) == :pong
    send(pid, :stop)
  end

  test "stack traces of instrumented code point at the user's file and line" do
    Instrument.instrument!(PlainCounter)

    {:error, bug} =
      Lockstep.check(
        fn ->
          c = PlainCounter.start(0)
          PlainCounter.increment(c)
          PlainCounter.crash_after_reply(c)
        end,
        iterations: 5
      )

    assert {:error, %RuntimeError{}, [{PlainCounter, :crash_after_reply, 1, location} | _]} =
             bug.reason

    assert to_string(location[:file]) =~ "test/support/instrumented/plain_counter.ex"
    assert is_integer(location[:line]) and location[:line] > 1
  end
end
