"""Deletes of a key whose owner changes (Job._drain_do), when the old owner
deletes and the live owner then refuses or cannot be reached. All three
tests fail on the old client.

The map is staged as in test_join.py's test_confirm_asks_each_node_once:
one job, and a second handle on it whose map marks one node draining (the
nodes themselves know nothing of it). A key the draining node owns under
the whole map is put through the first handle, so its value sits at the
draining node: the old owner, for the second handle."""

import os

import pocket
from pocket import client as pclient
from pocket import placement, wire
from pocket.conn import NodeUnavailable, Reply
from conftest import heard

KiB = 1 << 10


def _stage(cl, name):
    job = cl.register_job(name, peak_mbps=24000)
    heard(job)
    m = job.map
    assert len(m.nodes) == 3, m
    nodes = [wire.MapNode(n.addr, n.weight) for n in m.nodes]
    mover = nodes[0].addr
    marked = [wire.MapNode(mover, nodes[0].weight, wire.NODE_DRAINING)] + nodes[1:]
    view = pclient.Job(cl, wire.PlacementMap(m.job, m.tier, m.epoch, marked, m.token))
    ns = placement.NodeSet([(n.addr, n.weight) for n in nodes])
    key = next(f"k{i}" for i in range(10000) if nodes[ns.pick(f"k{i}".encode(), 0)].addr == mover)
    addr, old = view._st.route(key.encode(), 0)
    assert old == mover and addr != mover, (addr, old)
    return job, view, key, addr, mover


def _refuse_live_delete_once(monkeypatch, view, addr, reply=None, exc=None):
    """The first delete sent to addr (the live owner) is refused with reply
    (or raises exc), as a node that moved on to a newer map would."""
    send = view._send
    done = []

    def patched(a, op, flags, *args, **kw):
        if a == addr and op == wire.OP_DELETE and not done:
            done.append(a)
            if exc is not None:
                raise exc
            return reply
        return send(a, op, flags, *args, **kw)
    monkeypatch.setattr(view, "_send", patched)
    return done


def test_delete_that_deleted_reports_not_found(cluster, monkeypatch):
    """The old owner deletes the value, the live owner refuses the map as
    stale, and the whole delete is sent again on the (new) map, which finds
    nothing at either owner: the call deleted the value, so it succeeds.
    Before (and in the Go SDK: TestDeleteRefusedAtTheLiveOwner), delete
    raised NotFound for the value it had deleted."""
    with cluster.client() as cl:
        job, view, key, addr, mover = _stage(cl, "delref-del")
        try:
            job.put(key, b"v")
            stale = Reply(0, 0, pocket.errors.Code.STALE_EPOCH, b"", b"")
            done = _refuse_live_delete_once(monkeypatch, view, addr, reply=stale)
            monkeypatch.setattr(view, "_map_changed", lambda *a, **kw: True)
            view.delete(key)
            assert done
            assert not job.exists(key)
        finally:
            job.deregister()


def test_delete_after_read_that_consumed_reports_taken(cluster, monkeypatch):
    """The same for the conditional delete that ends a delete-after-read
    (get_into): the reader's own delete removed the value. Before, it was
    told another reader had taken it (NotFound): the value was gone, handed
    to no one."""
    with cluster.client() as cl:
        job, view, key, addr, mover = _stage(cl, "delref-dar")
        try:
            job.put(key, b"value")
            stale = Reply(0, 0, pocket.errors.Code.STALE_EPOCH, b"", b"")
            done = _refuse_live_delete_once(monkeypatch, view, addr, reply=stale)
            monkeypatch.setattr(view, "_map_changed", lambda *a, **kw: True)
            buf = bytearray(16)
            n = view.get_into(key, buf, delete_after_read=True)
            assert done
            assert bytes(buf[:n]) == b"value"
            assert not job.exists(key)
        finally:
            job.deregister()


def test_delete_drops_old_version_when_live_owner_fails(cluster, monkeypatch):
    """The old owner deletes a chunked object's manifest (version V), then
    the live owner's delete raises (not sent). V's chunks are dropped, as
    the Go SDK's deleteBoth drops them whenever the live owner failed: no
    manifest names them. Before, _drain_do raised before its
    _drop_version, and V's chunks (confirmed: no lease frees them) stayed
    until the job ended."""
    with cluster.client(chunk_size=64 * KiB) as cl:
        job, view, key, addr, mover = _stage(cl, "delref-leak")
        try:
            job.put(key, os.urandom(6 * 64 * KiB + 5))
            ver = job._stat_version(key.encode())
            assert ver
            dropped = []
            drop = view._drop_version
            monkeypatch.setattr(view, "_drop_version", lambda v: (dropped.append(v), drop(v)))
            _refuse_live_delete_once(monkeypatch, view, addr,
                                     exc=NodeUnavailable(addr, f"node {addr}: refused", sent=False, refused=True))
            try:
                view.delete(key)
            except pocket.errors.Unavailable:
                pass  # the live owner's failure: the call's error, as in Go
            assert not job.exists(key)  # the manifest is gone (deleted at the old owner)
            assert ver in dropped, f"version {ver:016x}'s chunks were not dropped"
        finally:
            job.deregister()
