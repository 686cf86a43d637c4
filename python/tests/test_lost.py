"""A node killed and dead past the controller's grace leaves the job's map:
the Python client answers Lost (not NotFound) for the keys it held, reads
the others, writes the lost keys again on the remaining nodes, and a node
restarted empty at the same address serves new jobs. The cluster is the Go
helper's (gohelper cluster): a controller and nodes in one process that
kills and starts nodes on request."""

from __future__ import annotations

import os
import time

import pytest

import pocket
from pocket import errors, wire

from conftest import HelperCluster, heard, wait_for

GRACE = "300ms"


@pytest.fixture
def helper_cluster(bins):
    c = HelperCluster(bins["gohelper"], 3, GRACE)
    yield c
    c.stop()


def _owner(job: pocket.Job, key: bytes, chunk: int = 0) -> str:
    st = job._st
    return st.addrs[st.set.pick(key, chunk)]


def _chunk_holder(job: pocket.Job, key: bytes, version: int, count: int) -> str:
    """A node holding a chunk of key's version and not its manifest."""
    manifest = _owner(job, key)
    for i in range(1, count + 1):
        a = _owner(job, wire.chunk_key(key, version, i), i)
        if a != manifest:
            return a
    pytest.fail("every chunk is on the manifest's node")


def test_lost_node(helper_cluster):
    c = helper_cluster
    with pocket.Client(c.addr, insecure=True, chunk_size=64 << 10) as cl:
        job = cl.register_job("lost", lambdas=40)
        assert len(job.map.nodes) == 3
        keys = {f"{i}": bytes([i]) for i in range(90)}
        for k, v in keys.items():
            job.put(k, v)
        big = os.urandom(1 << 20)  # 16 chunks
        job.put("big", big)
        version = job._stat_version(b"big")
        victim = _chunk_holder(job, b"big", version, 16)
        owner = {k: _owner(job, k.encode()) for k in keys}
        epoch = job.map.epoch
        c.command(f"kill {victim}")

        def lost_in_map() -> bool:
            m = cl._ctl().get_map(job.id, job.token)
            return any(n.addr == victim for n in m.lost)
        assert wait_for(lost_in_map, 20), "the dead node never left the map"

        # The client still holds the old map: its first request to the
        # victim is refused, and it fetches the map once and retries.
        lost = ok = 0
        for k, v in keys.items():
            if owner[k] == victim:
                with pytest.raises(pocket.Lost) as e:
                    job.get(k)
                assert victim in str(e.value) and not isinstance(e.value, errors.NotFound)
                lost += 1
            else:
                assert job.get(k) == v, k
                ok += 1
        assert lost and ok
        assert job.map.epoch > epoch and victim in [n.addr for n in job.map.lost]
        lost_key = next(k for k in keys if owner[k] == victim)
        with pytest.raises(errors.Lost):
            job.stat(lost_key)
        assert not job.exists(lost_key)
        # A delete raises as get and stat do (before: NotFound).
        with pytest.raises(errors.Lost):
            job.delete(lost_key)
        assert job.remove_all(lost_key) == 0
        with pytest.raises(errors.Lost):
            job.get("big")
        with pytest.raises(errors.Lost):
            with job.open("big") as f:
                f.read()

        # Writes go to the remaining nodes and read back.
        for k in keys:
            if owner[k] == victim:
                job.put(k, b"again")
                assert job.get(k) == b"again"
        job.put("big", big)
        assert bytes(job.get("big")) == big

        # A node restarted empty at the victim's address is a new node.
        c.command(f"start {victim}")
    # A new job's clients are new processes (a pool holding a connection to
    # the dead node would answer "unavailable" once on it).
    with pocket.Client(c.addr, insecure=True) as cl2:
        jobs = []

        def placed_on_victim() -> bool:
            jobs.append(cl2.register_job("after", lambdas=40))
            return victim in [n.addr for n in jobs[-1].map.nodes]
        assert wait_for(placed_on_victim, 10), "the restarted node takes no new job"
        new = jobs[-1]
        assert victim not in [n.addr for n in cl2._ctl().get_map(job.id, job.token).nodes]
        for k, v in keys.items():
            new.put(k, v)
            assert new.get(k) == v
        assert any(_owner(new, k.encode()) == victim for k in keys)


