%% One function per operation that instrumentation rewrites (SPEC §9), for the
%% fall-through test: called outside a run, the instrumented module must give the same
%% result or exception as an uninstrumented copy of itself.
-module(ls_ops).
-compile([export_all, nowarn_export_all]).

bang(Dest, Msg) -> Dest ! Msg.
send2(Dest, Msg) -> erlang:send(Dest, Msg).
send3(Dest, Msg, Opts) -> erlang:send(Dest, Msg, Opts).
send_ref() -> fun erlang:send/2.

spawn1(Fun) -> spawn(Fun).
spawn3(M, F, A) -> spawn(M, F, A).
spawn_link1(Fun) -> spawn_link(Fun).
spawn_monitor1(Fun) -> spawn_monitor(Fun).
spawn_opt2(Fun, Opts) -> spawn_opt(Fun, Opts).

link1(Pid) -> link(Pid).
unlink1(Pid) -> unlink(Pid).
monitor2(Type, Item) -> monitor(Type, Item).
monitor3(Type, Item, Opts) -> erlang:monitor(Type, Item, Opts).
demonitor1(Ref) -> demonitor(Ref).
demonitor2(Ref, Opts) -> demonitor(Ref, Opts).
alias0() -> alias().
alias1(Opts) -> alias(Opts).
unalias1(Alias) -> unalias(Alias).
trap_exit(Bool) -> process_flag(trap_exit, Bool).
exit2(Pid, Reason) -> exit(Pid, Reason).
alive(Pid) -> is_process_alive(Pid).

register2(Name, Pid) -> register(Name, Pid).
unregister1(Name) -> unregister(Name).
whereis1(Name) -> whereis(Name).
registered0() -> registered().

send_after3(Time, Dest, Msg) -> erlang:send_after(Time, Dest, Msg).
start_timer3(Time, Dest, Msg) -> erlang:start_timer(Time, Dest, Msg).
cancel_timer1(Ref) -> erlang:cancel_timer(Ref).
cancel_timer2(Ref, Opts) -> erlang:cancel_timer(Ref, Opts).
read_timer1(Ref) -> erlang:read_timer(Ref).
sleep1(Ms) -> timer:sleep(Ms).

monotonic_time1(Unit) -> erlang:monotonic_time(Unit).
system_time1(Unit) -> erlang:system_time(Unit).
os_system_time1(Unit) -> os:system_time(Unit).

node0() -> node().
node1(Arg) -> node(Arg).
nodes0() -> nodes().
yield0() -> erlang:yield().

ets_new(Name, Opts) -> ets:new(Name, Opts).
ets_insert(Tab, Obj) -> ets:insert(Tab, Obj).
ets_lookup(Tab, Key) -> ets:lookup(Tab, Key).
ets_delete(Tab) -> ets:delete(Tab).
rand_uniform(N) -> rand:uniform(N).

recv_after(Timeout) ->
    receive
        Msg -> {got, Msg}
    after Timeout -> timeout
    end.

recv_only_after(Timeout) ->
    receive
    after Timeout -> waited
    end.

%% Erlang's implicit pin: Tag is bound before the receive, so it must match.
recv_bound(Tag) ->
    receive
        {Tag, Value} -> {matched, Value}
    after 0 -> none
    end.

%% Variables bound in every clause are exported from the receive.
recv_export(Timeout) ->
    receive
        {a, X} -> Y = 1;
        {b, X} -> Y = 2
    after Timeout -> X = none, Y = 0
    end,
    {X, Y}.

%% Nested receives in clause bodies.
recv_nested() ->
    receive
        first ->
            receive
                second -> both
            after 0 -> only_first
            end
    after 0 -> neither
    end.
