%% The two-client counter of Lockstep's examples/counter_race.ex (test_body/2) for
%% Concuerror, message for message: a counter process, two clients, and the first process,
%% which waits for both clients' `done`, asks for the value and checks it.
%%
%% atomic/0 is test_body(:atomic): each client sends {incr, self()} and the counter
%% replies with the new value, so there is no lost update and the whole tree is explored.
%% racy/0 is test_body(:racy): get, then put value + 1; both clients can read 0, and the
%% final check fails.
%%
%% The one difference: Lockstep ends a run's leftover processes when the test body
%% returns; under Concuerror the counter, still waiting for a message, is reported as a
%% deadlock, so run with `--ignore_error deadlock`.
-module(lockstep_counter).
-export([baseline/0, atomic/0, racy/0, test_body/2]).

%% No client: one interleaving, which times Concuerror's fixed cost for this module.
baseline() -> test_body(atomic, 0).

atomic() -> test_body(atomic, 2).

racy() -> test_body(racy, 2).

counter(Value) ->
  receive
    {get, From} ->
      From ! {value, Value},
      counter(Value);
    {put, NewValue} ->
      counter(NewValue);
    {incr, From} ->
      From ! {value, Value + 1},
      counter(Value + 1)
  end.

racy_client(Counter, Parent) ->
  Counter ! {get, self()},
  Value = receive {value, V} -> V end,
  Counter ! {put, Value + 1},
  Parent ! done.

atomic_client(Counter, Parent) ->
  Counter ! {incr, self()},
  receive {value, _} -> ok end,
  Parent ! done.

test_body(Kind, Clients) ->
  Counter = spawn(fun() -> counter(0) end),
  Parent = self(),
  _ = [spawn(fun() ->
                 case Kind of
                   racy -> racy_client(Counter, Parent);
                   atomic -> atomic_client(Counter, Parent)
                 end
             end)
       || _ <- lists:seq(1, Clients)],
  _ = [receive done -> ok end || _ <- lists:seq(1, Clients)],
  Counter ! {get, self()},
  Final = receive {value, V} -> V end,
  case Final =:= Clients of
    true -> ok;
    false -> error({lost_update, Clients, Final})
  end.
