%% The classic concurrency bugs of plain Erlang processes, each as a scenario (a zero-arity
%% function whose failure is the bug) and its fixed version. Nothing here knows about
%% Lockstep: the tests run these modules unmodified under `instrument: [ls_patterns]`.
-module(ls_patterns).
-export([whereis_register/0, whereis_register_fixed/0,
         lost_update/0, lost_update_fixed/0,
         ets_lost_update/0, ets_lost_update_fixed/0,
         call_cycle/0, call_cycle_fixed/0,
         stale_down/0, stale_down_fixed/0,
         cancel_timer_ignored/0, cancel_timer_ignored_fixed/0,
         cross_sender_order/0, cross_sender_order_fixed/0,
         send_before_register/0, send_before_register_fixed/0,
         trap_exit_late/0, trap_exit_late_fixed/0,
         request_to_exiting_server/0, request_to_exiting_server_fixed/0,
         named_table_twice/0, named_table_twice_fixed/0]).

%% Waits for N `done` messages.
wait_done(0) -> ok;
wait_done(N) -> receive done -> wait_done(N - 1) end.

%% 1. whereis-then-register: two clients both see no server and both register one.
ensure_started(Name) ->
    case whereis(Name) of
        undefined ->
            Pid = spawn(fun idle/0),
            register(Name, Pid),
            Pid;
        Pid ->
            Pid
    end.

ensure_started_fixed(Name) ->
    case whereis(Name) of
        undefined ->
            Pid = spawn(fun idle/0),
            try register(Name, Pid), Pid
            catch error:badarg -> exit(Pid, kill), whereis(Name)
            end;
        Pid ->
            Pid
    end.

idle() -> receive stop -> ok end.

whereis_register() -> two_starters(fun ensure_started/1).
whereis_register_fixed() -> two_starters(fun ensure_started_fixed/1).

two_starters(Start) ->
    Me = self(),
    [spawn(fun() -> Start(ls_service), Me ! done end) || _ <- [1, 2]],
    wait_done(2),
    ls_service ! stop,
    ok.

%% 2. get/put through a plain server: two increments, one lost.
counter(N) ->
    receive
        {get, From} -> From ! {value, N}, counter(N);
        {put, M} -> counter(M);
        {incr, From} -> From ! ok, counter(N + 1)
    end.

get_put(C) ->
    C ! {get, self()},
    receive {value, N} -> C ! {put, N + 1} end.

incr(C) ->
    C ! {incr, self()},
    receive ok -> ok end.

lost_update() -> two_increments(fun get_put/1).
lost_update_fixed() -> two_increments(fun incr/1).

two_increments(Inc) ->
    C = spawn(fun() -> counter(0) end),
    Me = self(),
    [spawn(fun() -> Inc(C), Me ! done end) || _ <- [1, 2]],
    wait_done(2),
    C ! {get, self()},
    receive {value, V} -> 2 = V, ok end.

%% 3. ETS lookup-then-insert.
ets_lost_update() -> ets_increments(fun(T) -> [{k, N}] = ets:lookup(T, k), ets:insert(T, {k, N + 1}) end).
ets_lost_update_fixed() -> ets_increments(fun(T) -> ets:update_counter(T, k, 1) end).

ets_increments(Inc) ->
    T = ets:new(ls_hits, [public]),
    ets:insert(T, {k, 0}),
    Me = self(),
    [spawn(fun() -> Inc(T), Me ! done end) || _ <- [1, 2]],
    wait_done(2),
    [{k, 2}] = ets:lookup(T, k),
    ok.

%% 4. A call cycle: each server, asked by a client, asks the other one.
relay(Peer) ->
    receive
        {peer, P} -> relay(P);
        {ask, From} ->
            Peer ! {inner, self()},
            receive {answer, _} -> From ! {answer, self()} end,
            relay(Peer);
        {inner, From} -> From ! {answer, self()}, relay(Peer)
    end.

%% The fix answers inner requests while waiting for its own.
relay_fixed(Peer) ->
    receive
        {peer, P} -> relay_fixed(P);
        {ask, From} ->
            Peer ! {inner, self()},
            wait_answer(),
            From ! {answer, self()},
            relay_fixed(Peer);
        {inner, From} -> From ! {answer, self()}, relay_fixed(Peer)
    end.

wait_answer() ->
    receive
        {answer, _} -> ok;
        {inner, From} -> From ! {answer, self()}, wait_answer()
    end.

call_cycle() -> cycle(fun relay/1).
call_cycle_fixed() -> cycle(fun relay_fixed/1).

