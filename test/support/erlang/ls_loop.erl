%% A plain Erlang server loop, for the test that instrumentation never kills a process
%% running a module's code.
-module(ls_loop).
-export([start/0, loop/0, ping/1]).

start() -> spawn(fun loop/0).

loop() ->
    receive
        {ping, From} -> From ! pong, loop();
        stop -> ok
    end.

ping(Pid) ->
    Pid ! {ping, self()},
    receive
        pong -> pong
    after 1000 -> timeout
    end.
