defmodule Mix.Tasks.Compile.LockstepNif do
  @moduledoc false
  # Builds native/lockstep_nif with cargo on every compile (a no-op build takes a fraction of
  # a second) and installs the shared library into the app's priv/native, writing a temp
  # file and renaming so a running VM never sees a half-written library.
  use Mix.Task.Compiler

  @impl Mix.Task.Compiler
  def run(_args) do
    if System.find_executable("cargo") == nil do
      Mix.raise(
        "cargo was not found on PATH: Lockstep's scheduler is a Rust NIF. " <>
          "Install Rust (https://rustup.rs) or run `make test`, which checks the toolchain."
      )
    end

    root = File.cwd!()
    source = Path.join([root, "target", "release", library_name()])
    before = File.stat(source)

    unless match?({:ok, _}, before) do
      Mix.shell().info("Compiling lockstep NIF (cargo; the first build takes about a minute)")
    end

    {output, status} =
      System.cmd("cargo", ["build", "--release", "--quiet", "-p", "lockstep_nif"],
        cd: root,
        stderr_to_stdout: true
      )

    if status != 0 do
      Mix.shell().error(output)
      Mix.raise("cargo build of the lockstep NIF failed (exit status #{status})")
    end

    if output != "", do: Mix.shell().info(output)

    if match?({:ok, _}, before) and File.stat(source) != before do
      Mix.shell().info("Compiled lockstep NIF (cargo)")
    end

    dest_dir = Path.join(Mix.Project.app_path(), "priv/native")
    dest = Path.join(dest_dir, "liblockstep_nif.so")
    File.mkdir_p!(dest_dir)

    if stale?(source, dest) do
      tmp = dest <> ".tmp#{System.unique_integer([:positive])}"
      File.cp!(source, tmp)
      File.rename!(tmp, dest)
    end

    {:ok, []}
  end

  defp library_name do
    case :os.type() do
      {:unix, :darwin} -> "liblockstep_nif.dylib"
      _ -> "liblockstep_nif.so"
    end
  end

  defp stale?(source, dest) do
    case {File.stat(source), File.stat(dest)} do
      {{:ok, s}, {:ok, d}} -> s.mtime > d.mtime or s.size != d.size
      _ -> true
    end
  end
end

defmodule Lockstep.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :lockstep,
      version: @version,
      # Tested with Elixir 1.14.0, 1.17.3 and 1.18.4 on OTP 25.2.3 (see README.md,
      # "Supported versions"); OTP 25 or later is required.
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:lockstep_nif | Mix.compilers()],
      elixirc_paths: elixirc_paths(Mix.env()),
      # Erlang programs the instrumentation tests run unmodified (compiled with debug_info,
      # as erlc_options always are under Mix)
      erlc_paths: erlc_paths(Mix.env()),
      deps: [],
      test_coverage: [ignore_modules: []],
      docs: [main: "readme"]
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end

  defp elixirc_paths(:test), do: ["lib", "examples", "test/support"]
  defp elixirc_paths(_), do: ["lib", "examples"]

  defp erlc_paths(:test), do: ["src", "test/support/erlang"]
  defp erlc_paths(_), do: ["src"]
end
