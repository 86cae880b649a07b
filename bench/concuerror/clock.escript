#!/usr/bin/env escript
%%! +S1 -boot start_clean -noshell
%% Times one Concuerror run from inside its VM (run.sh calls it once per run):
%%
%%   escript clock.escript CONCUERROR CONCUERROR-ARGS...
%%
%% CONCUERROR is Concuerror's executable: either the `priv/concuerror` script of a source
%% checkout compiled into _build/default/lib/*/ebin (README.md), or the escript archive
%% `rebar3 escriptize` makes. The VM flags are the ones Concuerror's own escript runs with
%% (one scheduler). The arguments are parsed by Concuerror's own command-line parser.
%%
%% Prints one line: `result=ok|error|fail completed=N run_us=T explore_us=E`, where T is
%% the time of concuerror:run/1 (compiling and instrumenting included) and E the time from
%% the end of the first interleaving to the end of the last, taken from call-trace
%% timestamps of concuerror_logger:complete/2, which the scheduler calls once per
%% interleaving. Instrumentation happens while the first interleaving runs (a module is
%% instrumented when first called), so E covers the N - 1 later ones: the exploration.
%% Exits 0, 1, 2 like Concuerror.
-mode(compile).

main([Concuerror | Args]) ->
  ok = add_code(Concuerror),
  Options =
    case concuerror_options:parse_cl(Args) of
      {run, Opts} -> Opts;
      {return, _} -> fail("Concuerror's parser rejected the arguments ~p", [Args])
    end,
  Tracer = spawn(fun() -> count(0, undefined, undefined) end),
  {module, concuerror_logger} = code:ensure_loaded(concuerror_logger),
  1 = erlang:trace_pattern({concuerror_logger, complete, 2}, true, [global]),
  _ = erlang:trace(new_processes, true, [call, monotonic_timestamp, {tracer, Tracer}]),
  Start = erlang:monotonic_time(),
  Result = concuerror:run(Options),
  Stop = erlang:monotonic_time(),
  _ = erlang:trace(new_processes, false, [call]),
  Ref = erlang:trace_delivered(all),
  receive {trace_delivered, all, Ref} -> ok end,
  Tracer ! {report, self()},
  {N, First, Last} = receive {count, C, F, L} -> {C, F, L} end,
  Explore =
    case N >= 2 of
      true -> us(Last - First);
      false -> 0
    end,
  io:format("result=~p completed=~p run_us=~p explore_us=~p~n",
            [Result, N, us(Stop - Start), Explore]),
  cleanup(),
  halt(case Result of ok -> 0; error -> 1; fail -> 2 end);
main(_) ->
  fail("usage: escript clock.escript CONCUERROR CONCUERROR-ARGS...", []).

count(N, First, Last) ->
  receive
    {trace_ts, _, call, {concuerror_logger, complete, _}, TS} ->
      count(N + 1, first(First, TS), TS);
    {report, To} ->
      To ! {count, N, First, Last};
    _ ->
      count(N, First, Last)
  end.

first(undefined, TS) -> TS;
first(First, _) -> First.

us(Native) -> erlang:convert_time_unit(Native, native, microsecond).

%% The code of the escript archive (extracted to a temporary directory) or of a checkout
%% built in place.
add_code(Concuerror) ->
  Path = resolve(Concuerror),
  Archive =
    case escript:extract(Path, []) of
      {ok, Sections} -> proplists:get_value(archive, Sections);
      {error, Why} -> fail("~s is not an escript: ~p", [Path, Why])
    end,
  Dirs =
    case Archive of
      Bin when is_binary(Bin) ->
        Tmp = filename:join(tmp_dir(), "lockstep_cq_" ++ os:getpid()),
        {ok, _} = zip:extract(Bin, [{cwd, Tmp}]),
        put(extracted, Tmp),
        filelib:wildcard(filename:join([Tmp, "*", "ebin"]));
      _ ->
        Top = filename:dirname(filename:dirname(Path)),
        filelib:wildcard(filename:join([Top, "_build", "default", "lib", "*", "ebin"]))
    end,
  case [D || D <- Dirs, filelib:is_regular(filename:join(D, "concuerror.beam"))] of
    [] -> fail("no concuerror.beam found for ~s (looked in ~p)", [Path, Dirs]);
    _ -> code:add_pathsa(Dirs)
  end.

resolve(File) ->
  case file:read_link_all(File) of
    {ok, Target} -> resolve(filename:absname(Target, filename:dirname(File)));
    _ -> filename:absname(File)
  end.

tmp_dir() ->
  case os:getenv("TMPDIR") of
    false -> "/tmp";
    Dir -> Dir
  end.

fail(Format, Args) ->
  io:format(standard_error, "clock.escript: " ++ Format ++ "~n", Args),
  cleanup(),
  halt(2).

cleanup() ->
  case get(extracted) of
    undefined -> ok;
    Tmp -> _ = file:del_dir_r(Tmp), ok
  end.
