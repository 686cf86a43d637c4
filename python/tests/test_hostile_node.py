"""The Python SDK facing a hostile or broken storage node (faked on
loopback): the cases of the Go SDK's pocket/hostile_node_test.go and
client/hostile_reply_test.go, from a hostile trial. Each test prints its
measured figures (run with -s to see them)."""

from __future__ import annotations

import os
import resource
import socket
import struct
import threading
import time

import flatbuffers
import pytest

from pocket import errors, wire
from pocket.client import Client, Job
from pocket.fb import Request as fbRequest
from pocket.fb import Response as fbResponse

_HDR = struct.Struct("<2sBBHHQII")


def _listen() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


def _recv_exact(c, n):
    b = bytearray()
    while len(b) < n:
        got = c.recv(min(n - len(b), 1 << 20))
        if not got:
            raise OSError("closed")
        b += got
    return bytes(b)


def response(size=0, message="", count=0, version=0) -> bytes:
    b = flatbuffers.Builder(64)
    msg = b.CreateString(message) if message else 0
    fbResponse.ResponseStart(b)
    if msg:
        fbResponse.ResponseAddMessage(b, msg)
    fbResponse.ResponseAddVersion(b, version)
    fbResponse.ResponseAddSize(b, size)
    fbResponse.ResponseAddCapacity(b, size)
    fbResponse.ResponseAddCount(b, count)
    b.Finish(fbResponse.ResponseEnd(b))
    return bytes(b.Output())


class Node:
    """Answers each request with answer(op, rid, key) -> bytes to send
    (None: nothing; the string "close": close the connection)."""

    def __init__(self, answer, read=True):
        self.ln = _listen()
        self.addr = "127.0.0.1:%d" % self.ln.getsockname()[1]
        self.answer, self.read = answer, read
        self.conns = []
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            while True:
                c, _ = self.ln.accept()
                self.conns.append(c)
                threading.Thread(target=self._conn, args=(c,), daemon=True).start()
        except OSError:
            return

    def _conn(self, c):
        try:
            if not self.read:
                self.stop.wait(30)
                return
            while True:
                _, _, op, flags, _, rid, mlen, plen = _HDR.unpack(_recv_exact(c, 24))
                meta = _recv_exact(c, mlen) if mlen else b""
                if plen:
                    _recv_exact(c, plen)
                key = b""
                if meta:
                    k = fbRequest.Request.GetRootAs(meta, 0).Key()
                    key = k or b""
                out = self.answer(op, rid, key)
                close = isinstance(out, tuple)
                if close:
                    out = out[0]
                if out:
                    c.sendall(out)
                if close:
                    c.close()
                    return
        except OSError:
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.ln.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def frame(op, rid, code=0, flags=0, meta=b"", payload=b"", mlen=None, plen=None):
    return wire.pack_header(op | wire.REPLY_BIT, flags, rid, len(meta) if mlen is None else mlen,
                            len(payload) if plen is None else plen, code) + meta + payload


def _job(addr, timeout=2.0):
    cl = Client("127.0.0.1:1", insecure=True, timeout=timeout)
    m = wire.PlacementMap(job="hostile-1", tier=0, epoch=1, nodes=[wire.MapNode(addr, 1.0)], token=b"t" * 32)
    return Job(cl, m)


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _measure(fn):
    rss0 = _rss_kib()
    t0 = time.monotonic()
    try:
        out, err = fn(), None
    except BaseException as e:  # noqa: BLE001 -- we report whatever it is
        out, err = None, e
    return out, err, time.monotonic() - t0, _rss_kib() - rss0


def _report(name, out, err, took, rss):
    print(f"\n[hostile] {name}: {took:.3f} s, RSS {rss:+d} KiB, "
          f"{'-> ' + type(err).__name__ + ': ' + str(err)[:200] if err else 'returned ' + repr(out)[:80]}")


def _manifest_node(m: wire.Manifest, usage: int = 0, chunk=None):
    gets = [0]

    def answer(op, rid, key):
        if op == wire.OP_USAGE:
            return frame(op, rid, meta=response(size=usage))
        if op != wire.OP_GET:
            return frame(op, rid, code=5)
        if not wire.is_chunk_key(key):
            return frame(op, rid, flags=wire.FLAG_MANIFEST, payload=m.encode())
        gets[0] += 1
        if chunk is not None:
            return chunk(op, rid, key)
        return frame(op, rid, code=5, meta=response(message="no chunk"))

    return Node(answer), gets


