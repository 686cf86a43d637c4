"""Deletes and fan-outs while a job's map changes (the Go SDK's
pocket/delmove_test.go).

  - A get that deletes (delete_after_read) of a key overwritten during the
    change must leave no older value at the key's old owner: before, it
    read and deleted the new value at the new owner only, and the next get
    answered the overwritten one (which the old owner's mover would also
    put back at the emptied new owner).
  - remove_all during a grow, shrink or drain leaves nothing: before, the
    prefix delete went to every node at once, the nodes values move to
    emptied first, and the movers then put values there.
  - A fan-out (listing) that finds a node of the map gone waits for the
    map without it (or marking it dead) instead of raising Unavailable.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

import pocket
from pocket import client as pclient
from pocket import conn, wire

from conftest import HelperCluster, MapController, heard, usage, wait_for

KiB = 1 << 10
CHUNK = 64 * KiB


# ---- delete-after-read of an overwritten key (the suite's cluster) ----


@pytest.fixture
def change_views(cluster):
    """A job on the cluster (at least three nodes) and, for "join" and
    "drain", two Jobs over it: before (the map the values were written
    with) and during (the map while its last node joins it, or drains),
    with the last node, the one a key's owner changes to or from."""
    with cluster.client(chunk_size=CHUNK) as cl:
        job = cl.register_job("delmove", lambdas=40)
        heard(job)
        try:
            m = job.map
            assert len(m.nodes) >= 3, m
            nodes = [wire.MapNode(n.addr, n.weight) for n in m.nodes]

            def view(ns):
                return pclient.Job(cl, wire.PlacementMap(m.job, m.tier, m.epoch, ns, m.token))
            last = nodes[-1]
            joining = nodes[:-1] + [wire.MapNode(last.addr, last.weight, wire.NODE_JOINING)]
            draining = nodes[:-1] + [wire.MapNode(last.addr, last.weight, wire.NODE_DRAINING)]
            yield {"join": (view(nodes[:-1]), view(joining)), "drain": (view(nodes), view(draining))}, last.addr
        finally:
            job.deregister()


@pytest.mark.parametrize("change", ["join", "drain"])
@pytest.mark.parametrize("size", [100, 3 * CHUNK + 100])
@pytest.mark.parametrize("into", [False, True])
def test_delete_after_read_of_an_overwrite_leaves_no_older_value(change_views, change, size, into):
    views, moving = change_views
    before, during = views[change]
    # A key whose owner changes, to or from the last node.
    key = next(k for k in (f"obj-{i}" for i in range(1000)) if during._st.route(k.encode(), 0)[1])
    assert moving in during._st.route(key.encode(), 0)
    v1, v2 = os.urandom(size), os.urandom(size)
    before.put(key, v1)
    during.put(key, v2)  # to the new owner only
    if into:
        buf = bytearray(size)
        assert during.get_into(key, buf, delete_after_read=True) == size and bytes(buf) == v2
    else:
        assert bytes(during.get(key, delete_after_read=True)) == v2
    for j in (during, before):
        with pytest.raises(pocket.NotFound):
            got = j.get(key)
            assert bytes(got) != v1, "the key answers the value it overwrote"



@pytest.mark.parametrize("change", ["join", "drain"])
@pytest.mark.parametrize("size", [100, 3 * CHUNK + 100])
def test_put_during_a_change_leaves_no_older_value(change_views, change, size):
    """A put of a key whose owner changes deletes the old owner's copy once
    the new owner has stored it: if the new owner were lost, the key must
    not answer the value the put replaced (the Go SDK's
    TestPutInChangeLeavesNoOlderValue; a hostile trial found older values
    back after a joining node was killed). Before, the old owner kept it."""
    views, moving = change_views
    before, during = views[change]
    key = next(k for k in (f"obj-{i}" for i in range(1000)) if during._st.route(k.encode(), 0)[1])
    v1, v2 = os.urandom(size), os.urandom(size)
    before.put(key, v1)
    during.put(key, v2)
    assert bytes(during.get(key)) == v2
    # The map from before the change asks the old owner alone.
    with pytest.raises(pocket.NotFound):
        got = before.get(key)
        assert bytes(got) != v1, "the old owner still answers the value the put replaced"
    during.delete(key)