def test_lost_keys_of_nodes_that_joined_later():
    """A "not found" for a key a lost node held raises Lost even where a
    node that did not hold its whole share at the loss (since not before
    the lost node's epoch) now owns it: x joined while a was lost, y came
    after both losses (the Go SDK's TestLostKeysOfNodesThatJoinedLater).
    Before, x and y took a share of a's keys, which read NotFound."""
    from pocket import client as pc, placement

    a, b, c, x, y = "10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1", "10.0.0.5:1"
    m = wire.PlacementMap("j", wire.TIER_DRAM, 12,
                          [wire.MapNode(b, .25), wire.MapNode(x, .25, since=8), wire.MapNode(y, .5, since=11)], b"tok",
                          lost=[wire.LostNode(a, .25, 6), wire.LostNode(c, .25, 10)])
    st = pc._MapState(m)
    at_a = placement.NodeSet([(a, 1.0), (b, 1.0), (c, 1.0)])
    at_c = placement.NodeSet([(b, 1.0), (c, 1.0), (x, 1.0)])
    counts = {}
    for i in range(6000):
        k = f"key-{i}".encode()
        had = at_a.ids[at_a.pick(k)]
        if had == c:
            had = at_c.ids[at_c.pick(k)]
        counts[had] = counts.get(had, 0) + 1
        ls = st.lost_owners(k, 0)
        if had in (a, c):
            assert ls, f"{k!r} was on lost node {had}"
        elif had == b and st.addrs[st.set.pick(k)] == b:
            assert not ls, f"{k!r} is b's and b is live"
    assert counts.get(a, 0) >= 1000 and counts.get(c, 0) >= 500, counts


def test_lost_key_names_its_era():
    """A key written after node a was lost, and lost with node b later,
    names b, not a: a was no longer in the map when it was written; a key
    a's in the first era and b's in the second names both (the Go SDK's
    TestLostKeyNamesItsEra). Before, every era's placement held every lost
    node, and such keys were named a's alone."""
    from pocket import client as pc, placement
    from pocket.conn import Reply

    a, b, c = "10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"
    m = wire.PlacementMap("j", wire.TIER_DRAM, 4, [wire.MapNode(c, 1.0)], b"tok",
                          lost=[wire.LostNode(a, 1.0, 2), wire.LostNode(b, 1.0, 3)])
    st = pc._MapState(m)
    before = placement.NodeSet([(a, 1.0), (b, 1.0), (c, 1.0)])
    between = placement.NodeSet([(b, 1.0), (c, 1.0)])
    b_alone = 0
    for i in range(3000):
        k = f"key-{i}".encode()
        want = [o for o in [before.ids[before.pick(k)]] if o != c]
        if between.ids[between.pick(k)] == b and b not in want:
            want.append(b)
        assert [n.addr for n in st.lost_owners(k, 0)] == want, k
        if want == [b]:
            b_alone += 1
            with pytest.raises(errors.Lost, match="was on node " + b):
                st.check(Reply(1, 0, errors.Code.NOT_FOUND, b"", b""), k)
    assert b_alone >= 300


def test_puts_wait_out_a_nodes_bound_on_unfinished_puts(helper_cluster):
    """A node holds one job's puts still arriving to a quarter of its DRAM
    tier (16 MiB of the helper's 64 MiB) once the tier is half full, and
    refuses a put past it busy, storing nothing. With an announced 40 MiB
    put of the job held open on every node (a job's only unfinished put is
    never refused), a value and a chunked object put by the client wait
    the refusals out and are stored once the announcements close; before,
    the client raised Busy."""
    import socket
    import threading

    c = helper_cluster
    with pocket.Client(c.addr, insecure=True, chunk_size=256 << 10) as cl:
        job = cl.register_job("unfinished", lambdas=40)
        heard(job)
        st = job._st
        socks = []
        for n in st.map.nodes:
            host, port = n.addr.rsplit(":", 1)
            s = socket.create_connection((host, int(port)))
            meta = wire.encode_request(st.job, b"held", st.map.token, st.map.epoch)
            s.sendall(wire.pack_header(wire.OP_PUT, 0, 1, len(meta), 40 << 20) + meta + b"\0")
            socks.append(s)
        time.sleep(0.2)  # the nodes have taken the announcements
        timer = threading.Timer(1.0, lambda: [s.close() for s in socks])
        timer.start()
        try:
            value, obj = os.urandom(200 << 10), os.urandom(3 << 20)
            t0 = time.monotonic()
            job.put("value", value)
            job.put("object", obj)
            waited = time.monotonic() - t0
        finally:
            timer.cancel()
            for s in socks:
                s.close()
        assert job.get("value") == value and job.get("object") == obj
        assert waited >= 0.5, f"the puts took {waited:.2f} s: no node refused them"


