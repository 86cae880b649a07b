defmodule Lockstep.DistributedSearchTest do
  # `nodes:` (SPEC §11): the search spread over connected BEAM nodes — here `:peer` nodes
  # started on this machine, over loopback. Not async: it starts distribution in this VM.
  use ExUnit.Case, async: false

  alias Lockstep.{BugFound, RaceBodies}
  alias Lockstep.Examples.CounterRace
  import Lockstep.TestSupport

  setup_all do
    started_here =
      if Node.alive?() do
        false
      else
        {_, 0} = System.cmd("epmd", ["-daemon"])
        {:ok, _} = :net_kernel.start([:"lockstep_search_test@127.0.0.1", :longnames])
        true
      end

    on_exit(fn -> if started_here, do: :net_kernel.stop() end)
    :ok
  end

  defp start_peer(name) do
    code_path = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])

    {:ok, peer, node} =
      :peer.start_link(%{name: name, host: ~c"127.0.0.1", longnames: true, args: code_path})

    {:ok, _} = :erpc.call(node, :application, :ensure_all_started, [:lockstep])
    {peer, node}
  end

  test "a search over two peer nodes reports the lowest failing iteration, as one node does" do
    {peer_a, a} = start_peer(:lockstep_peer_a)
    {peer_b, b} = start_peer(:lockstep_peer_b)
    dir = tmp_dir!()
    body = RaceBodies.rare_failure(4)
    opts = [iterations: 3_000, strategy: :random, seed: 9_001, trace_dir: dir]

    {:error, %BugFound{} = here} = Lockstep.check(body, opts)
    {:error, %BugFound{} = spread} = Lockstep.check(body, Keyword.put(opts, :nodes, [a, b]))

    assert spread.iteration == here.iteration
    assert spread.schedule == here.schedule
    # the trace file is written on the caller's node and replays here
    assert File.exists?(spread.trace_path)
    assert_raise BugFound, fn -> Lockstep.replay(body, spread.trace_path) end

    :peer.stop(peer_a)
    :peer.stop(peer_b)
  end

  test "a passing search counts each iteration once over the nodes and the workers" do
    {peer, a} = start_peer(:lockstep_peer_c)

    summary =
      Lockstep.run(CounterRace.test_body(:atomic), iterations: 200, workers: 2, nodes: [a])

    assert summary.iterations == 200
    assert length(summary.per_worker) == 4
    assert Enum.sum(Enum.map(summary.per_worker, & &1.iterations)) == 200
    assert summary.lost_nodes == []
    :peer.stop(peer)
  end

  test "a node lost mid-run is reported and its share is re-run here" do
    {peer, a} = start_peer(:lockstep_peer_d)
    test_pid = self()

    # stop the peer once it is busy
    spawn(fn ->
      Process.sleep(300)
      :peer.stop(peer)
      send(test_pid, :peer_stopped)
    end)

    {summary, warning} =
      with_io(:stderr, fn ->
        Lockstep.run(RaceBodies.rare_failure(0, 2), iterations: 600, strategy: :random, nodes: [a])
      end)

    assert_received :peer_stopped
    assert summary.lost_nodes == [a]
    assert summary.iterations >= 600
    assert Enum.sum(Enum.map(summary.per_worker, & &1.iterations)) == summary.iterations
    assert warning =~ "#{inspect(a)} was lost during the run"
  end

  test "nodes that are not connected, or not nodes, are refused naming the option" do
    err =
      assert_raise ArgumentError, fn ->
        Lockstep.run(fn -> :ok end, nodes: [:"nobody@127.0.0.1"])
      end

    assert Exception.message(err) =~ ":nodes"
    assert Exception.message(err) =~ "Node.connect"

    err = assert_raise ArgumentError, fn -> Lockstep.run(fn -> :ok end, nodes: "a@b") end
    assert Exception.message(err) =~ ":nodes"
  end

  defp with_io(device, fun) do
    ExUnit.CaptureIO.with_io(device, fun)
  end
end