@pytest.mark.parametrize("change", ["join", "drain"])
def test_delete_after_read_consumes_once_during_a_change(change_views, change):
    """Two readers get-delete one value at once while its owner changes:
    exactly one gets it, as outside a change. The first fix of the
    resurrection above returned the value it had looked at to every racer."""
    views, _ = change_views
    _, during = views[change]
    key = next(k for k in (f"once-{i}" for i in range(1000)) if during._st.route(k.encode(), 0)[1])
    other = pclient.Job(during.client, during.map)
    double = 0
    for i in range(30):
        during.put(key, f"v{i}".encode())
        got = [False, False]

        def read(k, j):
            try:
                j.get(key, delete_after_read=True)
                got[k] = True
            except pocket.NotFound:
                pass
        ts = [threading.Thread(target=read, args=(k, j)) for k, j in enumerate((during, other))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        double += all(got)
    assert double == 0, f"{double} of 30 values read by both of two delete-after-read calls"

# ---- on the Go helper's cluster, whose movers run ----


@pytest.fixture
def move_cluster(bins):
    # A dead node stays in the maps (a grace longer than the test): only
    # the changes change them.
    c = HelperCluster(bins["gohelper"], 5, "10m")
    yield c
    c.stop()


def _change_under_way(job: pocket.Job, timeout: float = 30.0) -> bool:
    """Fetches the job's map until it names a joining or draining node."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job.refresh()
        if any(n.state in (wire.NODE_JOINING, wire.NODE_DRAINING) for n in job.map.nodes):
            return True
        time.sleep(0.002)
    return False


@pytest.mark.parametrize("change", ["grow", "shrink", "drain"])
def test_remove_all_across_map_changes(move_cluster, change):
    c = move_cluster
    with pocket.Client(c.addr, insecure=True, chunk_size=CHUNK) as cl:
        left = 0
        for trial in range(2):
            job = cl.register_job(f"rmall{trial}", peak_mbps=24000)
            n = 2000
            for i in range(n):
                job.put(f"d/{i:06d}", b"value %d ...................................................." % i)
            cmd = {"grow": f"grow {job.id}", "shrink": f"shrink {job.id}",
                   "drain": f"drain {job.map.nodes[0].addr}"}[change]
            errs: list = []

            def run():
                try:
                    c.command(cmd)  # answered once the change has ended
                except BaseException as e:  # noqa: BLE001 - checked below
                    errs.append(e)
            t = threading.Thread(target=run)
            t.start()
            try:
                assert _change_under_way(job), "the change did not start"
                job.remove_all("d")
            finally:
                t.join()
            assert not errs, errs
            ents = job.list("d/")
            left += len(ents)
            held = [0]

            def empty() -> bool:
                held[0] = int(c.command(f"values {job.id}"))
                return held[0] == 0
            assert wait_for(empty, 10), f"trial {trial}: the nodes hold {held[0]} records, listed {len(ents)}"
            job.deregister()
        assert left == 0, f"{left} values survived remove_all across a {change}"


def test_listings_wait_for_the_map_without_a_stopped_node(move_cluster):
    """A node of the job's map (active, not draining) stops: listings
    wait until the controller marks it dead in the map (after 500 ms),
    which fan-outs skip, instead of raising Unavailable. count_files,
    whose count cannot say it is partial, raises Unavailable naming the
    node once the map marks it dead (test_count_files_with_a_dead_node)."""
    c = move_cluster
    with pocket.Client(c.addr, insecure=True) as cl:
        job = cl.register_job("stopped", peak_mbps=24000)
        for i in range(200):
            job.put(f"d/{i:04d}", b"v")
        assert len(job.list("d/")) == 200
        victim = job.map.nodes[0].addr
        c.command(f"kill {victim}")
        calls, failures = 0, []
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            calls += 1
            try:
                job.list("d/")
            except pocket.PocketError as e:
                failures.append(repr(e))
            try:
                job.count_files("d")
            except pocket.Unavailable as e:
                if f"node {victim} is dead" not in str(e):
                    failures.append(repr(e))
            except pocket.PocketError as e:
                failures.append(repr(e))
        assert any(n.addr == victim and n.state == wire.NODE_DEAD for n in job.map.nodes), job.map
        assert not failures, f"{len(failures)} of {calls} rounds of listings failed: {failures[:3]}"


def test_follow_waits_for_a_new_map_for_fan_outs_only(monkeypatch):
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    monkeypatch.setattr(pclient.time, "sleep", lambda s: None)
    x, y = "127.0.0.1:1", "127.0.0.1:2"  # both active; neither is dialled
    m = wire.PlacementMap("j-1", wire.TIER_DRAM, 5, [wire.MapNode(x, 1.0), wire.MapNode(y, 1.0)], b"tok")
    with pocket.Client(insecure=True) as cl:
        cl.controller = MapController(m, 3)
        job = pclient.Job(cl, m)
        gone = conn.NodeUnavailable(x, "refused", sent=False)
        # A single-key read of an active node: the map was just fetched,
        # so the controller is not asked (_REFRESH_GAP).
        assert not job._follow([gone], job._st, wire.OP_GET, 0) and cl.controller.calls == 0
        # A listing: the map is fetched until it is newer.
        used = job._st
        assert job._follow([gone], used, wire.OP_LIST, 0, fan_out=True)
        assert cl.controller.calls == 4 and job.map.epoch == 6


def test_a_node_behind_the_map_is_asked_again(monkeypatch):
    """A node that refuses a request with an epoch older than the map's
    (it restarted and has not synced its job table yet) is behind, not the
    map: the same map goes again after a pause, without asking the
    controller. The old client waited for a newer map, which never came,
    and failed after 5 s."""
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    slept = []
    monkeypatch.setattr(pclient.time, "sleep", slept.append)
    x = "127.0.0.1:1"
    m = wire.PlacementMap("j-1", wire.TIER_DRAM, 5, [wire.MapNode(x, 1.0)], b"tok")
    with pocket.Client(insecure=True) as cl:
        cl.controller = MapController(m, 100)
        job = pclient.Job(cl, m)
        behind = pocket.errors.error_for(pocket.errors.Code.STALE_EPOCH, "missed the epoch", 4)
        assert job._follow([behind], job._st, wire.OP_LIST, 0, fan_out=True)
        assert cl.controller.calls == 0 and slept == [pclient._BEHIND_PAUSE] and job.map.epoch == 5
        # A node that knows no epoch of the job (epoch 0: not synced since
        # it started, or its lease lapsed) may have been left behind by the
        # map: it is fetched once, then the same map goes again.
        slept.clear()
        unsynced = pocket.errors.error_for(pocket.errors.Code.STALE_EPOCH, "not synced", 0)
        assert job._follow([unsynced], job._st, wire.OP_LIST, 0, fan_out=True)
        assert cl.controller.calls == 1 and slept == [pclient._BEHIND_PAUSE] and job.map.epoch == 5
        slept.clear()
        # Later retries of the call pause twice as long each (about a second
        # over the call's retries, for a node that restarted).
        assert job._follow([behind], job._st, wire.OP_LIST, 0, fan_out=True, attempt=2)
        assert slept[-1] == 4 * pclient._BEHIND_PAUSE and cl.controller.calls == 1
        # A node ahead of the map: the map is fetched until it is newer.
        ahead = pocket.errors.error_for(pocket.errors.Code.STALE_EPOCH, "stale", 7)
        cl.controller = MapController(m, 2)
        assert job._follow([ahead], job._st, wire.OP_LIST, 0, fan_out=True) and cl.controller.calls == 3


class _AwayController(MapController):
    """Unreachable for its first `away` fetches, then as MapController."""

    def __init__(self, m: wire.PlacementMap, away: int):
        super().__init__(m, 0)
        self.away = away

    def get_map(self, job, token):
        if self.away > 0:
            self.away -= 1
            raise pocket.errors.Unavailable("controller 127.0.0.1:9: connection refused")
        return super().get_map(job, token)


def test_a_stale_map_waits_for_a_restarting_controller(monkeypatch):
    """A node calls the map stale while the controller restarts: the map is
    asked for again within the stale-map bound, and the call goes on once
    the controller answers. The old client gave up at the first refused
    fetch (a new user: every call failed for the 8 s of a restart)."""
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    monkeypatch.setattr(pclient.time, "sleep", lambda s: None)
    m = wire.PlacementMap("j-1", wire.TIER_DRAM, 5, [wire.MapNode("127.0.0.1:1", 1.0)], b"tok")
    with pocket.Client(insecure=True) as cl:
        cl.controller = _AwayController(m, 3)
        job = pclient.Job(cl, m)
        ahead = pocket.errors.error_for(pocket.errors.Code.STALE_EPOCH, "stale", 6)
        assert job._follow([ahead], job._st, wire.OP_GET, 0) and job.map.epoch == 6


@pytest.mark.parametrize("size", [100, 3 * CHUNK + 100])
def test_dead_old_owner_is_not_absence(change_views, size):
    """While a node joins a job's map, a key whose old owner the map marks
    dead is not taken for absent: get, stat, exists, a get that deletes and
    a delete raise Unavailable ("node ADDR is dead"), and the value is still
    there once the node is alive again in the map; a put goes to the new
    owner and reads back, for a one-record value (the Go SDK's TestOldOwnerNotAskedIsNotAbsence).
    Before, they answered not found (a hostile trial: 506 of 1,000 gets,
    98 of 200 deletes of values that read back once the node did)."""
    views, _ = change_views
    before, during = views["join"]
    key = next(k for k in (f"dead-{i}" for i in range(1000)) if during._st.route(k.encode(), 0)[1])
    old = during._st.route(key.encode(), 0)[1]
    v1 = os.urandom(size)
    before.put(key, v1)
    m = during.map
    ns = [wire.MapNode(n.addr, n.weight, wire.NODE_DEAD if n.addr == old else n.state) for n in m.nodes]
    dead = pclient.Job(during.client, wire.PlacementMap(m.job, m.tier, m.epoch, ns, m.token))
    for name, call in [("get", lambda: dead.get(key)), ("stat", lambda: dead.stat(key)),
                       ("exists", lambda: dead.exists(key)),
                       ("get and delete", lambda: dead.get(key, delete_after_read=True)),
                       ("delete", lambda: dead.delete(key))]:
        with pytest.raises(pocket.Unavailable, match="is dead"):
            call()
            pytest.fail(f"{name} with the old owner dead answered")
    assert bytes(during.get(key)) == v1, "the value left its old owner"
    if size < CHUNK:  # a chunked value's chunks may be the dead node's own keys
        v2 = os.urandom(size)
        dead.put(key, v2)
        assert bytes(during.get(key)) == v2


def test_count_files_with_a_dead_node(cluster):
    """With a node of the map dead, count_files raises Unavailable naming
    it, for a directory with names or without, instead of counting the
    other nodes' names (a hostile trial: 6 of 10) or raising NotFound for
    one whose names were all on it (the Go SDK's
    TestCountFilesWithADeadNode)."""
    with cluster.client() as cl:
        job = cl.register_job("countdead", lambdas=40)
        try:
            for i in range(30):
                job.put(f"dir/f{i:02d}", b"v")
            assert job.count_files("dir") == 30
            m = job.map
            victim = m.nodes[0].addr
            ns = [wire.MapNode(n.addr, n.weight, wire.NODE_DEAD if n.addr == victim else n.state) for n in m.nodes]
            dead = pclient.Job(cl, wire.PlacementMap(m.job, m.tier, m.epoch, ns, m.token))
            for d in ("dir", "nothing-here"):
                with pytest.raises(pocket.Unavailable, match=victim):
                    dead.count_files(d)
        finally:
            job.deregister()


# ---- busy answers from a key's live owner during a change ----


@pytest.mark.parametrize("change", ["join", "drain"])
def test_busy_live_owner_in_change_is_waited_out(change_views, change, monkeypatch):
    """A get, stat and delete of a key whose owner changes, answered busy
    three times each by the key's live owner, are sent again, as outside a
    change (test_busy.py): a busy node did nothing. Before, only puts
    were, and the get raised Busy at once (the Go SDK's
    TestBusyAnswersInChangeAreWaitedOut)."""
    views, moving = change_views
    before, during = views[change]
    key = next(k for k in (f"obj-{i}" for i in range(1000)) if during._st.route(k.encode(), 0)[1])
    live = during._st.route(key.encode(), 0)[0]
    during.put(key, b"value")
    send = during._send_once
    busy = {wire.OP_GET: 3, wire.OP_STAT: 3, wire.OP_DELETE: 3}

    def busy_first(addr, op, flags, *a, **kw):
        if addr == live and busy.get(op, 0) > 0:
            busy[op] -= 1
            return conn.Reply(0, 0, pocket.errors.Code.BUSY, b"", b"")
        return send(addr, op, flags, *a, **kw)
    monkeypatch.setattr(during, "_send_once", busy_first)
    assert bytes(during.get(key)) == b"value"
    assert during.stat(key).size == 5
    during.delete(key)
    assert busy == {wire.OP_GET: 0, wire.OP_STAT: 0, wire.OP_DELETE: 0}
    with pytest.raises(pocket.NotFound):
        during.get(key)


# ---- busy answers from a key's live owner, the other sends (a review) ----
#
# The live owner's look of a delete-after-read (_read_delete), the final
# delete by version of _delete_found, and the stat of a delete by version
# (_drain_do) sent once; the Go SDK's movingKey.send waits them all out.


def _busy_live(during, live, busy):
    send = during._send_once

    def busy_first(addr, op, flags, *a, **kw):
        if addr == live and busy.get(op, 0) > 0:
            busy[op] -= 1
            return conn.Reply(0, 0, pocket.errors.Code.BUSY, b"", b"")
        return send(addr, op, flags, *a, **kw)
    return busy_first


@pytest.mark.parametrize("change", ["join", "drain"])
def test_busy_live_owner_delete_after_read(change_views, change, monkeypatch):
    views, _ = change_views
    _, during = views[change]
    key = next(k for k in (f"dar-{i}" for i in range(1000)) if during._st.route(k.encode(), 0)[1])
    live = during._st.route(key.encode(), 0)[0]
    during.put(key, b"value")
    busy = {wire.OP_GET: 3}
    monkeypatch.setattr(during, "_send_once", _busy_live(during, live, busy))
    # Before: Busy raised by the live owner's first look.
    assert bytes(during.get(key, delete_after_read=True)) == b"value"
    assert busy == {wire.OP_GET: 0}


@pytest.mark.parametrize("change", ["join", "drain"])
def test_busy_live_owner_delete_by_version(change_views, change, monkeypatch):
    views, _ = change_views
    _, during = views[change]
    st = during._st
    key = next(k for k in (f"dv-{i}" for i in range(1000)) if st.route(k.encode(), 0)[1])
    live, old = st.route(key.encode(), 0)[0], st.route(key.encode(), 0)[1]
    during.put(key, b"value")
    ver = during._send(live, wire.OP_STAT, st.tier_flags, st.codec.encode(key.encode())).response().version
    assert ver, "the value stored at the live owner has no version"
    busy = {wire.OP_STAT: 3}
    monkeypatch.setattr(during, "_send_once", _busy_live(during, live, busy))
    # The delete by version that ends a chunked delete-after-read: its
    # stat at the live owner. Before: the busy reply returned.
    r = during._drain_do(st, key.encode(), ver, live, old, wire.OP_DELETE, wire.FLAG_IF_VERSION | st.tier_flags,
                         st.codec.encode(key.encode(), ver), None, None)
    assert r.code == 0, r.code
    assert busy == {wire.OP_STAT: 0}


@pytest.mark.parametrize("code", [pocket.errors.Code.CLOSED, pocket.errors.Code.UNAVAILABLE])
def test_delete_after_read_stops_at_an_old_owners_unknown_outcome(change_views, code, monkeypatch):
    """A get that deletes a key whose owner changes, found nowhere at its
    live owner, reads and deletes at the old owner: a reply there of closed
    or unavailable may follow a read and delete that was done, so the call
    ends with it, as the Go SDK's readDelete (unexecuted). Before, it went
    on to read and delete at the live owner, consuming a value written
    there meanwhile: two values consumed, the older one by no caller."""
    views, _ = change_views
    before, during = views["join"]
    st = during._st
    key = next(k for k in (f"dar-unknown-{i}" for i in range(1000)) if st.route(k.encode(), 0)[1])
    old = st.route(key.encode(), 0)[1]
    before.put(key, b"v1")  # at the old owner
    send = during._send_once
    fired = []

    def consumed_then_closed(addr, op, flags, *a, **kw):
        r = send(addr, op, flags, *a, **kw)
        if addr == old and op == wire.OP_GET and flags & wire.FLAG_DELETE_AFTER_READ and not fired:
            fired.append(bytes(r.payload))
            during.put(key, b"v2")  # a writer on the new map, meanwhile
            return conn.Reply(r.id, 0, code, b"", b"")
        return r
    monkeypatch.setattr(during, "_send_once", consumed_then_closed)
    with pytest.raises(pocket.errors.PocketError):
        during.get(key, delete_after_read=True)
    monkeypatch.undo()
    assert fired == [b"v1"], fired
    assert bytes(during.get(key)) == b"v2", "the value written meanwhile was consumed too"


def test_failed_delete_keeps_the_owners_copy_of_the_same_version(change_views, monkeypatch):
    """A delete of a moving key whose old owner and owner hold the same
    version of a chunked object (a mover's copy, put at the owner and not
    yet deleted at home): the old owner deletes it, the owner fails. The
    version's chunks are the owner's value's and stay (the Go SDK's
    deleteBoth, liveMayHold). Before, they were dropped whenever the
    owner failed, and the key read corrupt."""
    views, _ = change_views
    before, during = views["join"]
    st = during._st
    key = next(k for k in (f"same-{i}" for i in range(1000)) if st.route(k.encode(), 0)[1])
    live, old = st.route(key.encode(), 0)
    value = os.urandom(3 * CHUNK + 100)
    before.put(key, value)  # the manifest at the old owner
    r = during._send(old, wire.OP_GET, st.tier_flags | wire.FLAG_VERSION, st.codec.encode(key.encode()))
    ver = r.response().version
    assert r.flags & wire.FLAG_MANIFEST and ver, "no manifest at the old owner"
    r = during._send(live, wire.OP_PUT, st.tier_flags | wire.FLAG_MANIFEST,
                     st.codec.encode(key.encode(), ver, len(value)), bytes(r.payload))
    assert r.code == 0, r.code  # the mover's copy at the owner
    send = during._send_once

    def owner_fails(addr, op, flags, *a, **kw):
        if addr == live and op == wire.OP_DELETE:
            return conn.Reply(0, 0, pocket.errors.Code.IO, b"", b"")
        return send(addr, op, flags, *a, **kw)
    monkeypatch.setattr(during, "_send_once", owner_fails)
    with pytest.raises(pocket.errors.PocketError):
        during.delete(key)
    monkeypatch.undo()
    assert bytes(during.get(key)) == value, "the owner's value lost its chunks"


def _held_by_a_stale_refusal(change_views, prefix: str, monkeypatch):
    """A key (named prefix and a number) moving in the "join" view, whose
    old owner holds a chunked version and whose owner a newer plain value,
    deleted while the owner refuses the delete and the stat as stale: the
    version is held undropped. Returns the view and the key."""
    views, _ = change_views
    before, during = views["join"]
    st = during._st
    key = next(k for k in (f"{prefix}{i}" for i in range(1000)) if st.route(k.encode(), 0)[1])
    live, _ = st.route(key.encode(), 0)
    before.put(key, os.urandom(3 * CHUNK + 100))  # the manifest at the old owner
    r = during._send(live, wire.OP_PUT, st.tier_flags, st.codec.encode(key.encode(), pclient._new_version()), b"newer")
    assert r.code == 0, r.code  # the owner's newer value, replacing nothing
    send = during._send_once

    def owner_moved_on(addr, op, flags, *a, **kw):
        if addr == live and op in (wire.OP_DELETE, wire.OP_STAT):
            return conn.Reply(0, 0, pocket.errors.Code.STALE_EPOCH, b"", b"")
        return send(addr, op, flags, *a, **kw)
    monkeypatch.setattr(during, "_send_once", owner_moved_on)
    monkeypatch.setattr(during, "_map_changed", lambda *a, **kw: False)  # no newer map (yet)
    with pytest.raises(pocket.errors.PocketError):
        during.delete(key)
    monkeypatch.undo()
    assert during._undropped
    return during, key


@pytest.mark.parametrize("then", ["delete", "consume", "put"])
def test_delete_refused_stale_by_the_owner_drops_the_old_owners_version(change_views, then, monkeypatch):
    """A delete of a moving key whose old owner holds a chunked version
    and whose owner a newer plain value: the old owner deletes the
    version, the owner refuses the delete as stale (it moved on to a newer
    map), and its stat too, so whether it holds the same version is
    unknown and the chunks stay. The next delete, consuming get or put of
    the key finds the version at neither owner, and its chunks go then
    (the Go SDK's undropped). Before, they stayed until the job ended."""
    during, key = _held_by_a_stale_refusal(change_views, "stale-", monkeypatch)
    assert usage(during) > 3 * CHUNK, "the chunks went while the owner's value was unknown"
    if then == "delete":
        during.delete(key)  # the caller's next try, on a map the owner takes
    elif then == "consume":
        assert during.get(key, delete_after_read=True) == b"newer"
    else:
        during.put(key, b"")
        assert not during._undropped, "the put settled nothing"
        during.delete(key)
    with pytest.raises(pocket.errors.NotFound):
        during.get(key)
    assert wait_for(lambda: usage(during) == 0), f"{usage(during)} bytes left after the key was deleted"
    assert not during._undropped


def test_a_held_version_the_old_owner_serves_stays(change_views):
    """A version held undropped (as _drop_or_hold holds it) that the old
    owner still serves as the key's value: a delete by another version
    answers NOT_FOUND (old owner: conflict, owner: not found). A first
    version of _settle_undropped took that for the key deleted and dropped
    the version's chunks: the key read corrupt (a review; the Go SDK's
    TestUndroppedVersionLiveAtTheOldOwnerStays reaches the state for
    real)."""
    views, _ = change_views
    before, during = views["join"]
    st = during._st
    key = next(k for k in (f"held-{i}" for i in range(1000)) if st.route(k.encode(), 0)[1])
    val = os.urandom(3 * CHUNK + 100)
    before.put(key, val)  # manifest at the old owner
    ver = during._stat_version(key.encode())
    assert bytes(during.get(key)) == val
    during._hold_undropped(key.encode(), ver)
    with pytest.raises(pocket.errors.NotFound):
        during._delete_version(key.encode(), ver ^ 1)  # a delete-after-read's, of a replaced version
    assert bytes(during.get(key)) == val, "the value the old owner serves lost its chunks"
    assert during._undropped == {key.encode(): [ver]}


def test_a_held_version_goes_with_its_directory(change_views, monkeypatch):
    """A held version (as in the stale-refusal test) whose key is then
    removed by remove_all of its directory: a prefix delete skips chunk
    keys, and a review found the first version of settling leaving prefix
    deletes out, so the version's chunks stayed (the Go SDK's
    TestUndroppedVersionGoesWithItsDirectory)."""
    during, key = _held_by_a_stale_refusal(change_views, "d/held-", monkeypatch)
    assert during._undropped
    during.remove_all("d")
    with pytest.raises(pocket.errors.NotFound):
        during.get(key)
    assert wait_for(lambda: usage(during) == 0), f"{usage(during)} bytes left after remove_all"
    assert not during._undropped
