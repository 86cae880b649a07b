#!/usr/bin/env bash
# Installs what Lockstep needs and is missing: Elixir/Erlang (Debian packages) and a Rust
# toolchain check. Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

if ! command -v mix >/dev/null 2>&1 || ! command -v erl >/dev/null 2>&1; then
  echo "==> Installing Elixir and Erlang (apt-get)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq elixir erlang-dev erlang-nox >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "cargo is installed in ~/.cargo/bin but not on PATH: run 'source ~/.cargo/env' and retry" >&2
  else
    echo "cargo (Rust) is required to build Lockstep's NIF: install it from https://rustup.rs" >&2
  fi
  exit 1
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      echo "==> Installing the Rust component $component"
      rustup component add "$component"
    fi
  fi
done

# hex.pm may be unreachable; Lockstep has no Hex dependencies, so never ask for it.
exit 0
