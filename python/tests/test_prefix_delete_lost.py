"""A prefix delete (remove_all) whose reply is lost after its node
executed it (the Go SDK's pocket/prefixdelete_lost_test.go). The node's
reply names the manifest versions it removed, whose chunks the client then
drops on every node; with the reply lost, the pass sent again (the map
changed meanwhile) or the caller's retry (the same map: the call fails
unavailable) finds the keys gone. Before, no one named those versions
again, and the chunks (confirmed: no lease reclaims them) stayed on the
nodes until the job ended.

Static nodes (the Go helper's ``static`` mode), the map set by hand, the
reply lost at the client as test_resend.py loses it: deterministic.
"""

from __future__ import annotations

import os

import pytest

import pocket
from pocket import client as pclient
from pocket import conn as pconn
from pocket import wire

from test_resend import FixedController
from test_spans_change import StaticNodes

KiB = 1 << 10
CS = 16 * KiB
JOB = "job-1"


@pytest.fixture
def rig(bins, monkeypatch):
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    nodes = StaticNodes(bins["gohelper"], 3)
    with pocket.Client(insecure=True, chunk_size=CS) as cl:
        cl.controller = FixedController()
        try:
            yield cl.open_static(JOB, nodes.addrs), nodes
        finally:
            cl.controller = None
            nodes.stop()


def lose_prefix_delete_reply(monkeypatch, job, change_map: bool) -> dict:
    """The first prefix delete job's client sends is executed by its node,
    and then its connection fails as one whose node went away (a
    NodeUnavailable that was sent), the job's map moved to its next epoch
    first when change_map is set."""
    seen = {"fired": False}
    orig = pconn.NodeConn.roundtrip

    def roundtrip(c, op, flags, meta, payload=None, dst=None):
        if op != wire.OP_DELETE or not flags & wire.FLAG_PREFIX or seen["fired"]:
            return orig(c, op, flags, meta, payload, dst)
        seen["fired"] = True
        orig(c, op, flags, meta, payload, dst)
        if change_map:
            m = job._st.map
            job._st = pclient._MapState(wire.PlacementMap(m.job, m.tier, m.epoch + 1, list(m.nodes), m.token))
        raise c._fail(ConnectionError("connection lost (the test's)"))

    monkeypatch.setattr(pconn.NodeConn, "roundtrip", roundtrip)
    return seen


@pytest.mark.parametrize("change_map", [True, False], ids=["map-changed", "same-map"])
def test_prefix_delete_reply_lost_drops_chunks(rig, monkeypatch, change_map):
    job, nodes = rig
    keys = [f"d/obj-{i}" for i in range(8)]
    for k in keys:
        job.put(k, os.urandom(4 * CS + 100))
    assert nodes.values() == 8 * 6  # a manifest and five chunks each
    seen = lose_prefix_delete_reply(monkeypatch, job, change_map)
    if change_map:
        job.remove_all("d")  # the pass is sent again on the new map
    else:
        with pytest.raises(pocket.errors.Unavailable):
            job.remove_all("d")
        job.remove_all("d")  # the caller's retry
    assert seen["fired"], "no prefix delete reached a node"
    assert len(job.list("d/")) == 0
    left = nodes.values()
    assert left == 0, f"{left} chunk records left on the nodes after remove_all"
