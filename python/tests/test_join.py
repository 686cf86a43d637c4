"""A node joining a job's map (wire.NODE_JOINING): the client routes each
key to its owner under the map, and asks its old owner (its owner under the
map without the joining nodes) for values not moved yet; version requests
go to the nodes that may be moving values first. A node that calls the map
stale makes the client fetch it until the controller hands out a newer one.

The routing tests use hand-built maps over the shared placement vectors;
the others run on the suite's cluster, whose controller does not grow maps
yet: a join is staged with two views of one job, the map before it (the
prior nodes) and the map during it (one node more, marked joining).
"""

import json
import os
import re
import socket
import struct
import threading
import time

import flatbuffers
import pytest

from pocket.conn import Reply

from conftest import REPO, MapController, heard, usage, wait_for

import pocket
from pocket import client as pclient
from pocket import placement, wire
from pocket.fb import Request as fbRequest
from pocket.fb import Response as fbResponse

VECTORS = REPO / "internal" / "placement" / "testdata" / "vectors.json"
KiB = 1 << 10


def vector_sets():
    v = json.loads(VECTORS.read_text())
    return [[(n["id"], n["weight"]) for n in s] for s in v["sets"]], v["cases"]


def state(nodes, states, epoch=7):
    """The _MapState of a map of nodes (id, weight), states[id] overriding
    NODE_ACTIVE."""
    m = wire.PlacementMap("j-1", wire.TIER_DRAM, epoch,
                          [wire.MapNode(a, w, states.get(a, wire.NODE_ACTIVE)) for a, w in nodes], b"tok")
    return pclient._MapState(m)


def keys(cases, set_index):
    """The vectors' keys of one set, and more, as (key, chunk)."""
    ks = [(bytes.fromhex(c["key_hex"]), c["chunk"]) for c in cases if c["set"] == set_index]
    return ks + [(f"k/{i}".encode(), i % 3) for i in range(400)]


def owner(nodes, key, chunk):
    return nodes[placement.NodeSet(nodes).pick(key, chunk)][0]


def test_node_states_match_go():
    src = (REPO / "wire" / "control.go").read_text()
    go = {m[0]: int(m[1]) for m in re.findall(r"^\s*Node(\w+)\s+(?:NodeState\s+)?=\s*(\d+)", src, re.M)}
    assert go == {"Active": wire.NODE_ACTIVE, "Draining": wire.NODE_DRAINING, "Dead": wire.NODE_DEAD,
                  "Joining": wire.NODE_JOINING}


def test_joining_old_owner_is_owner_without_the_joining_nodes():
    sets, cases = vector_sets()
    checked = 0
    for si, nodes in enumerate(sets):
        if len(nodes) < 2:
            continue
        for joined in (nodes[-1:], nodes[:2] if len(nodes) > 3 else nodes[:1]):
            jids = {a for a, _ in joined}
            st = state(nodes, {a: wire.NODE_JOINING for a in jids})
            prior = [n for n in nodes if n[0] not in jids]
            moved = 0
            for key, chunk in keys(cases, si):
                addr, old = st.route(key, chunk)
                assert addr == owner(nodes, key, chunk), (si, key, chunk)
                before = owner(prior, key, chunk)
                assert old == (before if before != addr else ""), (si, key, chunk)
                # Rendezvous placement: only keys the joining nodes now own move.
                assert not old or addr in jids
                moved += bool(old)
                checked += 1
            # A joining node of no positive weight owns nothing: nothing moves.
            assert (moved > 0) == any(w > 0 for _, w in joined), (si, jids)
    assert checked > 1000


def test_no_old_owner_when_nothing_moves():
    sets, cases = vector_sets()
    for si, nodes in enumerate(sets):
        ids = [a for a, _ in nodes]
        for states in ({}, {a: wire.NODE_JOINING for a in ids}, {a: wire.NODE_DRAINING for a in ids}):
            st = state(nodes, states)
            assert st.settled
            # Draining nodes still move values out (to one another): the
            # version requests go to them first; nothing else moves.
            assert st.movers == (ids if wire.NODE_DRAINING in states.values() else [])
            for key, chunk in keys(cases, si):
                assert st.route(key, chunk) == (owner(nodes, key, chunk), ""), (si, states)


