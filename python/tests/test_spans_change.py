"""Requests that must meet every chunk of a version or every value under a
prefix, while the job's map changes the other way round (the Go SDK's
pocket/dropmove_test.go and pocket/listmove_test.go).

A version's drop, a prefix delete (remove_all) and a listing ask the job's
nodes in the order values move, taken from the map they start with. Here
node C joins the map (so A and B are asked first, C last); once A has been
asked, C is taken out of the map again and its mover puts what it holds at
A or B, nodes already asked. Before, a drop left the moved chunk on A until
the job ended, remove_all left the moved value readable, and a listing
missed it: each now starts over on the new map when the map changed while
it ran. Also: a manifest put sent twice whose first attempt was stored no
longer drops its own chunks.

Static nodes (the Go helper's ``static`` mode: no controller, any epoch),
the map set by hand and the mover run by the test: deterministic.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

import pocket
from pocket import client as pclient
from pocket import placement, wire

from conftest import wait_for

KiB = 1 << 10
CS = 16 * KiB
JOB = "job-1"


class StaticNodes:
    """The Go helper's static nodes (gohelper static NODES)."""

    def __init__(self, binary: str, n: int):
        self.proc = subprocess.Popen([binary, "static", str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.addrs: list[str] = []
        for line in self.proc.stdout:
            kind, _, rest = line.strip().partition(" ")
            if kind == "node":
                self.addrs.append(rest)
            elif kind == "ready":
                break
        assert len(self.addrs) == n, "gohelper static did not come up"

    def command(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer and not answer.startswith("error"), f"{line}: {answer}"
        return answer

    def values(self, job: str = JOB) -> int:
        return int(self.command(f"values {job}"))

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def nodes(bins):
    s = StaticNodes(bins["gohelper"], 3)
    yield s
    s.stop()


class Change:
    """Three static nodes A, B, C and a job on them whose map (set by hand)
    has C joining (epoch 1); m2 is the same map with C leaving (epoch 2).
    all and ab place keys over A, B, C and over A, B."""

    def __init__(self, nodes: StaticNodes, cl: pocket.Client):
        self.nodes = nodes
        self.a, self.b, self.c = nodes.addrs
        self.job = cl.open_static(JOB, nodes.addrs)
        ns = [wire.MapNode(self.a, 1.0), wire.MapNode(self.b, 1.0)]
        self.m1 = wire.PlacementMap(JOB, wire.TIER_DRAM, 1, ns + [wire.MapNode(self.c, 1.0, wire.NODE_JOINING)], b"")
        self.m2 = wire.PlacementMap(JOB, wire.TIER_DRAM, 2, ns + [wire.MapNode(self.c, 1.0, wire.NODE_DRAINING)], b"")
        self.job._st = pclient._MapState(self.m1)
        self.all = placement.NodeSet([(self.a, 1.0), (self.b, 1.0), (self.c, 1.0)])
        self.ab = placement.NodeSet([(self.a, 1.0), (self.b, 1.0)])
        self.moved = 0
        self.fired = False

    def owner(self, s: placement.NodeSet, key: bytes, chunk: int = 0) -> str:
        return s.ids[s.pick(key, chunk)]

    def holds(self, addr: str, key: bytes) -> bool:
        st = self.job._st
        return self.job._send(addr, wire.OP_STAT, 0, st.codec.encode(key)).code == 0

    def move_away(self, lease_wait: float = 0.0) -> None:
        """Sets the job's map to m2, waits lease_wait seconds (a node's mark
        of a version it dropped to run out), and runs C's mover: its values
        go to A or B. Runs once."""
        assert not self.fired
        self.fired = True
        self.job._st = pclient._MapState(self.m2)
        time.sleep(lease_wait)
        self.moved = int(self.nodes.command(f"migrate {self.c} {JOB} 2 {self.a},{self.b}"))

    def check_moved(self) -> None:
        assert self.fired, "the request did not reach its node: the test did not run its map change"
        assert self.moved == 1, f"C's mover moved {self.moved} values, want 1"


@pytest.fixture
def change(nodes, monkeypatch):
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    with pocket.Client(insecure=True, chunk_size=CS) as cl:
        yield Change(nodes, cl)


def test_drop_version_spans_map_change(change):
    """A delete drops the replaced version's chunks at A, then B, then C;
    between A and B, C leaves and moves its chunk to A (after A's mark of
    the version as dropped ran out). Before: that chunk stayed on A."""
    ch, job = change, change.job
    key = b"obj"
    w = pclient._ObjectWrite(job, key, 0)
    while not (ch.owner(ch.all, wire.chunk_key(key, w.ver, 1), 1) == ch.a and
               ch.owner(ch.all, wire.chunk_key(key, w.ver, 2), 2) == ch.b and
               ch.owner(ch.all, wire.chunk_key(key, w.ver, 3), 3) == ch.c and
               ch.owner(ch.ab, wire.chunk_key(key, w.ver, 3), 3) == ch.a):
        w.ver += 1
    # The chunks' leases outlast the put; each node's sweeper, which
    # forgets the marks of dropped versions, wakes every quarter lease.
    ch.nodes.command("lease 1s")
    val = os.urandom(3 * CS)
    w.put_chunks([(i, memoryview(val)[(i - 1) * CS:i * CS]) for i in (1, 2, 3)])
    w.commit(wire.Manifest(w.ver, 3 * CS, CS, 3))
    assert bytes(job.get(key)) == val
    ch.nodes.command("lease 20ms")  # the drop marks run out quickly
    send = job._send_version

    def hooked(addr, op, ver):
        if addr == ch.b and op == wire.OP_DROP_VERSION and not ch.fired:
            assert not ch.holds(ch.a, wire.chunk_key(key, ver, 1)), "A was not asked before B"
            ch.move_away(lease_wait=1.0)  # the sweeper's last long sleep, then 25 leases
        return send(addr, op, ver)
    job._send_version = hooked
    job.delete(key)
    ch.check_moved()
    assert ch.nodes.values() == 0, f"chunk 3 left on A: {ch.holds(ch.a, wire.chunk_key(key, w.ver, 3))}"


def _three_keys(ch: Change) -> list[bytes]:
    """Keys under dir/ at A, at B, and at C while C joins, C's going to A
    once C leaves; sorted."""
    keys: dict[str, bytes] = {}
    for i in range(10000):
        k = b"dir/%03d" % i
        o = ch.owner(ch.all, k)
        if o == ch.c and ch.owner(ch.ab, k) != ch.a:
            continue
        keys.setdefault(o, k)
        if len(keys) == 3:
            break
    assert len(keys) == 3
    return [keys[ch.a], keys[ch.b], keys[ch.c]]


def test_remove_all_spans_map_change(change):
    """remove_all empties A and B, then C; between A and B, C leaves and
    moves its value to A. Before: the value was still readable after
    remove_all returned."""
    ch, job = change, change.job
    keys = _three_keys(ch)
    for i, k in enumerate(keys):
        job.put(k, b"value %d" % i)
    send = job._send_patient

    def hooked(addr, op, flags, meta, payload=None, dst=None):
        if addr == ch.b and op == wire.OP_DELETE and flags & wire.FLAG_PREFIX and not ch.fired:
            assert wait_for(lambda: not ch.holds(ch.a, keys[0]), 5), "the prefix delete did not reach A"
            ch.move_away()
        return send(addr, op, flags, meta, payload, dst)
    job._send_patient = hooked
    job.remove_all("dir")
    ch.check_moved()
    with pytest.raises(pocket.NotFound):
        job.get(keys[2])
    assert ch.nodes.values() == 0


@pytest.mark.parametrize("call", ["list", "count_files"])
def test_listing_spans_map_change(change, call):
    """A listing lists A and B, then C; just before C, C leaves and moves
    its value to A. A listing that completes names every key that existed
    throughout, once. Before: it missed the moved one."""
    ch, job = change, change.job
    keys = sorted(_three_keys(ch))
    for i, k in enumerate(keys):
        job.put(k, b"value %d" % i)
    list_node = job._list_node

    def hooked(st, addr, prefix, delim):
        if addr == ch.c and not ch.fired:
            ch.move_away()
        return list_node(st, addr, prefix, delim)
    job._list_node = hooked
    if call == "list":
        got = [e.name for e in job.list("dir/")]
        assert got == [k.decode() for k in keys]
    else:
        assert job.count_files("dir") == 3
    ch.check_moved()


def test_manifest_put_again_keeps_its_chunks(change):
    """A manifest put that reaches its node twice (here committed twice;
    _do no longer sends one again after a lost connection: test_resend.py)
    is told its own version was replaced: the writer must not drop its own
    chunks. Before, it did, and the value read as corrupt."""
    job = change.job
    job._st = pclient._MapState(change.m2)  # any map: no change here
    val = os.urandom(3 * CS + 100)
    w = pclient._ObjectWrite(job, b"obj", 0)
    w.put_chunks([(i, memoryview(val)[(i - 1) * CS:i * CS]) for i in range(1, 5)])
    m = wire.Manifest(w.ver, len(val), CS, 4)
    for _ in range(2):
        w.commit(m)
    assert bytes(job.get("obj")) == val
    job.delete("obj")
    assert change.nodes.values() == 0
