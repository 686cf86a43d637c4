"""Slow peers (faked on loopback): a hostile trial's node dripped a reply
a byte every 1.5 s under a 2 s timeout, and a get never ended; its
controller answered the challenge, then dripped a reply claiming 4 MiB of
metadata a byte every 3 s (register_job: some 145 days). A reply's header
and metadata now have one deadline in all, and a node's payload a least
rate (conn.PAYLOAD_MIB per timeout)."""

from __future__ import annotations

import socket
import threading
import time

from pocket import errors, wire
from pocket.client import Client, Job
from pocket.control import Controller
from test_hostile_node import _HDR, Node, _recv_exact, frame, response
from test_hostile_paging import _bounded


def _job(addr, timeout):
    """A job on the one node addr; its controller refuses at once (no wait
    for it after the node's timeout)."""
    cl = Client("127.0.0.1:1", insecure=True, timeout=timeout, controller_wait=0)
    m = wire.PlacementMap(job="hostile-1", tier=0, epoch=1, nodes=[wire.MapNode(addr, 1.0)], token=b"t" * 32)
    return Job(cl, m)


class _Dripper(Node):
    """Answers each request with send(c, op, rid): the whole reply, slowly."""

    def __init__(self, send):
        self.send = send
        super().__init__(None)

    def _conn(self, c):
        try:
            while True:
                _, _, op, _, _, rid, mlen, plen = _HDR.unpack(_recv_exact(c, 24))
                _recv_exact(c, mlen + plen) if mlen + plen else None
                self.send(c, op, rid)
        except OSError:
            return


def _drip_bytes(c, b, each, pause):
    for i in range(0, len(b), each):
        if i:
            time.sleep(pause)
        c.sendall(b[i:i + each])


def test_node_drips_header():
    n = _Dripper(lambda c, op, rid: _drip_bytes(c, frame(op, rid, meta=response(size=40), payload=b"x" * 40), 1, 0.2))
    try:
        t0 = time.monotonic()
        err = _bounded(lambda: _job(n.addr, timeout=1.0).get("k"))
        took = time.monotonic() - t0
    finally:
        n.close()
    assert isinstance(err, errors.Unavailable), err
    assert "header and metadata" in str(err) and n.addr in str(err), err
    assert took < 3.0, took


def test_node_payload_below_least_rate():
    # 256 KiB at 8 KiB per 0.1 s (3.2 s) under a 0.5 s timeout: allowed
    # 0.5 s x (1 + 1/4) for the payload.
    body = b"y" * (256 << 10)
    n = _Dripper(lambda c, op, rid: _drip_bytes(c, frame(op, rid, meta=response(size=len(body)), payload=body),
                                                8 << 10, 0.1))
    try:
        t0 = time.monotonic()
        err = _bounded(lambda: _job(n.addr, timeout=0.5).get("k"))
        took = time.monotonic() - t0
    finally:
        n.close()
    assert isinstance(err, errors.Unavailable) and "payload" in str(err), err
    assert took < 2.0, took


def test_node_large_payload_fast():
    # A legitimate large reply at loopback speed is well within the rate.
    body = b"z" * (32 << 20)
    n = _Dripper(lambda c, op, rid: c.sendall(frame(op, rid, meta=response(size=len(body)), payload=body)))
    try:
        got = _job(n.addr, timeout=0.5).get("k")
    finally:
        n.close()
    assert len(got) == len(body)


class _FakeController:
    """Answers a challenge at once; any other request with a header that
    claims 4 MiB of metadata, then a byte of it each 0.2 s."""

    def __init__(self):
        self.ln = socket.create_server(("127.0.0.1", 0))
        self.addr = "127.0.0.1:%d" % self.ln.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            while True:
                c, _ = self.ln.accept()
                threading.Thread(target=self._conn, args=(c,), daemon=True).start()
        except OSError:
            return

    def _conn(self, c):
        try:
            while not self.stop.is_set():
                _, _, op, _, _, rid, mlen, _ = _HDR.unpack(_recv_exact(c, 24))
                _recv_exact(c, mlen) if mlen else None
                if op == wire.OP_CHALLENGE:
                    c.sendall(wire.pack_header(op | wire.REPLY_BIT, 0, rid, 0, 0, 0))
                    continue
                c.sendall(wire.pack_header(op | wire.REPLY_BIT, 0, rid, 4 << 20, 0, 0))
                while not self.stop.wait(0.2):
                    c.sendall(b"\0")
        except OSError:
            return
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.ln.close()


def _ctl_call(fn):
    f = _FakeController()
    try:
        t0 = time.monotonic()
        err = _bounded(lambda: fn(Controller(f.addr, None, timeout=1.0, wait=0)))
        return err, time.monotonic() - t0, f.addr
    finally:
        f.close()


def test_controller_drips_register_reply():
    err, took, addr = _ctl_call(lambda ctl: ctl.register_job("x"))
    assert isinstance(err, errors.OutcomeUnknown), err
    assert addr in str(err) and "metadata" in str(err) and "too slow" in str(err), err
    assert took < 3.0, took


def test_controller_drips_map_reply():
    err, took, addr = _ctl_call(lambda ctl: ctl.get_map("j-1", b"t" * 32))
    assert isinstance(err, errors.Unavailable), err
    assert addr in str(err) and "metadata" in str(err), err
    assert took < 3.0, took