def test_dead_old_owner_is_not_asked():
    nodes = vector_sets()[0][4]
    ids = [a for a, _ in nodes]
    st = state(nodes, {ids[0]: wire.NODE_JOINING, ids[1]: wire.NODE_DEAD})
    prior = nodes[1:]
    skipped = 0
    for i in range(2000):
        key = f"d/{i}".encode()
        addr, old = st.route(key, 0)
        if addr == ids[0] and owner(prior, key, 0) == ids[1]:
            assert old == ""
            skipped += 1
        elif addr == ids[0]:
            assert old == owner(prior, key, 0)
    assert skipped > 0
    assert ids[1] not in st.movers


def test_draining_and_joining_at_once():
    nodes = vector_sets()[0][4]
    ids = [a for a, _ in nodes]
    draining, joining = ids[2], ids[5]
    st = state(nodes, {draining: wire.NODE_DRAINING, joining: wire.NODE_JOINING})
    live = [n for n in nodes if n[0] != draining]
    prior = [n for n in nodes if n[0] != joining]
    for i in range(2000):
        key = f"m/{i}".encode()
        addr, old = st.route(key, 1)
        assert addr == owner(live, key, 1) and addr != draining
        before = owner(prior, key, 1)
        assert old == (before if before != addr else "")
    # Every node but the joining one may be moving values, in map order.
    assert st.movers == [a for a in ids if a != joining]


def test_movers():
    nodes = vector_sets()[0][4]
    ids = [a for a, _ in nodes]
    st = state(nodes, {ids[3]: wire.NODE_DRAINING, ids[6]: wire.NODE_DEAD})
    assert st.movers == [ids[3]]  # only a drain: the draining node
    st = state(nodes, {ids[3]: wire.NODE_DRAINING, ids[1]: wire.NODE_JOINING, ids[6]: wire.NODE_DEAD})
    assert st.movers == [a for a in ids if a not in (ids[1], ids[6])]


def test_refresh_newer_pauses_grow_and_stop(monkeypatch):
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    m = wire.PlacementMap("j-1", wire.TIER_DRAM, 3, [wire.MapNode("127.0.0.1:1", 1.0)], b"tok")
    pauses = []
    monkeypatch.setattr(pclient.time, "sleep", pauses.append)
    with pocket.Client(insecure=True) as cl:
        job = pclient.Job(cl, m)
        cl.controller = MapController(m, 7)
        assert job._refresh_newer(3)
        assert job.map.epoch == 4 and cl.controller.calls == 8
        assert pauses == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2])
        # A controller that keeps the epoch: give up after _STALE_WAIT.
        monkeypatch.setattr(pclient, "_STALE_WAIT", 0.0)
        cl.controller = MapController(m, 10**9)
        job._st = pclient._MapState(m)
        assert not job._refresh_newer(3)
        assert cl.controller.calls == 1


# ---- on the cluster ----


@pytest.fixture
def views(cluster):
    """A job registered on the cluster with at least two nodes, and two
    Jobs over it: prior (the map without its last node) and joining (the
    whole map, the last node joining). Small chunks, so objects are
    chunked."""
    with cluster.client(chunk_size=64 * KiB) as cl:
        job = cl.register_job("join", lambdas=40)
        heard(job)
        try:
            m = job.map
            assert len(m.nodes) >= 2, m
            nodes = [wire.MapNode(n.addr, n.weight) for n in m.nodes]
            prior = pclient.Job(cl, wire.PlacementMap(m.job, m.tier, m.epoch, nodes[:-1], m.token))
            joined = nodes[:-1] + [wire.MapNode(nodes[-1].addr, nodes[-1].weight, wire.NODE_JOINING)]
            joining = pclient.Job(cl, wire.PlacementMap(m.job, m.tier, m.epoch, joined, m.token))
            yield job, prior, joining
        finally:
            job.deregister()


def moved_keys(joining, names):
    return [k for k in names if joining._st.route(k.encode(), 0)[1]]


def test_reads_and_deletes_find_values_at_the_old_owner(views):
    _, prior, joining = views
    vals = {f"v/{i}": os.urandom(50 + i) for i in range(80)}
    for k, v in vals.items():
        prior.put(k, v)
    moved = moved_keys(joining, vals)
    assert 0 < len(moved) < len(vals)
    for k, v in vals.items():
        assert joining.get(k) == v, k
        assert joining.stat(k).size == len(v), k
    for k in moved[:5]:
        joining.delete(k)
        for j in (prior, joining):
            with pytest.raises(pocket.NotFound):
                j.get(k)
    with pytest.raises(pocket.NotFound):
        joining.delete(moved[0])
    # A put goes to the owner, the joining node, then deletes the old
    # owner's older value: were the joining node lost, the key must not
    # answer the value the put replaced (test_delmove's
    # test_put_during_a_change_leaves_no_older_value).
    k = moved[5]
    joining.put(k, b"new")
    assert joining.get(k) == b"new"
    with pytest.raises(pocket.NotFound):
        prior.get(k)


