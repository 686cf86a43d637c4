"""Puts that span a node draining from the cluster and stopping, as the
autoscaler's scale-in does it: the controller drains a node of the job's
map, retires it once it has moved its values, and the node's process is
stopped at once (the Go helper's cluster, command "drain"). Writers loop
chunked puts, streams opened "wb" and one-record puts, and a reader loops
gets and listings (fan-outs), while two nodes of the job's map are drained
and stopped in turn. Every call must succeed and every key read back as
its last put, whole.

The unit tests below pin the rules: which lost connections leave a
request's outcome unknown, which requests are sent again then, and that a
stopped draining node makes the client wait for the map without it.

On the old code the cluster test fails: a put whose confirm, a stream whose chunks, or
a listing that met the stopped node (refused connection, or a pooled
connection it closed) while the job's map still named it draining raised
Unavailable: the map without the node is handed out only once the other
nodes have learned it, a heartbeat or two after the node stopped, and the
client did not wait for it.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time

import pytest

import pocket
from pocket import client as pclient
from pocket import conn, wire

from conftest import HelperCluster, wait_for

KiB = 1 << 10
CHUNK = 64 * KiB
SIZE = 12 * CHUNK - 100  # 12 chunks
SMALL = 3 * KiB
WRITERS, KEYS_PER = 3, 4
READ_KEYS = 16


@pytest.fixture
def retire_cluster(bins):
    # A dead node stays in the maps (a grace longer than the test): only
    # the drains change them.
    c = HelperCluster(bins["gohelper"], 5, "10m")
    yield c
    c.stop()


def value(key: str, seq: int, size: int) -> bytes:
    """Put number seq of key, size bytes: its bytes depend on both."""
    out = bytearray()
    block = 0
    while len(out) < size:
        out += hashlib.sha256(f"{key}#{seq}#{block}".encode()).digest()
        block += 1
    return bytes(out[:size])


def _put(job: pocket.Job, w: int, key: str, seq: int) -> None:
    """Writer w's put number seq: a stream, a chunked put or (the last
    writer) one record."""
    if w == WRITERS - 1:
        job.put(key, value(key, seq, SMALL))
    elif seq % 2:
        v = value(key, seq, SIZE)
        with job.open(key, "wb") as f:
            for i in range(0, len(v), 40 * KiB):
                f.write(v[i:i + 40 * KiB])
    else:
        job.put(key, value(key, seq, SIZE))


def test_puts_span_a_node_retired_and_stopped(retire_cluster):
    c = retire_cluster
    with pocket.Client(c.addr, insecure=True, chunk_size=CHUNK) as cl:
        job = cl.register_job("retire", peak_mbps=24000)
        assert len(job.map.nodes) >= 3, job.map
        reads = {f"r/{i}": value(f"r/{i}", 0, SIZE if i % 2 else SMALL) for i in range(READ_KEYS)}
        for k, v in reads.items():
            job.put(k, v)
        last: list[dict[str, int]] = [{} for _ in range(WRITERS)]
        failures: list[str] = []
        calls = [0]
        stop = threading.Event()
        lock = threading.Lock()

        def note(what: str, e: Exception) -> None:
            with lock:
                failures.append(f"{what}: {e!r}")

        def writer(w: int) -> None:
            seq = 0
            while not stop.is_set():
                key = f"w{w}/k{seq % KEYS_PER}"
                try:
                    _put(job, w, key, seq)
                    last[w][key] = seq
                except pocket.PocketError as e:
                    note(f"put {key} #{seq}", e)
                with lock:
                    calls[0] += 1
                seq += 1

        def reader() -> None:
            n = 0
            while not stop.is_set():
                key = f"r/{n % READ_KEYS}"
                try:
                    if bytes(job.get(key)) != reads[key]:
                        note(f"get {key}", ValueError("not the value put"))
                    if n % 4 == 0 and len(job.list("r/")) != READ_KEYS:
                        note("list r/", ValueError("not every key listed"))
                except pocket.PocketError as e:
                    note(f"get or list {key}", e)
                n += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        threads.append(threading.Thread(target=reader))
        for t in threads:
            t.start()
        drained: list[str] = []
        try:
            for _ in range(2):
                job.refresh()
                victim = next(n.addr for n in job.map.nodes if n.addr not in drained)
                with lock:
                    before = calls[0]
                c.command(f"drain {victim}")
                drained.append(victim)
                # Puts after the node stopped too, on the map that still
                # names it and the one without it.
                while True:
                    with lock:
                        if calls[0] > before + 4 * WRITERS:
                            break
                    stop.wait(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not failures, f"{len(failures)} failures in {calls[0]} puts: {failures[:5]}"
        job.refresh()
        assert not set(drained) & {n.addr for n in job.map.nodes}, job.map
        for w in range(WRITERS):
            for key, seq in last[w].items():
                got = job.get(key)
                want = value(key, seq, SMALL if w == WRITERS - 1 else SIZE)
                assert bytes(got) == want, f"{key}: {len(got)} bytes, want put #{seq} whole"
        for k, v in reads.items():
            assert bytes(job.get(k)) == v, k
        job.deregister()


# ---- the rules, without a cluster ----


class ClosingNode:
    """A node on loopback that reads each request whole and then closes the
    connection without answering, as a node stopped while the request was
    in flight. It stops when closed."""

    def __init__(self):
        self.ln = socket.create_server(("127.0.0.1", 0))
        self.addr = "127.0.0.1:%d" % self.ln.getsockname()[1]
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.ln.accept()
            except OSError:
                return
            with c:
                c.settimeout(10)
                try:
                    head = c.recv(wire.HEADER_LEN, socket.MSG_WAITALL)
                    meta_len, payload_len = struct.unpack_from("<II", head, 16)  # the frame header's lengths
                    c.recv(meta_len + payload_len, socket.MSG_WAITALL)
                    self.requests += 1
                except (OSError, struct.error):
                    pass

    def close(self):
        try:
            self.ln.shutdown(socket.SHUT_RDWR)  # wakes the accept, which holds the socket open
        except OSError:
            pass
        self.ln.close()


def test_a_lost_connection_says_whether_the_request_was_sent():
    node = ClosingNode()
    c = conn.NodeConn(node.addr, timeout=10)
    with pytest.raises(pocket.Unavailable) as e:
        c.roundtrip(wire.OP_GET, 0, b"meta")
    assert isinstance(e.value, conn.NodeUnavailable) and e.value.addr == node.addr
    assert e.value.sent, "the node read the request whole: its outcome is unknown"
    assert node.requests == 1
    node.close()
    with pytest.raises(conn.NodeUnavailable) as e:
        conn.NodeConn(node.addr, timeout=10)  # refused: nothing was sent
    assert not e.value.sent


def test_pool_redials_a_connection_the_node_closed():
    ln = socket.create_server(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % ln.getsockname()[1]
    pool = conn.Pool(10)
    try:
        first = pool.acquire(addr)
        peer, _ = ln.accept()
        pool.release(first)
        peer.close()  # the node stops while the connection is idle
        assert wait_for(first.closed_by_node, 5)
        second = pool.acquire(addr)
        assert second is not first and first.broken
        peer2, _ = ln.accept()
        pool.release(second)
        assert pool.acquire(addr) is second  # a live one is reused
        peer2.close()
    finally:
        pool.close()
        ln.close()


class StubController:
    """Hands out the map m for its first `times` fetches, then m's next
    epoch without its draining nodes (the map after their retirement)."""

    def __init__(self, m: wire.PlacementMap, times: int):
        self.m, self.times, self.calls = m, times, 0

    def get_map(self, job, token):
        self.calls += 1
        if self.calls <= self.times:
            return self.m
        nodes = [n for n in self.m.nodes if n.state != wire.NODE_DRAINING]
        return wire.PlacementMap(self.m.job, self.m.tier, self.m.epoch + 1, nodes, self.m.token)

    def close(self):
        pass


X, Y = "127.0.0.1:1", "127.0.0.1:2"  # X drains; neither is dialled


@pytest.fixture
def drain_job(monkeypatch):
    monkeypatch.delenv("POCKET_CONTROLLER", raising=False)
    monkeypatch.setattr(pclient.time, "sleep", lambda s: None)
    m = wire.PlacementMap("j-1", wire.TIER_DRAM, 5, [wire.MapNode(X, 1.0, wire.NODE_DRAINING),
                                                     wire.MapNode(Y, 1.0)], b"tok")
    with pocket.Client(insecure=True) as cl:
        cl.controller = StubController(m, 3)
        yield pclient.Job(cl, m)


def test_follow_sends_again_only_what_may_be_sent_twice(drain_job):
    job, ctl = drain_job, drain_job.client.controller
    used = job._st
    lost = conn.NodeUnavailable(X, "lost", sent=True)
    # The outcome is unknown: a delete, a get that deletes and a
    # conditional put are not sent again, and the controller is not asked.
    assert not job._follow([lost], used, wire.OP_DELETE, 0)
    assert not job._follow([lost], used, wire.OP_GET, wire.FLAG_DELETE_AFTER_READ)
    assert not job._follow([lost], used, wire.OP_PUT, wire.FLAG_IF_ABSENT)
    assert not job._follow([lost, pocket.NoSpace("full")], used, wire.OP_PUT, wire.FLAG_CHUNK)
    assert ctl.calls == 0
    # A chunk put may be sent twice; its draining node stopped: the map is
    # fetched until the one without the node is out.
    assert job._follow([lost], used, wire.OP_PUT, wire.FLAG_CHUNK)
    assert ctl.calls == 4 and job.map.epoch == 6 and [n.addr for n in job.map.nodes] == [Y]
    # With the map newer than the request's, a request that never reached
    # the node goes again at once, a delete included.
    refused = conn.NodeUnavailable(X, "refused", sent=False)
    assert job._follow([refused], used, wire.OP_DELETE, 0) and ctl.calls == 4


def test_follow_asks_rarely_about_an_active_node(drain_job):
    job, ctl = drain_job, drain_job.client.controller
    # Y is active in the map: it may be dead or gone, but the map was just
    # fetched, so the controller is not asked again (_REFRESH_GAP).
    assert not job._follow([conn.NodeUnavailable(Y, "refused", sent=False)], job._st, wire.OP_GET, 0)
    assert ctl.calls == 0
    job._st.fetched = time.monotonic() - 2 * pclient._REFRESH_GAP
    assert not job._follow([conn.NodeUnavailable(Y, "refused", sent=False)], job._st, wire.OP_GET, 0)
    assert ctl.calls == 1  # one fetch, the same epoch: not sent again
