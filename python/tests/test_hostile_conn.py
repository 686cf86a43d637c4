"""A hostile or stuck storage node, faked on loopback: the client's
default timeout ends a wait for a node that never replies, and a payload a
node claims but does not send is not allocated up front."""

from __future__ import annotations

import inspect
import socket
import struct
import threading
import time

import pytest

from pocket import buffer, conn, errors, wire
from pocket.client import Client, Job


class FakeNode:
    """A node on loopback that reads requests and answers each with
    ``reply(header bytes)`` (None: never answers). It stops when closed."""

    def __init__(self, reply=None):
        self.ln = socket.create_server(("127.0.0.1", 0))
        self.ln.settimeout(10)
        self.addr = "127.0.0.1:%d" % self.ln.getsockname()[1]
        self.reply = reply
        self.conns: list[socket.socket] = []
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        try:
            while True:
                c, _ = self.ln.accept()
                self.conns.append(c)
                threading.Thread(target=self._answer, args=(c,), daemon=True).start()
        except OSError:
            return

    def _answer(self, c):
        c.settimeout(10)
        try:
            while True:
                h = _recv_exact(c, wire.HEADER_LEN)
                hdr = _Req(*_REQ.unpack(h))
                _recv_exact(c, hdr.meta_len + hdr.payload_len)
                if self.reply is not None:
                    self.reply(c, hdr)
        except OSError:
            return
        finally:
            c.close()

    def close(self):
        self.ln.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


_REQ = struct.Struct("<2sBBHHQII")  # the frame header (wire/header.go)


class _Req:
    def __init__(self, magic, ver, op, flags, code, rid, meta_len, payload_len):
        self.op, self.id, self.meta_len, self.payload_len = op, rid, meta_len, payload_len


def _recv_exact(c, n):
    b = b""
    while len(b) < n:
        got = c.recv(n - len(b))
        if not got:
            raise OSError("closed")
        b += got
    return b


def _job(addr: str, timeout) -> Job:
    # No controller is dialled: the map names the fake node only.
    cl = Client("127.0.0.1:1", insecure=True, timeout=timeout)
    m = wire.PlacementMap(job="hostile-1", tier=0, epoch=1, nodes=[wire.MapNode(addr, 1.0)], token=b"t" * 32)
    return Job(cl, m)


def test_default_timeout_is_documented_and_settable():
    assert conn.DEFAULT_TIMEOUT == 60.0
    assert inspect.signature(Client).parameters["timeout"].default == conn.DEFAULT_TIMEOUT
    assert conn.Pool().timeout == conn.DEFAULT_TIMEOUT
    assert Client("127.0.0.1:1", insecure=True).pool.timeout == conn.DEFAULT_TIMEOUT
    assert Client("127.0.0.1:1", insecure=True, timeout=None).pool.timeout is None


def test_silent_node_times_out():
    node = FakeNode(reply=None)
    try:
        job = _job(node.addr, 0.5)
        start = time.monotonic()
        with pytest.raises(errors.Unavailable, match="timed out: no reply within 0.5 s"):
            job.get("k")
        assert time.monotonic() - start < 30  # not forever: about the 0.5 s timeout
        job.client.close()
    finally:
        node.close()


def _claims_64mib(c, hdr):
    # A reply claiming 64 MiB of payload, 10 bytes of it sent, then close.
    c.sendall(wire.pack_header(hdr.op | wire.REPLY_BIT, 0, hdr.id, 0, 64 << 20) + b"0123456789")
    c.close()


def test_claimed_payload_not_allocated_up_front(monkeypatch):
    asked: list[int] = []
    real = buffer.alloc

    def spy(n):
        asked.append(n)
        return real(n)

    monkeypatch.setattr(buffer, "alloc", spy)
    node = FakeNode(reply=_claims_64mib)
    try:
        job = _job(node.addr, 10)
        with pytest.raises(errors.Unavailable, match="connection closed"):
            job.get("k")
        job.client.close()
    finally:
        node.close()
    assert asked and max(asked) <= conn.RECV_STEP, asked


def test_growing_receive_keeps_every_byte(monkeypatch):
    size = 5 * conn.RECV_STEP + 123
    value = bytes(range(256)) * (size // 256) + bytes(size % 256)

    def whole(c, hdr):
        c.sendall(wire.pack_header(hdr.op | wire.REPLY_BIT, 0, hdr.id, 0, size) + value)

    asked: list[int] = []
    real = buffer.alloc
    monkeypatch.setattr(buffer, "alloc", lambda n: asked.append(n) or real(n))
    node = FakeNode(reply=whole)
    try:
        job = _job(node.addr, 10)
        got = job.get("k")
        job.client.close()
    finally:
        node.close()
    assert bytes(got) == value
    assert asked == [conn.RECV_STEP, 4 * conn.RECV_STEP, size]