def test_chunked_objects_while_a_node_joins(views):
    job, prior, joining = views
    base = usage(job)
    big = os.urandom(640 * KiB + 5)
    sends = []
    send = joining._send

    def recording(addr, op, *a, **kw):
        sends.append((op, addr))
        return send(addr, op, *a, **kw)
    joining._send = recording
    joining.put("big", big)
    # One confirm to each node that took chunks (test_confirm_asks_each_node_once).
    confirms = [a for op, a in sends if op == wire.OP_CONFIRM]
    assert confirms and len(confirms) == len(set(confirms)), confirms
    assert joining.get("big") == big
    joining.delete("big")
    assert wait_for(lambda: usage(job) == base)
    # An object written before the join, deleted during it where its
    # manifest's owner is the joining node: its chunks are dropped too.
    name = next(k for k in (f"o/{i}" for i in range(200)) if moved_keys(joining, [k]))
    prior.put(name, big)
    assert joining.get(name) == big
    assert usage(job) > base
    joining.delete(name)
    assert wait_for(lambda: usage(job) == base), (usage(job), base)


def test_confirm_asks_each_node_once(cluster, monkeypatch):
    """A confirm ends the leases of the chunks a node took; right after, the
    node may move them on, and a second confirm there counts only those
    still there (dataplane/versions.go). So each node that took chunks is
    asked once once it has answered, even when another node refuses its
    confirm for a stale map and the request follows the new one. The map
    here has a draining node (a mover) and two others; the first confirm
    to one of the others is refused stale. On the old client, which asked
    every node and summed the counts while a node was moving values, the
    stale refusal sent the whole fan-out again: the other node answered
    twice (in test_putmove.py, under load, once a chunk had moved: "the
    job's nodes hold 23 of the 24 chunks sent")."""
    with cluster.client(chunk_size=64 * KiB) as cl:
        job = cl.register_job("confirm-once", peak_mbps=24000)
        heard(job)
        try:
            m = job.map
            assert len(m.nodes) == 3, m
            nodes = [wire.MapNode(n.addr, n.weight) for n in m.nodes]
            mover = nodes[0].addr
            marked = [wire.MapNode(mover, nodes[0].weight, wire.NODE_DRAINING)] + nodes[1:]
            draining = pclient.Job(cl, wire.PlacementMap(m.job, m.tier, m.epoch, marked, m.token))
            assert draining._st.movers == [mover]
            answered: dict[str, int] = {}
            refused: list[str] = []
            send = draining._send

            def stale_once(addr, op, flags, *a, **kw):
                if op == wire.OP_CONFIRM and addr != mover and not refused:
                    refused.append(addr)
                    return Reply(0, 0, pocket.errors.Code.STALE_EPOCH, b"", b"")
                r = send(addr, op, flags, *a, **kw)
                if op == wire.OP_CONFIRM and r.code == 0:
                    answered[addr] = answered.get(addr, 0) + 1
                return r
            monkeypatch.setattr(draining, "_send", stale_once)
            # The "newer" map is the same one: the refusal is all that matters.
            monkeypatch.setattr(draining, "_map_changed", lambda *a, **kw: True)
            monkeypatch.setattr(draining, "_follow", lambda *a, **kw: True)
            big = os.urandom(20 * 64 * KiB + 3)
            draining.put("big", big)
            assert refused, "no confirm was refused: the test staged nothing"
            assert all(n == 1 for n in answered.values()), answered
            assert set(answered) <= {n.addr for n in nodes[1:]}, answered
            assert bytes(draining.get("big")) == big
        finally:
            job.deregister()


