# Lockstep — the two commands a newcomer needs are `make demo` and `make test`.
# Both install what is missing on a fresh Debian/Ubuntu machine, then build.

SHELL := /bin/bash
export HEX_OFFLINE := 1

.PHONY: demo test bench deps rust-checks elixir-checks clean

deps:
	@bash scripts/ensure_deps.sh

demo: deps
	@mix compile --no-deps-check >/dev/null
	@mix run --no-compile -e 'Lockstep.Examples.BankAccount.Test.demo()'

rust-checks: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

# The format check passes on Elixir 1.14 through 1.18 alike: the one spelling the
# formatters disagree on, the zero-arity function type (`(() -> t)` on 1.14, `(-> t)` from
# 1.15), is written once, from its AST, as `Lockstep.body/0,1` in lib/lockstep.ex.
elixir-checks: deps
	mix format --check-formatted
	MIX_ENV=test mix compile --warnings-as-errors --force
	mix test

test: rust-checks elixir-checks

bench: deps
	MIX_ENV=prod mix run bench/run.exs

clean:
	cargo clean
	rm -rf _build
