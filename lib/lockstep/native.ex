defmodule Lockstep.Native do
  @moduledoc false
  # Stubs for the Rust NIF (native/lockstep_nif), one line each. Every NIF needs a stub of
  # the same name and arity here or the whole module fails to load.

  @on_load :load_nif

  def load_nif do
    path = :filename.join(:code.priv_dir(:lockstep), ~c"native/liblockstep_nif")

    case :erlang.load_nif(path, 0) do
      :ok ->
        :ok

      {:error, {reason, text}} ->
        IO.warn(
          "Lockstep could not load its NIF from #{path}.so (#{reason}): #{text}. " <>
            "Rebuild with `mix compile` (it runs cargo); a NIF cannot be reloaded in a running VM."
        )

        {:error, reason}
    end
  end

  defp nif_error, do: :erlang.nif_error(:lockstep_nif_not_loaded)

  def strategy_new(_spec), do: nif_error()
  def exhaustive_parallel_new(_spec, _workers, _cap), do: nif_error()
  def exhaustive_take(_search, _cell), do: nif_error()
  def exhaustive_complete(_search, _ticket, _failed), do: nif_error()
  def exhaustive_status(_search), do: nif_error()
  def exhaustive_generation(_search), do: nif_error()
  def iteration_seed(_seed, _iteration), do: nif_error()
  def live_sessions, do: nif_error()
  def session_new(_cell, _seed, _config, _capture, _done), do: nif_error()
  def session_start(_session, _root_pid), do: nif_error()
  def session_abort(_session), do: nif_error()
  def session_finish(_session), do: nif_error()
  def register_child(_session, _id, _child, _pid), do: nif_error()
  def registered(_session, _id), do: nif_error()
  def managed_pid(_session, _pid), do: nif_error()
  def sync_send(_session, _id, _dest, _payload, _pending), do: nif_error()
  def sync_receive(_session, _id, _retry, _timeout, _pending), do: nif_error()
  def relay_hop(_session, _key, _hop, _peer, _wake), do: nif_error()
  def yield(_session, _id, _pending), do: nif_error()
  def sync_random(_session, _id, _n), do: nif_error()
  def sync_spawn(_session, _id, _link, _node, _monitor), do: nif_error()
  def sync_link(_session, _id, _pid, _on), do: nif_error()
  def sync_monitor(_session, _id, _target, _ref), do: nif_error()
  def sync_demonitor(_session, _id, _ref), do: nif_error()
  def sync_trap_exit(_session, _id, _on), do: nif_error()
  def sync_exit_signal(_session, _id, _pid, _reason), do: nif_error()
  def sync_alive(_session, _id, _pid), do: nif_error()
  def sync_name(_session, _id, _op), do: nif_error()
  def sync_time(_session, _id, _op), do: nif_error()
  def sync_send_after(_session, _id, _dest, _payload, _ms, _ref), do: nif_error()
  def sync_cancel_timer(_session, _id, _ref, _notify), do: nif_error()
  def sync_read_timer(_session, _id, _ref, _notify), do: nif_error()
  def rand_seed(_session, _id), do: nif_error()
  def sync_nif(_session, _id, _kind, _object), do: nif_error()
  def sync_cluster(_session, _id, _op), do: nif_error()
  def node_name(_session, _id), do: nif_error()
  def ets_names(_session, _id, _op), do: nif_error()
  def consumed(_session, _id, _msg), do: nif_error()
  def note_site(_session, _id, _consumed, _site), do: nif_error()
  def note_label(_session, _id, _label), do: nif_error()
  def external_received(_session, _id), do: nif_error()
  def await_outside(_session, _id), do: nif_error()
  def mark_cleanup(_session), do: nif_error()
  def mark_history(_session), do: nif_error()
  def note_outside_crash(_session, _id, _report), do: nif_error()
  def outside_crashes(_session), do: nif_error()
  def note_uncontrolled(_session, _id, _report), do: nif_error()
  def uncontrolled(_session), do: nif_error()
  def hold(_session, _id, _msg, _payload), do: nif_error()
  def mark_park(_session, _id, _ref), do: nif_error()
  def alias(_session, _id, _alias, _op), do: nif_error()
  def exit(_session, _id, _class, _report, _reason, _pending), do: nif_error()
  def external_exit(_session, _id, _reason), do: nif_error()
  def progress(_session), do: nif_error()
  def outcome(_session), do: nif_error()
  def schedule(_session), do: nif_error()
  def trace(_session), do: nif_error()
  def trace_sites(_session), do: nif_error()
  def trace_labels(_session), do: nif_error()
  def procs(_session), do: nif_error()
  def teardown_view(_session, _release), do: nif_error()
  def keep_trace(_session), do: nif_error()
  def checker_start(_ops, _model, _consistency, _tag), do: nif_error()
  def checker_answer(_job, _answer), do: nif_error()
  def checker_cancel(_job), do: nif_error()
  # Test hook: poisons the session's lock (native_error_test.exs).
  def poison_for_test(_session), do: nif_error()
  def relay_enabled_for_test(_on), do: nif_error()
  def relay_miscount_for_test(_session), do: nif_error()
  def relayed_hops, do: nif_error()
end