class EpochNode:
    """A node on loopback that knows the job's map is at epoch `epoch`: it
    answers a request of an older epoch "stale epoch" (with its epoch), any
    other with the value b"v". It stops when closed."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.ln = socket.create_server(("127.0.0.1", 0))
        self.addr = "127.0.0.1:%d" % self.ln.getsockname()[1]
        self.seen = []  # the epochs of the requests, in order
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.ln.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(c,), daemon=True).start()

    def _answer(self, c):
        c.settimeout(10)
        with c:
            try:
                while True:
                    _, _, op, _, _, rid, mlen, plen = _HDR.unpack(recv_exact(c, wire.HEADER_LEN))
                    meta = recv_exact(c, mlen + plen)[:mlen]
                    epoch = fbRequest.Request.GetRootAs(meta, 0).Epoch()
                    self.seen.append(epoch)
                    if epoch < self.epoch:
                        b = flatbuffers.Builder(64)
                        msg = b.CreateString("placement map is stale")
                        fbResponse.Start(b)
                        fbResponse.AddMessage(b, msg)
                        fbResponse.AddEpoch(b, self.epoch)
                        b.Finish(fbResponse.End(b))
                        out = bytes(b.Output())
                        c.sendall(wire.pack_header(op | wire.REPLY_BIT, 0, rid, len(out), 0,
                                                   pocket.Code.STALE_EPOCH) + out)
                    else:
                        c.sendall(wire.pack_header(op | wire.REPLY_BIT, 0, rid, 0, 1) + b"v")
            except OSError:
                return

    def close(self):
        self.ln.close()


_HDR = struct.Struct("<2sBBHHQII")  # the frame header (wire/header.go)


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        got = c.recv(n - len(b))
        if not got:
            raise OSError("closed")
        b += got
    return b


def test_stale_epoch_refetches_until_newer(monkeypatch):
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    node = EpochNode(5)
    try:
        m = wire.PlacementMap("j-1", wire.TIER_DRAM, 4, [wire.MapNode(node.addr, 1.0)], b"t" * 32)
        with pocket.Client(insecure=True) as cl:
            job = pclient.Job(cl, m)
            # The controller hands out epoch 4 three more times (its nodes
            # have not all learned epoch 5), then epoch 5.
            cl.controller = MapController(m, 3)
            assert job.get("k") == b"v"
            assert cl.controller.calls == 4 and job.map.epoch == 5
            assert node.seen == [4, 5]
            # It never hands out a newer one: the node's answer stands,
            # after about _STALE_WAIT.
            monkeypatch.setattr(pclient, "_STALE_WAIT", 0.3)
            cl.controller = MapController(m, 10**9)
            job._st = pclient._MapState(m)
            t0 = time.monotonic()
            with pytest.raises(pocket.StaleEpoch):
                job.get("k")
            assert time.monotonic() - t0 >= 0.3 and cl.controller.calls > 2
            assert node.seen[2:] == [4]  # not sent again on the same map
    finally:
        node.close()


def test_delete_at_both_owners_drops_the_old_owners_chunks(views):
    """An object still at its old owner (not moved yet) and a newer small
    value at the owner (written by the new map): a delete removes both,
    and the old owner's object's chunks are dropped too. Before, the
    delete answered with the owner's reply only, and nobody dropped the
    chunks (the Go SDK had the same leak)."""
    job, prior, joining = views
    base = usage(job)
    big = os.urandom(640 * KiB + 5)
    name = next(k for k in (f"b/{i}" for i in range(200)) if moved_keys(joining, [k]))
    prior.put(name, big)
    joining.put(name, b"newer")
    assert usage(job) > base
    joining.delete(name)
    assert wait_for(lambda: usage(job) == base), (usage(job), base)


def test_fan_out_waits_out_busy_for_prefix_deletes(views, monkeypatch):
    """A prefix delete a node refuses as busy (a value under the prefix is
    being moved) is sent again until it passes, as version requests are.
    Before, the busy reply raised."""
    _, _, joining = views
    joining.put("p/1", b"x")
    calls = {"busy": 0}
    send = joining._send

    def busy_once(addr, op, flags, *a, **kw):
        if op == wire.OP_DELETE and flags & wire.FLAG_PREFIX and calls["busy"] == 0:
            calls["busy"] += 1
            return Reply(0, 0, pocket.errors.Code.BUSY, b"", b"")
        return send(addr, op, flags, *a, **kw)
    monkeypatch.setattr(joining, "_send", busy_once)
    joining.remove_all("p")
    assert calls["busy"] == 1
    with pytest.raises(pocket.NotFound):
        joining.get("p/1")