def test_node_taking_a_drained_share_is_no_old_owner():
    """A node the controller gave a job to take its draining last node's
    share is active in the map with since SINCE_NOT_YET: it holds none of
    the values it owns until the drainer moved them, so every key's old
    owner is the draining node (the Go SDK's priorSet). Before, it was in
    the prior set: a key it owns had it as both owner and old owner, and a
    read asked it alone and answered NotFound (or Lost, when it was a node
    the job had lost) for a value still on the draining node."""
    from pocket import client as pc

    a, b = "10.0.0.1:1", "10.0.0.2:1"
    m = wire.PlacementMap("j", wire.TIER_DRAM, 5,
                          [wire.MapNode(b, 1.0, state=wire.NODE_DRAINING), wire.MapNode(a, 1.0, since=wire.SINCE_NOT_YET)],
                          b"tok")
    st = pc._MapState(m)
    for i in range(200):
        assert st.route(f"key-{i}".encode(), 0) == (a, b)


def test_address_lost_twice_is_two_losses():
    """An address lost, taken back and lost again is two losses: a key it
    owned after it came back names its second loss among the candidates
    (the Go SDK's TestAddressLostTwiceIsTwoLosses). Before, only the first
    loss's epoch was named."""
    from pocket import client as pc, placement

    x, y, z = "10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"
    m = wire.PlacementMap("j", wire.TIER_DRAM, 10, [wire.MapNode(z, 1.0)], b"tok",
                          lost=[wire.LostNode(x, 1.0, 2), wire.LostNode(y, 1.0, 5), wire.LostNode(x, 1.0, 9)])
    st = pc._MapState(m)
    last_era = placement.NodeSet([(z, 1.0), (x, 1.0)])
    second = 0
    for i in range(3000):
        k = f"key-{i}".encode()
        if last_era.ids[last_era.pick(k)] != x:
            continue
        second += 1
        assert (x, 9) in [(n.addr, n.epoch) for n in st.lost_owners(k, 0)], k
    assert second >= 1000


def test_lost_sets_leave_out_draining_nodes():
    """While node d drains and r, a live owner, is lost, every key whose
    live owner was r (where its writes went, and d's mover took its
    values) raises Lost on "not found"; the others do not: the answers the
    map gives once d has left (the Go SDK's TestLostSetsLeaveOutDrainingNodes).
    Before, the lost placement held d, and d's keys that went to r read
    NotFound until d left the map."""
    from pocket import client as pc, placement

    d, r, x = "10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"
    during = pc._MapState(wire.PlacementMap("j", wire.TIER_DRAM, 3,
                                            [wire.MapNode(d, .5, state=wire.NODE_DRAINING), wire.MapNode(x, .5)], b"tok",
                                            lost=[wire.LostNode(r, .5, 3)]))
    after = pc._MapState(wire.PlacementMap("j", wire.TIER_DRAM, 4, [wire.MapNode(x, 1.0)], b"tok",
                                           lost=[wire.LostNode(r, 1.0, 3)]))
    whole = placement.NodeSet([(d, 1.0), (r, 1.0), (x, 1.0)])
    live = placement.NodeSet([(r, 1.0), (x, 1.0)])
    moved = 0
    for i in range(3000):
        k = f"key-{i}".encode()
        want = live.ids[live.pick(k)] == r
        if want and whole.ids[whole.pick(k)] == d:
            moved += 1
        assert bool(during.lost_owners(k, 0)) == want, k
        assert bool(after.lost_owners(k, 0)) == want, k
    assert moved >= 300, moved


def test_lost_chunk_says_it_is_a_chunk():
    """A chunk whose owner was lost is the value's loss, its manifest and
    other chunks left on other nodes (the Go SDK's
    TestLostChunkSaysItIsAChunk). Before, it read "the value (if it was
    written) was on node X", X the chunk's node."""
    from pocket import client as pc
    from pocket.conn import Reply

    a, c = "10.0.0.1:1", "10.0.0.3:1"
    m = wire.PlacementMap("j", wire.TIER_DRAM, 3, [wire.MapNode(c, 1.0)], b"tok", lost=[wire.LostNode(a, 1.0, 2)])
    st = pc._MapState(m)
    for i in range(1, 200):
        ck = wire.chunk_key(b"big", 7, i)
        if not st.lost_owners(ck, i):
            continue
        with pytest.raises(errors.Lost) as e:
            st.check(Reply(1, 0, errors.Code.NOT_FOUND, b"", b""), ck, i)
        assert f"chunk {i} of the value was on node {a}" in str(e.value), str(e.value)
        assert "manifest and other chunks" in str(e.value), str(e.value)
        return
    pytest.fail("no chunk of 199 was the lost node's: the test proves nothing")
