"""A write of one key whose reply is lost, once the job's map has changed,
is not sent again (the Go SDK's pocket/resend_*_test.go): the node may have
executed it, and another writer may have come since.

The reply is lost at the client: the request goes to the node, which
executes it and answers; then, before the answer is handed back, another
writer puts B under the key, the job's map changes (as another call's
fetch would change it) and the connection fails, as NodeConn fails one
whose node went away (a NodeUnavailable that may have been sent). Before,
_do sent the request again on the new map: a manifest put republished a
version whose chunks B's put had dropped (the key read as corrupt), and a
record put put its value back over B. A request that certainly was not
sent (NodeUnavailable with sent False) is still sent again.

Static nodes (the Go helper's ``static`` mode: no controller, any epoch),
the map set by hand: deterministic.
"""

from __future__ import annotations

import os

import pytest

import pocket
from pocket import client as pclient
from pocket import conn as pconn
from pocket import errors, wire

from test_spans_change import StaticNodes

KiB = 1 << 10
CS = 16 * KiB
JOB = "job-1"


class FixedController:
    """Stands for a controller: _follow looks for one before it asks
    whether the map changed, which the test sets by hand."""

    def get_map(self, job, token):
        raise errors.Unavailable("the test's controller hands out no map")

    def close(self) -> None:
        pass


@pytest.fixture
def rig(bins, monkeypatch):
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    nodes = StaticNodes(bins["gohelper"], 1)
    with pocket.Client(insecure=True, chunk_size=CS) as cl, pocket.Client(insecure=True, chunk_size=CS) as ocl:
        cl.controller = FixedController()
        try:
            yield cl.open_static(JOB, nodes.addrs), ocl.open_static(JOB, nodes.addrs), nodes.addrs[0]
        finally:
            cl.controller = None
            nodes.stop()


def lose_reply(monkeypatch, job, node: str, hit, between, execute: bool = True) -> dict:
    """Makes the first request of job's client that hit(op, flags) selects
    fail as a lost connection: executed by the node first (unless execute
    is False: then it fails as not sent), then between() runs, the job's
    map moves to the next epoch, and the connection fails. Returns counts
    of such requests sent to the node."""
    seen = {"sent": 0, "fired": False, "between": False}
    orig = pconn.NodeConn.roundtrip

    def roundtrip(c, op, flags, meta, payload=None, dst=None):
        if not hit(op, flags) or seen["between"]:  # between's requests are the other writer's
            return orig(c, op, flags, meta, payload, dst)
        if seen["fired"]:
            seen["sent"] += 1
            return orig(c, op, flags, meta, payload, dst)
        seen["fired"] = True
        if execute:
            seen["sent"] += 1
            orig(c, op, flags, meta, payload, dst)
        seen["between"] = True
        between()
        seen["between"] = False
        m = job._st.map
        job._st = pclient._MapState(wire.PlacementMap(m.job, m.tier, m.epoch + 1, [wire.MapNode(node, 1.0)], b""))
        if execute:
            raise c._fail(ConnectionError("connection lost (the test's)"))
        raise c._fail(ConnectionError("connection lost before the frame was written (the test's)"), sent=False)

    monkeypatch.setattr(pconn.NodeConn, "roundtrip", roundtrip)
    return seen


def manifest_put(op: int, flags: int) -> bool:
    return op == wire.OP_PUT and bool(flags & wire.FLAG_MANIFEST)


def record_put(op: int, flags: int) -> bool:
    return op == wire.OP_PUT and not flags & (wire.FLAG_MANIFEST | wire.FLAG_CHUNK)


@pytest.mark.parametrize("kind", ["manifest", "record"])
def test_write_not_sent_again_over_another(rig, monkeypatch, kind):
    """The writer's put of A loses its reply; B is put meanwhile. The put
    must fail unavailable (outcome unknown) and leave B, whole. Before: the
    manifest put was sent again and the key read as corrupt (A's chunks
    were dropped by B's put); the record put returned and A stood over B."""
    job, other, node = rig
    val_a = os.urandom(3 * CS + 100) if kind == "manifest" else b"value A"
    val_b = os.urandom(3 * CS + 200)
    seen = lose_reply(monkeypatch, job, node, manifest_put if kind == "manifest" else record_put,
                      lambda: other.put("k", val_b))
    err = None
    try:
        job.put("k", val_a)
    except pocket.PocketError as e:
        err = e
    assert seen["fired"], "the put never reached its node"
    try:
        got = bytes(other.get("k"))
    except pocket.PocketError as e:
        pytest.fail(f"get after the put (sent {seen['sent']} times): {e!r}; want B whole")
    assert got == val_b, f"the key holds {'A' if got == val_a else 'neither value'} (put sent {seen['sent']} times)"
    assert isinstance(err, pocket.Unavailable), f"the put whose reply was lost: {err!r}; want Unavailable"
    assert seen["sent"] == 1, f"the put was sent {seen['sent']} times"


def test_manifest_put_not_sent_is_sent_again(rig, monkeypatch):
    """A manifest put that certainly did not reach its node (the
    connection failed before its frame was written) is sent again on the
    new map, and the put succeeds."""
    job, other, node = rig
    val = os.urandom(3 * CS + 100)
    seen = lose_reply(monkeypatch, job, node, manifest_put, lambda: None, execute=False)
    job.put("k", val)
    assert seen["fired"] and seen["sent"] == 1
    assert bytes(other.get("k")) == val