cycle(Server) ->
    A = spawn(fun() -> Server(none) end),
    B = spawn(fun() -> Server(none) end),
    A ! {peer, B},
    B ! {peer, A},
    Me = self(),
    [spawn(fun() -> S ! {ask, self()}, receive {answer, _} -> Me ! done end end) || S <- [A, B]],
    wait_done(2).

%% 5. A 'DOWN' still in the mailbox after demonitor/1 without flush.
stale_down() -> stale(fun(Ref) -> demonitor(Ref) end).
stale_down_fixed() -> stale(fun(Ref) -> demonitor(Ref, [flush]) end).

stale(Demonitor) ->
    Worker = spawn(fun() -> ok end),
    Ref = monitor(process, Worker),
    Demonitor(Ref),
    receive
        {'DOWN', _, process, _, _} -> error(stale_down)
    after 0 -> ok
    end.

%% 6. cancel_timer's result ignored: the request took longer than the timeout, so the
%% timeout message is already in the mailbox when the timer is cancelled.
slow_server() ->
    receive {req, From} -> timer:sleep(20), From ! reply end.

cancel_timer_ignored() -> cancel(fun(Ref) -> erlang:cancel_timer(Ref), ok end).
cancel_timer_ignored_fixed() ->
    cancel(fun(Ref) ->
               case erlang:cancel_timer(Ref) of
                   false -> receive {timeout, Ref, too_slow} -> ok end;
                   _ -> ok
               end
           end).

cancel(Cancel) ->
    Server = spawn(fun slow_server/0),
    Ref = erlang:start_timer(10, self(), too_slow),
    Server ! {req, self()},
    receive reply -> ok end,
    Cancel(Ref),
    receive
        {timeout, Ref, too_slow} -> error(timeout_after_cancel)
    after 0 -> ok
    end.

%% 7. Messages from two senders assumed to arrive in the order they were sent.
cross_sender_order() ->
    Me = self(),
    A = spawn(fun() -> receive go -> Me ! from_a end end),
    spawn(fun() -> A ! go, Me ! from_b end),
    receive First -> from_a = First end,
    receive _ -> ok end.

cross_sender_order_fixed() ->
    Me = self(),
    A = spawn(fun() -> receive go -> Me ! from_a end end),
    spawn(fun() -> A ! go, Me ! from_b end),
    receive from_a -> ok end,
    receive from_b -> ok end.

%% 8. A send to a name its process has not registered yet.
send_before_register() ->
    spawn(fun() -> register(ls_late, self()), receive hello -> ok end end),
    ls_late ! hello,
    ok.

send_before_register_fixed() ->
    Me = self(),
    spawn(fun() -> register(ls_late, self()), Me ! registered, receive hello -> ok end end),
    receive registered -> ok end,
    ls_late ! hello,
    ok.

%% 9. trap_exit set after spawn_link: the child's crash may arrive first.
trap_exit_late() ->
    Pid = spawn_link(fun() -> exit(boom) end),
    process_flag(trap_exit, true),
    receive {'EXIT', Pid, boom} -> ok end.

trap_exit_late_fixed() ->
    process_flag(trap_exit, true),
    Pid = spawn_link(fun() -> exit(boom) end),
    receive {'EXIT', Pid, boom} -> ok end.

%% 10. A request to a server that may stop before it answers: without a monitor the
%% client waits forever.
stoppable() ->
    receive
        {req, From} -> From ! reply, stoppable();
        stop -> ok
    end.

request_to_exiting_server() ->
    Server = spawn(fun stoppable/0),
    spawn(fun() -> Server ! stop end),
    Server ! {req, self()},
    receive reply -> ok end.

request_to_exiting_server_fixed() ->
    Server = spawn(fun stoppable/0),
    spawn(fun() -> Server ! stop end),
    Ref = monitor(process, Server),
    Server ! {req, self()},
    receive
        reply -> demonitor(Ref, [flush]), ok;
        {'DOWN', Ref, process, Server, _} -> server_gone
    end.

%% 11. A named table created by whoever finds it missing: both may.
named_table_twice() -> two_creators(fun create_table/0).
named_table_twice_fixed() -> two_creators(fun create_table_fixed/0).

create_table() ->
    case ets:whereis(ls_named) of
        undefined -> ets:new(ls_named, [named_table, public]);
        _ -> ok
    end.

create_table_fixed() ->
    try ets:new(ls_named, [named_table, public])
    catch error:badarg -> ok
    end.

two_creators(Create) ->
    Me = self(),
    [spawn(fun() -> Create(), Me ! done, receive stop -> ok end end) || _ <- [1, 2]],
    wait_done(2).