def test_manifest_absurd_count():
    """A manifest of 4 MiB in 4 Mi chunks of one byte, every chunk "not
    found": the get fails soon, holding little. Before, every chunk's entry
    was built first: 56 s and +1.5 GiB of RSS (and the same manifest at
    256 MiB, the size trusted without a usage check, 64 times as many)."""
    size = 4 << 20
    node, gets = _manifest_node(wire.Manifest(0x1234, size, 1, size))
    job = _job(node.addr)
    try:
        out, err, took, rss = _measure(lambda: job.get("k"))
        _report(f"manifest of {size} one-byte chunks", None, err, took, rss)
        print(f"[hostile]   chunk gets sent: {gets[0]}")
        assert isinstance(err, errors.PocketError)
        assert took < 5, f"took {took:.1f} s"
        assert rss < 256 << 10, f"RSS +{rss} KiB for a {size}-byte object"
    finally:
        job.client.close()
        node.close()


@pytest.mark.parametrize("size", [1 << 36, 1 << 50])
def test_manifest_huge_with_usage(size):
    """A manifest of 64 GiB (or 2^50 bytes) and a usage answer that the
    job holds as much: an SDK error (TooLarge), not MemoryError, OSError or
    OverflowError (before: a raw OSError, Errno 12)."""
    chunk = wire.MAX_PAYLOAD
    node, _ = _manifest_node(wire.Manifest(0x99, size, chunk, (size + chunk - 1) // chunk), usage=size)
    job = _job(node.addr)
    try:
        out, err, took, rss = _measure(lambda: job.get("k"))
        _report(f"manifest of {size} bytes, usage {size}", None, err, took, rss)
        assert isinstance(err, errors.PocketError), f"{type(err).__name__}: {err}"
    finally:
        job.client.close()
        node.close()


def test_chunk_too_long():
    """A 3-chunk object of 1 KiB chunks, chunk 1 answered with 1.5 KiB of
    0xEE: Corrupt, and the caller's buffer past chunk 1 is not written."""
    m = wire.Manifest(0x77, 3 << 10, 1 << 10, 3)

    def chunk(op, rid, key):
        i = int(key.rsplit(b"\0", 1)[1])
        return frame(op, rid, payload=(b"\xee" * 1536 if i == 1 else bytes([0x11 * i]) * 1024))

    node, _ = _manifest_node(m, chunk=chunk)
    job = _job(node.addr)
    try:
        buf = bytearray(b"\xaa" * 4096)
        out, err, took, rss = _measure(lambda: job.get_into("k", buf))
        _report("chunk 1 of 1.5 KiB", out, err, took, rss)
        print(f"[hostile]   0xEE bytes in the caller's buffer: {buf.count(0xEE)}")
        assert isinstance(err, errors.Corrupt)
        assert buf.count(0xEE) <= 1024
    finally:
        job.client.close()
        node.close()


def test_chunk_windows_whole(monkeypatch):
    """A chunked object read over several windows of chunks (_CHUNK_WINDOW
    3, 10 chunks of 1000 bytes and a last of 7) arrives whole and in order."""
    from pocket import client as pc
    monkeypatch.setattr(pc, "_CHUNK_WINDOW", 3)
    val = bytes((i * 7 + i // 251) & 0xFF for i in range(10 * 1000 + 7))
    m = wire.Manifest(0x55, len(val), 1000, 11)

    def chunk(op, rid, key):
        i = int(key.rsplit(b"\0", 1)[1])
        lo, hi = m.bounds(i)
        return frame(op, rid, payload=val[lo:hi])

    node, gets = _manifest_node(m, chunk=chunk)
    job = _job(node.addr)
    try:
        assert bytes(job.get("k")) == val
        buf = bytearray(20000)
        n = job.get_into("k", buf)
        assert bytes(buf[:n]) == val
        assert gets[0] == 22
    finally:
        job.client.close()
        node.close()


def test_reply_of_another_op_fails_the_connection():
    """A put's reply, with a payload, sent for a get (the request's id):
    Malformed, not the payload taken for the value (before: b'xyz'). The
    Go client's TestReplyOfAnotherOpFailsTheConn."""
    def answer(op, rid, key):
        return frame(wire.OP_PUT, rid, payload=b"xyz")
    node = Node(answer)
    job = _job(node.addr)
    try:
        out, err, took, rss = _measure(lambda: job.get("k"))
        _report("put reply to a get", out, err, took, rss)
        assert isinstance(err, errors.PocketError) and "opcode" in str(err), f"{out!r} {err!r}"
    finally:
        job.client.close()
        node.close()


@pytest.mark.parametrize("case", ["corrupt metadata", "unknown code", "corrupt metadata, ok code"])
def test_reply_content_errors_name_the_node(case):
    """A reply whose metadata is no Response flatbuffer (with an error
    code, or with ok to a call that reads the metadata), or whose code no
    version of the protocol has: the error names the node. Before:
    "malformed: ..." and "code 99: ..." alone. The Go client's
    TestReplyContentErrorsNameTheNode."""
    junk = b"\xff\xff\xff\x7f\x01\x02\x03\x04"

    def answer(op, rid, key):
        if case == "unknown code":
            return frame(op, rid, code=99, meta=response(message="who knows"))
        return frame(op, rid, code=0 if case.endswith("ok code") else 5, meta=junk)
    node = Node(answer)
    job = _job(node.addr)
    try:
        call = job.stat if case.endswith("ok code") else job.get
        out, err, took, rss = _measure(lambda: call("k"))
        _report(case, out, err, took, rss)
        assert isinstance(err, errors.PocketError) and node.addr in str(err), f"{out!r} {err!r}"
        if case == "unknown code":
            assert err.code == 99 and "unknown code 99" in str(err), err
        else:
            assert isinstance(err, errors.Malformed), err
    finally:
        job.client.close()
        node.close()


def test_get_of_a_key_that_keeps_changing_is_a_conflict():
    """Every read of the key answers the manifest of a new version, and
    every chunk get "not found", as a key that writers replace faster than
    it is read: the get gives up after its retries with Conflict, not
    Corrupt (a new user's readers of a 30 MiB key that two writers kept
    replacing read Corrupt 9 times in 726). The Go SDK's
    TestGetOfAKeyThatKeepsChangingIsAConflict."""
    reads = [0]

    def answer(op, rid, key):
        if op != wire.OP_GET:
            return frame(op, rid, code=5)
        if wire.is_chunk_key(key):
            return frame(op, rid, code=5, meta=response(message="key not found"))
        reads[0] += 1
        m = wire.Manifest(0x1000 + reads[0], 4 << 10, 1 << 10, 4)
        return frame(op, rid, flags=wire.FLAG_MANIFEST, payload=m.encode())

    node = Node(answer)
    job = _job(node.addr)
    try:
        with pytest.raises(errors.Conflict) as e:
            job.get("k")
        assert not isinstance(e.value, errors.Corrupt), e.value
        assert reads[0] > 1, reads[0]
    finally:
        job.client.close()
        node.close()


def test_get_file_reads_a_replaced_value_again(tmp_path):
    """The key's value is replaced while get_file reads it (the first read
    of the key answers version 1, whose chunks after the first are then
    gone; the stat after the missing chunk and later reads answer version
    2): get_file reads the key again, as get does, and dst gets version 2
    whole. Before, it raised Conflict (a new user's trial). The Go SDK's
    TestGetFileReadsAReplacedValueAgain."""
    reads = [0]

    def chunk(ver, i):
        return bytes([ver << 4 | i]) * 1024

    def answer(op, rid, key):
        if op == wire.OP_STAT:
            return frame(op, rid, flags=wire.FLAG_MANIFEST, meta=response(size=4096, version=2))
        if op != wire.OP_GET:
            return frame(op, rid, code=5)
        if wire.is_chunk_key(key):
            parts = key.split(b"\0")
            ver, i = int(parts[1], 16), int(parts[2])
            if ver == 1 and i > 1:
                return frame(op, rid, code=5, meta=response(message="key not found"))
            return frame(op, rid, payload=chunk(ver, i))
        reads[0] += 1
        m = wire.Manifest(1 if reads[0] == 1 else 2, 4096, 1024, 4)
        return frame(op, rid, flags=wire.FLAG_MANIFEST, payload=m.encode())

    node = Node(answer)
    job = _job(node.addr)
    try:
        dst = tmp_path / "out"
        job.get_file("k", dst)
        assert dst.read_bytes() == b"".join(chunk(2, i) for i in range(1, 5))
    finally:
        job.client.close()
        node.close()


def test_get_file_leaves_a_special_file_alone(tmp_path):
    """get_file to a FIFO (as a device or a socket) raises before reading
    anything and leaves it as it was; before, the download's rename
    replaced it with a regular file (a new user's trial replaced a device
    node). The Go SDK's TestGetFileLeavesASpecialFileAlone."""
    import stat as st
    node = Node(lambda op, rid, key: frame(op, rid, payload=b"value"))
    job = _job(node.addr)
    dst = tmp_path / "fifo"
    os.mkfifo(dst)
    try:
        with pytest.raises(OSError, match="not a regular file"):
            job.get_file("k", dst)
        assert st.S_ISFIFO(os.lstat(dst).st_mode)
    finally:
        job.client.close()
        node.close()
