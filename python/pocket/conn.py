"""Data-plane connections: one socket to one storage node, and a pool of
them per node.

A connection is used by one caller at a time (the pool hands it out and
takes it back), so callers never share a reply stream: one caller's error
or timeout closes its own connection only. Requests may be pipelined on a
connection (``send`` several, then ``recv``); replies are matched by
request id.

Buffer lifetimes: ``recv`` reads a reply's payload straight into the
caller's buffer (``recv_into`` on a memoryview) when the caller gives one
that fits, so bulk bytes are not copied in user space; otherwise it returns
bytes the caller owns (a memoryview from ``buffer.alloc`` when
``buffer.MAP_MIN`` bytes or more). Payloads are sent with ``sendmsg`` from the caller's
memoryview, never joined into a new buffer.

Bounds: a payload with no caller's buffer is received into buffers that
grow as its bytes arrive (``RECV_STEP`` first, then four times larger),
so a node that claims a large payload and sends little makes the client
allocate little. A reply's header and metadata must arrive within the
connection's timeout (``DEFAULT_TIMEOUT``, 60 s, unless given; None
waits forever) in all, and its payload of n bytes within the timeout
again plus one timeout per ``PAYLOAD_MIB`` (1 MiB) of it: at least 1 MiB
per timeout. A hostile trial's node dripped a reply a byte every 1.5 s
under a 2 s timeout (then a bound on each read), and a get never ended. A
node slower than that raises ``errors.Unavailable`` saying what was slow,
and the connection is closed. Writes wait at most the timeout each.

Owed replies: a request written whole whose reply did not begin within
the timeout (``roundtrip``) leaves its connection open, out of the pool,
on the error (``NodeUnavailable.conn``, its ``owed`` request id): the node
may still execute the request, and a caller that must not be overtaken by
it (a put or delete of the same key: ``Job``'s fences in client.py) first
reads that reply (``settle``), then closes the connection. A put or delete
interrupted (KeyboardInterrupt, a signal handler's exception) before its
reply began does the same, the connection riding on the exception
(``pocket_owed_conn``), shut for writing first when its frame was being
written (``_interrupted``).

Outcomes: a connection that fails raises ``NodeUnavailable`` (an
``errors.Unavailable``) naming the node and saying whether the request
may have reached it. It did not when the connection could not be made
(refused, no route) or failed while the request was being written (a
node executes only whole frames, and the connection is closed at once);
it may have when the connection failed after that, before the reply
came. A pooled connection the node has closed (a node stopped or
restarted while the connection sat idle) is noticed before it is handed
out, once the node's close has arrived, and a new one is dialled instead,
so a request is not written to it. On a pipelined connection ``sent``
speaks of the request whose call raised; those written before it may
have reached the node.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable

from . import buffer, errors, wire

_RBUF = 256 << 10
_HDR = struct.Struct("<2sBBHHQII")
_SMALL_SEND = 16 << 10
DEFAULT_TIMEOUT = 60.0  # seconds a socket operation waits for a node
# SILENCE is the least a fence waits for the reply a connection owes
# (NodeConn.settle), in seconds: the Go client's DefaultSilence
# (client/silence.go), after which it gives a silent node's call up.
SILENCE = 30.0
RECV_STEP = 1 << 20  # the first buffer of a payload received with no destination
PAYLOAD_MIB = 1 << 20  # a payload may take one more timeout per this many bytes


# The text of errors.Closed for a call on a closed Client.
CLOSED_TEXT = "client closed: Client.close() was called (or its with block ended); open a new pocket.Client"


class _ClosedByNode(ConnectionError):
    """The node closed the connection (a read returned no bytes)."""


class _Slow(TimeoutError):
    """A reply's part did not arrive by its deadline (NodeConn._arm); the
    message says which part and how much of it came."""


def _own(e: OSError) -> bool:
    """Whether e, an OSError out of a socket call, is the socket's own: an
    error with an errno, the socket's timeout ("timed out") or the node's
    close; otherwise a signal handler raised it during the call (an
    application's TimeoutError, say), and it is an interrupt
    (NodeConn._interrupted), not a verdict on the connection. Before, such
    an error in a put's send was taken for a frame not written whole: the
    connection was closed, the put called not sent, and the next put of
    the key could be overtaken (a review's trial: 1 round in 3)."""
    return e.errno is not None or e.args == ("timed out",) or isinstance(e, (_ClosedByNode, _Slow))


def fenced(op: int, flags: int) -> bool:
    """Whether a request of one key (op, flags) must not be overtaken by
    the next such request of the key when it times out (client.py's
    fences): a put of a value or manifest (not a chunk's: a name of the
    writer's own version), a delete of one key, a get that deletes what it
    read. Only such a request's connection is kept owing its reply."""
    if op == wire.OP_PUT:
        return not flags & wire.FLAG_CHUNK
    if op == wire.OP_DELETE:
        return not flags & wire.FLAG_PREFIX
    return op == wire.OP_GET and bool(flags & wire.FLAG_DELETE_AFTER_READ)


class Reply:
    """One reply: header flags, code, metadata bytes and payload (bytes, a
    memoryview of the caller's buffer it was read into, or for a large
    payload with no such buffer a memoryview from ``buffer.alloc``), and
    the address of the node that sent it ("" when made up locally).
    ``note``, when not empty, is what the client did about an error reply,
    added to its error's message (error)."""

    __slots__ = ("id", "flags", "code", "meta", "payload", "node", "note")

    def __init__(self, rid: int, flags: int, code: int, meta: bytes, payload, node: str = ""):
        self.id, self.flags, self.code, self.meta, self.payload = rid, flags, code, meta, payload
        self.node = node
        self.note = ""

    def check(self) -> "Reply":
        """Raises the reply's error when its code is not 0. Metadata that
        does not decode, or a code no version of the protocol has, raises
        an error naming the node (errors.Malformed, or the code's)."""
        if self.code:
            raise self.error()
        return self

    def error(self) -> errors.PocketError:
        """The exception of an error reply (code not 0): its code's, with
        its message and epoch; see check."""
        try:
            r = self.response()
        except errors.PocketError as e:
            return e
        msg = r.message
        try:
            errors.Code(self.code)
        except ValueError:
            msg = f"node {self.node} answered request {self.id} with unknown code {self.code}: {msg}"
        return errors.error_for(self.code, msg + self.note, r.epoch)

    def response(self) -> wire.Response:
        """The reply's decoded Response table; errors.Malformed, naming
        the node, when it does not decode."""
        try:
            return wire.decode_response(self.meta)
        except errors.PocketError as e:
            raise errors.Malformed(f"node {self.node}: reply to request {self.id}: {e.message}") from None


class NodeUnavailable(errors.Unavailable):
    """A node could not be reached: ``addr`` is the node, and ``sent`` is
    False when the request certainly did not reach it (the connection
    could not be made, or failed while the request was being written) and
    True when it may have (the connection failed after that, or timed
    out, before the reply came): then whether the node executed it is
    unknown. ``refused`` is True when the node's host refused the
    connection: nothing listens at the address, so the node is not
    running there (the Go client's Refused). ``lost`` is True when the
    node closed or reset an open connection, while the request was being
    written or after (not a timeout, not a failed dial): the node was there
    a moment before, and a read may go again on another connection
    (Job._send_once)."""

    def __init__(self, addr: str, message: str, sent: bool, refused: bool = False, lost: bool = False):
        super().__init__(message)
        self.addr = addr
        self.sent = sent
        self.refused = refused
        self.lost = lost
        # conn: the connection left open for a reply still owed (a request
        # that timed out before its reply began: NodeConn.owed), or None.
        self.conn: NodeConn | None = None


class NodeConn:
    """One connection to a storage node (plain TCP, as the data plane is)."""

    def __init__(self, addr: str, timeout: float | None = DEFAULT_TIMEOUT, connect_timeout: float = 5.0):
        host, _, port = addr.rpartition(":")
        self.addr = addr
        try:
            self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=connect_timeout)
        except OSError as e:
            raise NodeUnavailable(addr, f"node {addr}: {e}", sent=False,
                                  refused=isinstance(e, ConnectionRefusedError)) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self._rbuf = bytearray(_RBUF)
        self._rview = memoryview(self._rbuf)
        self._r0 = 0  # first unread buffered byte
        self._r1 = 0  # end of buffered bytes
        self._next = 0
        self.used = time.monotonic()
        self.broken = False
        self.owed = 0  # a request whose reply timed out before it began (roundtrip), kept for settle
        self.owed_at = 0.0  # when it began to owe that reply (time.monotonic)
        # _awaiting: the request whose frame is being written, or was, and
        # of whose reply no byte has come (0: none); what an interrupted
        # call leaves owing (_interrupted). _writing: its frame may not be
        # written whole yet.
        self._awaiting = 0
        self._writing = False
        # _mark: where in _rbuf the first byte of the awaited reply lands
        # (-1: no read of it under way), zeroed before the read. A reply
        # begins with wire.MAGIC, so a non-zero byte there says it began
        # even when an interrupt came after recv_into returned and before
        # _awaiting was cleared (_interrupted).
        self._mark = -1
        self._until: float | None = None  # the deadline of the reply part being read (_arm)
        self._what, self._part, self._t0 = "", 0, 0.0
        self._poll = select.poll()
        self._poll.register(self.sock, select.POLLIN)

    def closed_by_node(self) -> bool:
        """Whether an idle connection has something to read: the node
        closed it (end of file or reset), or sent bytes nobody asked for;
        either way it is no use. One poll that does not wait."""
        return bool(self._poll.poll(0))

    def close(self) -> None:
        self.broken = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _fail(self, e: BaseException, sent: bool = True, owed: int = 0) -> errors.PocketError:
        """Closes the connection and returns the error to raise for e: e
        itself when it is a PocketError (a malformed reply), else
        NodeUnavailable with sent (whether the request may have reached
        the node). A timeout before the reply to request owed (not 0)
        began leaves the connection open, owing that reply, on the error
        (NodeUnavailable.conn) instead."""
        if owed and isinstance(e, TimeoutError):
            self.broken, self.owed, self.owed_at = True, owed, time.monotonic()
            err = NodeUnavailable(self.addr, self._timed_out(e), True)
            err.conn = self
            return err
        self.close()
        if isinstance(e, errors.PocketError):
            return e
        if isinstance(e, TimeoutError):
            return NodeUnavailable(self.addr, self._timed_out(e), sent)
        # Lost: the node closed or reset the connection, while the request
        # was written or after (not a reply that failed to parse, which is
        # no loss of the node).
        return NodeUnavailable(self.addr, f"node {self.addr}: {e}", sent, lost=isinstance(e, ConnectionError))

    def _timed_out(self, e: TimeoutError) -> str:
        what = str(e) if isinstance(e, _Slow) else f"no reply within {self.timeout} s"
        return (f"node {self.addr}: timed out: {what} (the client's timeout; Client(timeout=...) sets it, "
                "None waits forever)")

    def _arm(self, wait: float | None, what: str, n: int) -> None:
        """Starts the deadline of one part of a reply (what, n bytes):
        wait seconds from now (None: no deadline)."""
        self._until = None if wait is None else time.monotonic() + wait
        self._what, self._part, self._t0 = what, n, time.monotonic()

    def _slow(self) -> "_Slow":
        rate = " (at least 1 MiB per timeout, after one timeout)" if self._what == "payload" else ""
        return _Slow(f"the reply's {self._what} ({self._part} bytes) did not arrive within "
                     f"{time.monotonic() - self._t0:.1f} s{rate}")

    def _recv_into(self, view: memoryview) -> int:
        """One read, waiting at most until the armed deadline (_arm); past
        it raises _Slow naming the part that was slow."""
        if self._until is not None:
            left = self._until - time.monotonic()
            if left <= 0:
                raise self._slow()
            self.sock.settimeout(left)
        try:
            return self.sock.recv_into(view)
        except socket.timeout:
            if self._until is None:
                raise
            raise self._slow() from None

    def send(self, op: int, flags: int, meta: bytes, payload=None) -> int:
        """Writes one request frame and returns its request id."""
        self._next += 1
        rid = self._next
        n = len(payload) if payload is not None else 0
        if n > wire.MAX_PAYLOAD:
            raise errors.TooLarge(f"payload of {n} bytes over the frame limit of {wire.MAX_PAYLOAD}")
        head = wire.pack_header(op, flags, rid, len(meta), n) + meta
        self._awaiting, self._writing = rid, True
        try:
            if n == 0:
                self.sock.sendall(head)
            elif n <= _SMALL_SEND:
                self.sock.sendall(head + bytes(payload))
            else:
                self._sendmsg(head, memoryview(payload).cast("B"))
        except OSError as e:
            if not _own(e):
                self._interrupted(e, rid if fenced(op, flags) else 0)
                raise
            raise self._fail(e, sent=False) from None  # a frame not written whole is never executed
        except BaseException as e:
            # KeyboardInterrupt, a signal handler's timeout...: the frame may
            # be half written, and the next request on this connection would
            # complete it (a torn value stored). Never reuse it.
            self._interrupted(e, rid if fenced(op, flags) else 0)
            raise
        self._writing = False
        self.used = time.monotonic()
        return rid

    def _sendmsg(self, head: bytes, body: memoryview) -> None:
        sent = self.sock.sendmsg([head, body])
        while sent < len(head):
            sent += self.sock.sendmsg([head[sent:], body])
        off = sent - len(head)
        while off < len(body):
            off += self.sock.send(body[off:])

    def _fill(self, n: int) -> None:
        """Buffers at least n unread bytes (n <= the buffer's size)."""
        if self._r1 - self._r0 >= n:
            return
        if self._r0:
            k = self._r1 - self._r0
            self._rview[:k] = self._rview[self._r0:self._r1]
            self._r0, self._r1 = 0, k
        while self._r1 < n:
            if self._awaiting and self._r0 == self._r1:
                self._rbuf[self._r1] = 0
                self._mark = self._r1
            got = self._recv_into(self._rview[self._r1:])
            if got == 0:
                raise _ClosedByNode("connection closed by the node")
            self._r1 += got
            self._awaiting, self._mark = 0, -1

    def _take(self, n: int) -> bytes:
        self._fill(n)
        b = bytes(self._rview[self._r0:self._r0 + n])
        self._r0 += n
        return b

    def _read_into(self, dst: memoryview) -> None:
        """Fills dst: first from the buffer, then straight from the socket."""
        k = min(len(dst), self._r1 - self._r0)
        if k:
            dst[:k] = self._rview[self._r0:self._r0 + k]
            self._r0 += k
        while k < len(dst):
            got = self._recv_into(dst[k:])
            if got == 0:
                raise _ClosedByNode("connection closed by the node")
            k += got
            self._awaiting = 0

    def _read_growing(self, n: int) -> memoryview:
        """Reads an n-byte payload into a buffer.alloc buffer, allocated in
        steps as the bytes arrive: RECV_STEP bytes, then four times what
        came, so a node that claims n and sends less costs at most about
        four times what it sent (and RECV_STEP)."""
        buf = buffer.alloc(min(n, RECV_STEP))
        self._read_into(buf)
        while len(buf) < n:
            have = len(buf)
            bigger = buffer.alloc(min(n, 4 * have))
            bigger[:have] = buf
            buf = bigger
            self._read_into(buf[have:])
        return buf

    def recv(self, dst: Callable[[int, int], memoryview | None] | memoryview | None = None, owed: int = 0,
             expect: int = 0, wait: float | None | bool = True) -> Reply:
        """Reads the next reply. dst is where a payload goes: a memoryview
        (used when the payload fits it; the reply's payload is then its
        first bytes), or a function of (request id, payload length)
        returning such a view or None. Otherwise the payload is returned as
        bytes, or from buffer.MAP_MIN bytes as a memoryview of a fresh
        buffer.alloc buffer. owed: see _fail (a timeout before any byte of
        the reply was taken keeps the connection). expect, when not 0, is
        the reply opcode the request's answer must carry: another fails
        the connection, Malformed, before its payload is read (before, a
        put's reply sent for a get gave its payload as the value, a
        hostile trial; the Go client's readFrame does the same). wait:
        the seconds the header and metadata may take in all (True: the
        timeout); see the module's Bounds for the payload's."""
        self._arm(self.timeout if wait is True else wait, "header and metadata", wire.HEADER_LEN)
        try:
            return self._recv(dst, owed, expect)
        finally:
            self._until = None
            if not self.broken or self.owed:
                try:
                    self.sock.settimeout(self.timeout)
                except OSError:
                    pass

    def _recv(self, dst, owed: int, expect: int) -> Reply:
        try:
            self._fill(wire.HEADER_LEN)
        except OSError as e:
            if not _own(e):
                self._interrupted(e, owed)
                raise
            raise self._fail(e, owed=owed) from None
        except BaseException as e:
            self._interrupted(e, owed)  # a reply still owed, or half read: the stream is out of step
            raise
        try:
            h = wire.parse_header(self._rview[self._r0:self._r0 + wire.HEADER_LEN])
            if expect and h.op != expect:
                raise errors.Malformed(f"reply opcode {h.op:#x} to request {h.id}, want {expect:#x}")
            self._r0 += wire.HEADER_LEN
            self._part += h.meta_len
            meta = self._take(h.meta_len) if h.meta_len else b""
            n = h.payload_len
            if n and self.timeout is not None:
                self._arm(self.timeout * (1 + n / PAYLOAD_MIB), "payload", n)
            view = dst(h.id, n) if callable(dst) else dst
            if view is not None and n <= len(view):
                payload = view[:n]
                self._read_into(payload)
            elif n < buffer.MAP_MIN and (n <= self._r1 - self._r0 or n <= 4096):
                payload = self._take(n) if n else b""
            elif n <= self._r1 - self._r0:
                # From MAP_MIN a payload is a writable buffer.alloc view,
                # also when it is already read: before, such a payload was
                # bytes or a view by how the socket's reads fell (a new
                # user's trial: get of one 200,000-byte value alternated).
                payload = buffer.alloc(n)
                self._read_into(payload)
            else:
                buf = self._read_growing(n)
                payload = bytes(buf) if n < buffer.MAP_MIN else buf
        except OSError as e:
            if not _own(e):
                self.close()  # half read: the stream is out of step
                raise
            raise self._fail(e) from None
        except (ValueError, errors.PocketError) as e:
            raise self._fail(e) from None
        except BaseException:
            self.close()
            raise
        return Reply(h.id, h.flags, h.code, meta, payload, self.addr)

    def roundtrip(self, op: int, flags: int, meta: bytes, payload=None, dst=None) -> Reply:
        """Sends one request and returns its reply.

        The fast path (a small request, nothing buffered, no destination
        buffer) writes the frame with one send and, when the whole reply
        arrives with the first recv, as a small reply does, parses it there.

        An exception that is not the connection's own error (a
        KeyboardInterrupt, a signal handler's timeout), wherever it comes,
        takes the connection out of use: a frame half written, or a reply
        left unread, would be taken by the next request on it as its own
        (test_interrupt.py). A fenced request (a put or delete) whose
        reply had not begun leaves it owing that reply (_interrupted)."""
        try:
            return self._exchange(op, flags, meta, payload, dst)
        except errors.PocketError as e:
            # The connection's own errors (_fail) have closed it or left it
            # owing; TooLarge is raised before anything is written. Any
            # other (a signal handler's) leaves a request in flight.
            if self.broken or not (self._writing or self._awaiting):
                raise
            self._interrupted(e, self._awaiting if fenced(op, flags) else 0)
            raise
        except BaseException as e:
            self._interrupted(e, self._awaiting if fenced(op, flags) else 0)
            raise

    def _exchange(self, op: int, flags: int, meta: bytes, payload, dst) -> Reply:
        n = 0 if payload is None else len(payload)
        if n > _SMALL_SEND or dst is not None or self._r0 != self._r1:
            return self._roundtrip(op, flags, meta, payload, dst)
        self._next += 1
        rid = self._next
        self._awaiting, self._writing = rid, True
        try:
            self.sock.sendall(b"".join((_HDR.pack(wire.MAGIC, wire.VERSION, op, flags, 0, rid, len(meta), n), meta,
                                        payload if n else b"")))
        except OSError as e:
            if not _own(e):
                raise  # roundtrip: an interrupt
            raise self._fail(e, sent=False) from None
        self._writing = False
        self._rbuf[0], self._mark = 0, 0
        sent_at = time.monotonic()
        try:
            got = self.sock.recv_into(self._rview)
        except OSError as e:
            if not _own(e):
                raise  # roundtrip: an interrupt
            raise self._fail(e, owed=rid if fenced(op, flags) else 0) from None
        if got == 0:
            raise self._fail(_ClosedByNode("connection closed by the node"))
        self._awaiting, self._mark = 0, -1
        self.used = time.monotonic()
        self._r0, self._r1 = 0, got
        if got >= wire.HEADER_LEN:
            magic, ver, rop, rflags, code, rrid, mlen, plen = _HDR.unpack_from(self._rbuf)
            end = wire.HEADER_LEN + mlen + plen
            if (got == end and rrid == rid and rop == op | wire.REPLY_BIT and magic == wire.MAGIC
                    and ver == wire.VERSION and mlen <= wire.MAX_META and plen < buffer.MAP_MIN):
                self._r1 = 0
                v = self._rview
                return Reply(rid, rflags, code, bytes(v[wire.HEADER_LEN:end - plen]) if mlen else b"",
                             bytes(v[end - plen:end]) if plen else b"", self.addr)
        # The rest of the header and metadata within what is left of the
        # timeout: a hostile trial's node dripped the rest a byte at a time.
        wait = None if self.timeout is None else max(self.timeout - (time.monotonic() - sent_at), 0.001)
        r = self.recv(None, owed=rid if fenced(op, flags) else 0, expect=op | wire.REPLY_BIT, wait=wait)
        if r.id != rid:
            raise self._fail(errors.Malformed(f"reply id {r.id} to request {rid}"))
        return r

    def _interrupted(self, e: BaseException, owed: int) -> None:
        """Takes the connection out of use after e, an exception that is
        not its own (a KeyboardInterrupt, a signal handler's), interrupted
        a call. When owed, a fenced request's id, is the request whose
        reply has not begun (_awaiting), the node may still execute it: the
        connection is left owing that reply, as after a timeout (_fail),
        and rides on e as e.pocket_owed_conn, for Job's fences. One
        interrupted while its frame was being written (_writing) is first
        shut for writing: a frame cut short ends there, and the node,
        reading up to that end, executes it whole or not at all and then
        closes the connection, so settle waits for that, not for SILENCE;
        a frame written whole just before the interrupt is answered first
        (the node answers what a connection owes before it closes it at
        the end of its input). Otherwise it is closed.
        Before, every interrupted call closed its connection, and a put
        written whole could be executed after the next put of its key (a
        CI run)."""
        if self.owed:
            return
        began = self._mark >= 0 and self._rbuf[self._mark] != 0
        if not owed or owed != self._awaiting or began:
            self.close()
            return
        try:
            if self._writing:
                self.sock.shutdown(socket.SHUT_WR)
            e.pocket_owed_conn = self
        except (OSError, AttributeError, TypeError):
            self.close()
            return
        self.broken, self.owed, self.owed_at = True, owed, time.monotonic()

    def settle(self, limit: float | None = None) -> bool | None:
        """Waits for the reply owed on a connection left open by a timeout
        (owed), discarding it, then closes the connection: from then on
        the request it answers, if the node ever executes it, has been
        executed. Any failure ends the wait too: a connection the node
        closed executes nothing more, and one silent for the larger of the
        timeout and SILENCE since it began to owe the reply is given up,
        as the Go SDK gives up a silent node's call (client/silence.go);
        with no timeout (None) it waits for ever. Returns False when it
        gave up (the request may still be executed), and None when limit
        seconds passed first, before any byte of the reply: the connection
        is left owing it, for the next wait."""
        wait = None
        if self.timeout is not None:
            wait = self.owed_at + max(self.timeout, SILENCE) - time.monotonic()
            if wait <= 0:
                # Silent past the bound already: given up without a read
                # (a timeout of 0 would make the socket non-blocking, and
                # its "would block" read as the node's close: a review saw
                # the next put sent, then the earlier one executed).
                self.close()
                return False
        if limit is not None and (wait is None or limit < wait):
            wait = max(limit, 0.001)
        else:
            limit = None  # the silence bound comes first: a timeout gives up
        end = None if wait is None else time.monotonic() + wait
        since = self.owed_at
        try:
            while self.recv(None, owed=self.owed if limit is not None else 0,
                            wait=None if end is None else max(end - time.monotonic(), 0.001)).id != self.owed:
                pass
        except NodeUnavailable as e:
            if limit is not None and getattr(e, "conn", None) is self:
                e.conn, self.owed_at = None, since  # silent since then still
                return None  # not yet: still owing, untouched
            # Closed by the node: nothing more lands. A reply that began
            # (bytes of it came before a timeout cut it) says the request
            # was executed: before, that was reported as given up ("it may
            # still execute it", a review).
            began = self._awaiting != self.owed
            self.close()
            return began or "timed out" not in str(e)
        except errors.PocketError:
            pass
        except BaseException:
            # Interrupted (KeyboardInterrupt, a signal handler's exception):
            # still owing the reply, the connection is left as it was, for
            # the next wait (Job's fences stay up). Once the reply began
            # (recv closed the connection mid-reply, or bytes of it came),
            # the request was executed: nothing is owed any more.
            if self._awaiting != self.owed or (self._mark >= 0 and self._rbuf[self._mark] != 0) \
                    or self.sock.fileno() < 0:
                self.owed = 0
                self.close()
            raise
        self.close()
        return True

    def _roundtrip(self, op: int, flags: int, meta: bytes, payload, dst) -> Reply:
        rid = self.send(op, flags, meta, payload)
        r = self.recv(dst, owed=rid if fenced(op, flags) else 0, expect=op | wire.REPLY_BIT)
        if r.id != rid:
            raise self._fail(errors.Malformed(f"reply id {r.id} to request {rid}"))
        return r


class Pool:
    """Idle connections to the nodes, by address. Safe for many threads:
    ``acquire`` hands a connection to one caller until ``release``.
    timeout bounds each reply in seconds (DEFAULT_TIMEOUT; None: wait
    forever; the module's Bounds)."""

    def __init__(self, timeout: float | None = DEFAULT_TIMEOUT, max_idle: float = 60.0, keep: int = 8):
        self.timeout = timeout
        self.max_idle = max_idle
        self.keep = keep
        self._idle: dict[str, list[NodeConn]] = {}
        self._lock = threading.Lock()
        self._closed = False
        # Connections that owe a reply (NodeConn.owed), held by fences:
        # closed with the pool, forgotten once their holder drops them.
        self._owed: weakref.WeakSet[NodeConn] = weakref.WeakSet()

    def acquire(self, addr: str) -> NodeConn:
        """An idle connection to addr, or a new one. A connection idle for
        longer than max_idle is redialled (the node may have closed it),
        and so is one the node has closed (NodeConn.closed_by_node): a
        request is never written to a connection known to be dead."""
        if self._closed:
            raise errors.Closed(CLOSED_TEXT)
        idle = self._idle.get(addr)
        while idle:
            try:
                c = idle.pop()
            except IndexError:
                break
            if time.monotonic() - c.used < self.max_idle and not c.closed_by_node():
                return c
            c.close()
        return NodeConn(addr, self.timeout)

    def release(self, c: NodeConn) -> None:
        """Takes a connection back; a broken one is dropped, but one that
        owes a reply (NodeConn.owed) is left to the error that carries it."""
        if c.owed:
            with self._lock:
                self._owed.add(c)
            if self._closed:
                c.close()
            return
        if c.broken or self._closed:
            c.close()
            return
        idle = self._idle.get(c.addr)
        if idle is None:
            with self._lock:
                idle = self._idle.setdefault(c.addr, [])
        if len(idle) < self.keep:
            idle.append(c)
        else:
            c.close()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            for idle in self._idle.values():
                while idle:
                    idle.pop().close()
            for c in list(self._owed):
                c.close()
