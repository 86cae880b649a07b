%% The N-readers program of Lockstep's exhaustive bench (bench/support/exhaustive.exs,
%% Bench.Exhaustive.readers/2) for Concuerror: N processes each look up key k of a
%% public ETS table once, one process inserts {k, 1} once; 2^N traces under optimal DPOR.
%%
%% One difference Concuerror's model forces: Lockstep's table is made before the run and
%% outlives it, but under Concuerror a table dies with its owner, so the first process
%% makes it (and writes {k, 0}, as the bench does before its runs) and then waits
%% forever, like Concuerror's own bounding_tests/readers.erl; run with
%% `--ignore_error deadlock`. Neither the table's creation nor that wait races with
%% anything, so the count is unchanged.
-module(lockstep_readers).
-export([readers0/0, readers6/0, readers8/0, readers10/0, readers/1]).

%% No reader: one interleaving, which times Concuerror's fixed cost for this module
%% (VM start, compiling and instrumenting it, the run's set-up).
readers0() -> readers(0).

readers6() -> readers(6).

readers8() -> readers(8).

%% Not in Lockstep's bench: 1,024 traces, enough to time the exploration apart from the
%% fixed cost.
readers10() -> readers(10).

readers(N) ->
  Tab = ets:new(bench_readers, [public]),
  true = ets:insert(Tab, {k, 0}),
  _ = [spawn(fun() -> ets:lookup(Tab, k) end) || _ <- lists:seq(1, N)],
  spawn(fun() -> ets:insert(Tab, {k, 1}) end),
  receive after infinity -> ok end.
