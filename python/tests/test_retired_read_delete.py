"""A delete-after-read of an ended job whose final map was changing
(Job._retired_key_do: the key has a live owner and an old owner, and no
value moves any more), when the old owner fails (the Go SDK's
TestRetiredReadDeleteOldOwnerFails). The live owner holds the key's value
B, the old owner an older copy A, which must go too (it would read
again). The call must not both fail and have taken B: either it returns
B, or it fails with B still in place for a retry. Before, B was read and
deleted at the live owner first, and the old owner's failure was then the
call's answer: B gone, handed to no one (and, the old owner's delete
refused, A read by the next get).

The map is staged as in test_delete_refused.py, on the session's cluster:
a second handle on the job whose map marks one node draining, retired
(_retire) as a deregistration would leave it."""

import pytest

import pocket
from pocket import client as pclient
from pocket import errors, wire
from pocket.conn import NodeUnavailable, Reply

from test_delete_refused import _refuse_live_delete_once, _stage

VAL_A = b"value A, the older copy at the old owner"
VAL_B = b"value B, at the live owner"


@pytest.mark.parametrize("how", ["reply-lost", "refused"])
def test_retired_read_delete_old_owner_fails(cluster, monkeypatch, how):
    with cluster.client() as cl:
        job, view, key, addr, mover = _stage(cl, f"retdar-{how}")
        try:
            m = job.map
            at_live = pclient.Job(cl, wire.PlacementMap(m.job, m.tier, m.epoch, [wire.MapNode(addr, 1.0)], m.token))
            job.put(key, VAL_A)  # at the old owner (the mover)
            at_live.put(key, VAL_B)
            view._retire(view._st.map)
            send = view._send
            fired = []

            def patched(a, op, flags, *args, **kw):
                if a == mover and op == wire.OP_DELETE and not fired:
                    fired.append(a)
                    if how == "refused":
                        return Reply(0, 0, errors.Code.IO, b"", b"")
                    send(a, op, flags, *args, **kw)  # executed, then the reply is lost
                    raise NodeUnavailable(a, f"node {a}: connection lost (the test's)", sent=True)
                return send(a, op, flags, *args, **kw)
            monkeypatch.setattr(view, "_send", patched)
            try:
                got = bytes(view.get(key, delete_after_read=True))
            except errors.PocketError as e:
                assert fired, f"the old owner was never asked to delete: {e!r}"
                try:
                    left = bytes(at_live.get(key))
                except errors.NotFound:
                    pytest.fail(f"the delete-after-read failed ({e!r}) and B is gone from the live owner: "
                                "taken, handed to no one")
                assert left == VAL_B
                # B kept: a retry takes it.
                assert bytes(view.get(key, delete_after_read=True)) == VAL_B
            else:
                assert fired
                assert got == VAL_B
            with pytest.raises(errors.NotFound):
                view.get(key)  # A, the older copy, must not read again
        finally:
            job.deregister()


@pytest.mark.parametrize("take", [True, False])
def test_retired_old_chunked_copy_is_dropped(cluster, take):
    """An ended job's key whose old owner holds an older chunked copy:
    taking or deleting the key drops that copy's chunks (the Go SDK's
    TestRetiredOldChunkedCopyIsDropped). Before, the old manifest went and
    its chunks stayed until the job's sweep."""
    with cluster.client() as cl:
        job, view, key, addr, mover = _stage(cl, f"retold-{take}")
        try:
            m = job.map
            at_live = pclient.Job(cl, wire.PlacementMap(m.job, m.tier, m.epoch, [wire.MapNode(addr, 1.0)], m.token))
            big = bytes(range(256)) * (10 << 10)  # 2.5 MiB: chunked
            job.put(key, big)  # at the old owner (the mover), chunks over the job's nodes
            at_live.put(key, VAL_B)
            assert job.usage() > len(big)
            view._retire(view._st.map)
            if take:
                assert bytes(view.get(key, delete_after_read=True)) == VAL_B
            else:
                view.delete(key)
            assert job.usage() == 0, "the older copy's chunks are left on the nodes"
        finally:
            job.deregister()


def test_retired_delete_failing_at_the_owner_keeps_its_copy(cluster, monkeypatch):
    """An ended job's key whose old owner and owner hold the same version
    of a chunked object (a move the job's end cut short): a delete removes
    it at the old owner, the owner fails. The call fails with the owner's
    answer, and the version's chunks, the owner's value's, stay (the Go
    SDK's retiredKeyDo). Before, the old owner's success was the answer and
    the version's chunks were dropped: the key read corrupt."""
    with cluster.client(chunk_size=64 << 10) as cl:
        job, view, key, addr, mover = _stage(cl, "retsame")
        try:
            value = bytes(range(256)) * (3 * 256 + 1)  # 4 chunks
            job.put(key, value)  # manifest at the old owner (the mover)
            st = job._st
            r = job._send(mover, wire.OP_GET, st.tier_flags | wire.FLAG_VERSION, st.codec.encode(key.encode()))
            ver = r.response().version
            assert r.flags & wire.FLAG_MANIFEST and ver
            r = job._send(addr, wire.OP_PUT, st.tier_flags | wire.FLAG_MANIFEST,
                          st.codec.encode(key.encode(), ver, len(value)), bytes(r.payload))
            assert r.code == 0, r.code  # the same version at the owner
            view._retire(view._st.map)
            _refuse_live_delete_once(monkeypatch, view, addr, reply=Reply(0, 0, errors.Code.IO, b"", b""))
            with pytest.raises(errors.PocketError):
                view.delete(key)
            monkeypatch.undo()
            assert bytes(view.get(key)) == value, "the owner's value lost its chunks"
        finally:
            job.deregister()
