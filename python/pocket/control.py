"""The controller's client: register and deregister jobs, fetch maps.

Control frames are framed like data-plane ones and carry no payload; an
error reply carries the data-plane Response table. The controller is
reached over mutual TLS with the job-client certificate of the cluster CA
(``client.pem``, ``client-key.pem``, ``ca.pem`` in the directory ``pocket
up`` prints as POCKET_TLS_DIR; TLS 1.3), or over plain TCP for a cluster
started with ``--insecure``. One connection, dialled on first use and again
after a failure; calls are serialized over it (the control plane carries a
few messages per job, never data).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import threading
import time

from . import errors, wire

CLIENT_MEMBER = "client"  # the job client's certificate name (internal/pki Members)


def tls_context(tls_dir: str, member: str = CLIENT_MEMBER) -> ssl.SSLContext:
    """The mutual-TLS context of a job's client: the member's certificate
    and key from tls_dir (MEMBER.pem, MEMBER-key.pem), the cluster CA
    (ca.pem) to verify the controller by, TLS 1.3 only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    files = ("ca.pem", member + ".pem", member + "-key.pem")
    missing = [f for f in files if not os.path.isfile(os.path.join(tls_dir, f))]
    if missing:
        # As the Go CLI says it; before, a directory with the CA alone
        # raised a bare "[Errno 2]" as a bad token (a new user's trial).
        raise errors.PocketError(
            f"TLS directory {tls_dir} holds no {' or '.join(missing)} (a job client needs {', '.join(files)}): "
            "give the cluster's TLS directory (the one pocket up printed), or certificates pocket cert issue "
            "made from its CA", errors.Code.UNSUPPORTED)
    try:
        ctx.load_verify_locations(os.path.join(tls_dir, files[0]))
        ctx.load_cert_chain(os.path.join(tls_dir, files[1]), os.path.join(tls_dir, files[2]))
    except (OSError, ssl.SSLError) as e:
        raise errors.PocketError(f"TLS directory {tls_dir}: {e}", errors.Code.UNSUPPORTED) from None
    return ctx


def default_tls_dir() -> str | None:
    """The TLS directory the Go CLI uses when none is given:
    $POCKET_TLS_DIR, else DATA/tls when it holds a CA (ca.pem), DATA being
    $POCKET_DATA_DIR, else ~/.pocket (where ``pocket up`` keeps it); None
    when neither applies (plain TCP)."""
    d = os.environ.get("POCKET_TLS_DIR")
    if d:
        return d
    data = os.environ.get("POCKET_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".pocket")
    d = os.path.join(data, "tls")
    return d if os.path.isfile(os.path.join(d, "ca.pem")) else None


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def insecure_from_env() -> bool:
    """Whether $POCKET_INSECURE asks for plain TCP to the controller (the
    words of Go's strconv.ParseBool; unset or empty: no), as the CLI's
    --insecure (pki.InsecureFromEnv); ``pocket up --insecure`` prints it.
    Raises ValueError for a word it does not know, or with $POCKET_TLS_DIR
    set beside it."""
    v = os.environ.get("POCKET_INSECURE", "")
    if not v or v in _FALSE:
        return False
    if v not in _TRUE:
        raise ValueError(f"$POCKET_INSECURE={v!r}: want 1 or true (plain TCP), or 0 or false")
    if os.environ.get("POCKET_TLS_DIR"):
        raise ValueError("$POCKET_INSECURE and $POCKET_TLS_DIR are both set: unset one, or give Client(tls_dir=...) "
                         "or Client(insecure=True)")
    return True


NO_LEADER_HINT = ("no active controller yet (election in progress); retry, or list every controller in "
                  "POCKET_CONTROLLER=a,b,c")

# How many "not leader" answers naming another controller one call follows.
_MAX_REDIRECTS = 3

# How long a call waits for a controller that is away (refusing or losing
# connections before the request went out, or answering that no leader is
# elected) by default, and its pauses: 50 ms doubling to 1 s. The Go
# metaclient's retries (metaclient.go, "Retries while the controller is
# away") for a call whose context has no deadline (its CallTimeout, 15 s).
DEFAULT_WAIT = 15.0
_AWAY_PAUSE = 0.05
_AWAY_PAUSE_MAX = 1.0


class _Away(errors.Unavailable):
    """The controller could not be reached, and sending the call again is
    safe: nothing of its request was written (sent False), or it is
    idempotent. Callers see it as errors.Unavailable (Controller.call)."""

    def __init__(self, message: str, sent: bool):
        super().__init__(message)
        self.sent = sent

    def public(self, waited: float) -> errors.Unavailable:
        """The Unavailable the caller gets after waiting waited seconds,
        saying how long and whether the request reached the controller."""
        why = "a map fetch, safe to send again" if self.sent else \
            "the request was not sent: the controller did not act on it"
        if waited > 0:
            why = f"waited {waited:.1f} s for the controller; {why}"
        return errors.Unavailable(f"{self.message} ({why})")

# The ops that do the same sent twice as once (the Go metaclient's
# idempotent): only these are sent again after their request was written.
_IDEMPOTENT = frozenset({wire.OP_GET_MAP})

# What the controller may have done with a request whose outcome is unknown.
_OUTCOME_HINT = {
    wire.OP_REGISTER_JOB: "the controller may have registered the job; check pocket status",
    wire.OP_DEREGISTER_JOB: "the controller may have deregistered the job; check pocket status",
}


def _is_host_port(a: str) -> bool:
    host, sep, port = a.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def parse_controllers(addrs: str) -> list[str]:
    """The controllers of a comma-separated list of host:port entries, as
    in POCKET_CONTROLLER ("10.0.0.1:7070,10.0.0.2:7070"): spaces around
    entries ignored, repeats dropped, the Go metaclient's
    ParseControllers. An empty entry, or one without a valid port, raises
    PocketError naming it."""
    out: list[str] = []
    for i, a in enumerate(addrs.split(",")):
        a = a.strip()
        if not _is_host_port(a):
            raise errors.PocketError(f"controller list {addrs!r}: entry {i + 1} ({a!r}) is not host:port "
                                     "(want host:port,host:port,...)", errors.Code.UNSUPPORTED)
        if a not in out:
            out.append(a)
    return out


# A call that has waited STALL_AFTER seconds for the controller's reply
# probes it with a new connection to the same address (a challenge, after
# the TLS handshake, which any running controller answers at once), again
# every STALL_EVERY seconds while the wait goes on; a probe that meets
# STALL_WAIT seconds of silence ends the wait as _Stalled (a controller
# that closes the probe has answered). A TLS handshake not done within
# STALL_AFTER + STALL_WAIT is one too. Only waits that are safe to cut are
# cut: a map fetch, and the challenge every registration or
# deregistration asks for first; one of those, once written, waits for
# the timeout (a controller that may only be slow may
# have acted on it). The kernel of a stopped controller process (SIGSTOP,
# a stalled host) still accepts connections and their bytes: without the
# probe a call waited its whole timeout on it and never moved on to the
# controller elected in its place. The Go metaclient's stallAfter,
# stallEvery, stallWait (ErrUnresponsive, cuttable).
STALL_AFTER = 0.5
STALL_EVERY = 1.0
STALL_WAIT = 2.0


class _Stalled(OSError):
    """The controller answered nothing, not even a challenge on a new
    connection: presumed stopped (or cut off, or out of descriptors)."""


def _tls_alert(e: BaseException) -> bool:
    """Whether e is a TLS alert the controller sent (it refuses the
    client's certificate: of another CA, or without a role it takes)."""
    return isinstance(e, ssl.SSLError) and "ALERT" in (e.reason or "").upper()


class Controller:
    """A client of the controller at addr ("host:port"). tls is an
    SSLContext (see tls_context), or None for plain TCP."""

    def __init__(self, addr: str, tls: ssl.SSLContext | None = None, timeout: float = 15.0,
                 wait: float = DEFAULT_WAIT):
        # The list, then leaders learned from "not leader" answers; calls
        # go to self.addr first: the one that last answered as the leader.
        self.addrs = parse_controllers(addr)
        self.addr = self.addrs[0]
        self.tls = tls
        self.timeout = timeout
        self.wait = wait
        self._sock: socket.socket | None = None
        self._id = 0
        self._lock = threading.Lock()
        self._sent = False  # the current call's request was written whole
        self._got = 0  # bytes of the current call's reply received

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _dial(self) -> socket.socket:
        """A new connection to self.addr (its TLS handshake bounded by
        STALL_AFTER + STALL_WAIT: a stopped controller raises _Stalled)."""
        host, _, port = self.addr.rpartition(":")
        host = host.strip("[]")
        s = socket.create_connection((host, int(port)), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            bound = STALL_AFTER + STALL_WAIT
            s.settimeout(bound)
            try:
                s = self.tls.wrap_socket(s, server_hostname=host)
            except socket.timeout:
                s.close()
                raise _Stalled(f"no TLS handshake within {bound:.1f} s: the controller answers nothing "
                               "(stopped, cut off, or out of descriptors and accepting no connection)") from None
            except ssl.SSLError as e:
                s.close()
                if _tls_alert(e):
                    raise errors.PocketError(
                        f"controller {self.addr} refused this client's TLS certificate ({e}): give the cluster's "
                        "TLS directory (the one pocket up printed), or certificates pocket cert issue made from "
                        "its CA", errors.Code.UNSUPPORTED) from e
                hint = self._not_tls_hint(e, host, int(port))
                if hint:
                    raise errors.PocketError(f"controller {self.addr}: {e} ({hint})", errors.Code.UNSUPPORTED) from e
                raise
            s.settimeout(self.timeout)
        return s

    def _probe(self, peer, bound: float = STALL_WAIT) -> bool:
        """Whether the controller answers a challenge on a new connection
        to peer (the address the call's connection reached: no name
        resolved again; after the TLS handshake) within bound seconds in all
        (STALL_WAIT, or what is left of the timeout).
        A close or a reset is an answer too (a controller at its
        connection limits closes new connections unanswered); silence (a
        timeout) and a refusal (nothing listens) are not."""
        end = time.monotonic() + max(bound, 0.001)
        left = lambda: max(end - time.monotonic(), 0.001)  # noqa: E731
        s = None
        try:
            s = socket.create_connection(peer[:2], timeout=left())
            if self.tls is not None:
                s.settimeout(left())
                s = self.tls.wrap_socket(s, server_hostname=self.addr.rpartition(":")[0].strip("[]"))
            s.settimeout(left())
            s.sendall(wire.pack_header(wire.OP_CHALLENGE, 0, 1, 0, 0))
            # The whole reply is read, so the close sends no reset (the
            # controller logs one as a warning: an HA trial).
            want, got = wire.HEADER_LEN, b""
            while len(got) < want:
                s.settimeout(left())
                b = s.recv(want - len(got))
                if not b:
                    break
                got += b
                if len(got) == wire.HEADER_LEN:
                    want += wire.parse_header(got, wire.CONTROL_MAX_META, 0).meta_len
            return True
        except (socket.timeout, ConnectionRefusedError):
            return False
        except OSError as e:
            return e.errno != errno.EHOSTUNREACH  # unreachable: silence, as the Go client's
        except (ValueError, errors.PocketError):
            return True
        finally:
            if s is not None:
                s.close()

    def _not_tls_hint(self, e: ssl.SSLError, host: str, port: int) -> str:
        """What to check when the TLS handshake with addr failed (e) because
        the server answered something that is not TLS (OpenSSL's
        "[SSL: WRONG_VERSION_NUMBER] wrong version number"), as the Go
        CLI's tlsHint says it: Pocket's own frames come from a storage
        node's data port or a controller started with --insecure. The
        handshake's answer is gone with it, so a new connection sends a
        ClientHello again and reads the first bytes of the reply. "" when
        the answer is TLS (a certificate or alert problem), or none."""
        if isinstance(e, ssl.SSLCertVerificationError) or "ALERT" in (e.reason or "").upper():
            return ""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        out = ssl.MemoryBIO()
        try:
            ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=host).do_handshake()
        except ssl.SSLWantReadError:
            pass  # the ClientHello is written: the server's answer is wanted
        except (ssl.SSLError, ValueError):
            return ""
        got = b""
        try:
            with socket.create_connection((host, port), timeout=min(self.timeout, 5.0)) as s:
                s.sendall(out.read())
                while len(got) < 2:
                    b = s.recv(2 - len(got))
                    if not b:
                        break
                    got += b
        except (OSError, ValueError):
            pass
        if got.startswith(wire.MAGIC):
            return ("the server at this address speaks pocket's protocol over plain TCP: a storage node's data port "
                    "(give the controller's address, the POCKET_CONTROLLER pocket up printed), or a controller "
                    "started with --insecure (reach that one with insecure=True or POCKET_INSECURE=1; the TLS directory "
                    "came from POCKET_TLS_DIR, or the default DATA/tls, POCKET_DATA_DIR or ~/.pocket)")
        if got and not 0x14 <= got[0] <= 0x18:  # not a TLS record's content type
            return ("the server at this address does not speak TLS, nor pocket's protocol: "
                    "is it the controller's address?")
        return ""

    def call(self, op: int, meta: bytes) -> bytes:
        """Sends one request and returns the reply's metadata. An error
        reply raises its PocketError; a failure on a connection that had
        served before is retried once on a new one. A standby's "not
        leader" answer naming the active controller sends this call, and
        the later ones, there (as the Go client does); one naming none (an
        election in progress) raises NotLeader with NO_LEADER_HINT once
        ``wait`` has passed. A controller away (refusing connections, or
        losing them before the request went out, or, for an idempotent
        call, at any point: a restart) is waited for, with pauses of 50 ms
        doubling to 1 s, for up to ``wait`` seconds (0: not at all), then
        raises Unavailable; a request that may have reached it raises
        OutcomeUnknown at once, as before."""
        start = time.monotonic()
        deadline = start + max(self.wait, 0.0)
        pause = _AWAY_PAUSE
        while True:
            try:
                return self._call_following(op, meta)
            except _Away as e:
                if (left := deadline - time.monotonic()) <= 0:
                    raise e.public(time.monotonic() - start) from None
            except errors.NotLeader as e:
                if NO_LEADER_HINT not in e.message or (left := deadline - time.monotonic()) <= 0:
                    raise
            # The last pause ends at the deadline, where one more try goes.
            time.sleep(min(pause, left))
            pause = min(2 * pause, _AWAY_PAUSE_MAX)

    def _call_following(self, op: int, meta: bytes) -> bytes:
        """call's one pass over the controllers, as the Go metaclient's
        Controllers: the one that last answered as the leader first,
        following "not leader" answers that name another (remembered even
        when not in the list), and moving on to the next of the list when
        one cannot be reached (_Away: nothing sent, or an idempotent call)
        or answers "not leader" naming none. A stopped controller's
        OutcomeUnknown is raised, the next call trying another first."""
        with self._lock:
            last: errors.PocketError | None = None
            tried: set[str] = set()  # each controller once a pass
            failed: dict[str, str] = {}  # why each controller of the pass did not answer
            while self.addr not in tried:
                tried.add(self.addr)
                try:
                    return self._call(op, meta)
                except errors.NotLeader as e:
                    named = e.message if _is_host_port(e.message) else ""
                    if named == self.addr:
                        raise
                    if not named:
                        last = errors.NotLeader(f"{self.addr}: {NO_LEADER_HINT}")
                        if len(self.addrs) == 1:
                            raise last from None
                    else:
                        # Waited for (call): a standby names a stopped
                        # leader until its lease ends and another is
                        # elected (a review: raised at 2.5 s before).
                        # Its own failure said (a leader with another CA: its
                        # TLS error; a new user's trial saw only "not leader").
                        own = f" ({named} itself: {failed[named]})" if named in failed else ""
                        last = errors.NotLeader(f"{self.addr} names {named} the leader, which did not answer as it{own} "
                                                f"(controllers tried: {', '.join(sorted(tried))}); {NO_LEADER_HINT}")
                    self._switch(named or self._after())
                except _Away as e:
                    last = e
                    failed[self.addr] = str(e)
                    if len(self.addrs) == 1:
                        raise
                    self._switch(self._after())
                except errors.OutcomeUnknown as e:
                    if isinstance(e.__cause__, _Stalled) and len(self.addrs) > 1:
                        self._switch(self._after())
                    raise
            raise last

    def _after(self) -> str:
        """The controller after self.addr in the list, wrapping around."""
        return self.addrs[(self.addrs.index(self.addr) + 1) % len(self.addrs)]

    def _switch(self, addr: str) -> None:
        """Sends the calls from now on to addr first (added to the list
        when a "not leader" answer named it)."""
        self._drop()
        if addr not in self.addrs:
            self.addrs.append(addr)
        self.addr = addr

    def _call(self, op: int, meta: bytes) -> bytes:
        """One call, sent again at once on a new connection when one that
        had served fails, unless op is not idempotent and its request was
        written whole: that raises OutcomeUnknown (the controller may have
        acted on it: a job is never registered twice). Any call whose
        request went out on a fresh plain TCP connection to a controller
        that serves TLS (it answers a TLS handshake: _speaks_tls), which
        never read the request, raises PocketError (code UNSUPPORTED)
        naming POCKET_TLS_DIR, as the Go metaclient's ErrControllerTLS. Before such a
        request goes out on a connection that had served, a connection the
        controller closed meanwhile (a restart) is dropped."""
        idempotent = op in _IDEMPOTENT
        for attempt in range(2):
            if not idempotent:
                self._drop_if_closed()
            reused = self._sock is not None
            self._sent, self._got = False, 0
            wrote = False  # a challenge or the request went out
            try:
                if self._sock is None:
                    self._sock = self._dial()
                if not idempotent:
                    # A request that must not be sent twice, whose wait is
                    # not cut once written, goes out just after the
                    # controller answered (a challenge, whose wait is cut):
                    # a stopped one fails it unsent (_Stalled), and the
                    # call moves on. Before, one on a pooled connection to a
                    # stopped leader raised OutcomeUnknown (an HA trial).
                    try:
                        self._roundtrip(wire.OP_CHALLENGE, b"")
                    finally:
                        wrote, self._sent, self._got = self._sent, False, 0
                return self._roundtrip(op, meta)
            except errors.PocketError:
                raise
            except (OSError, ValueError) as e:
                self._drop()
                wrote = wrote or self._sent
                if self.tls is not None and _tls_alert(e):
                    # The controller refuses this client's certificate
                    # (TLS 1.3 says so at the first read). No retry mends
                    # it: before, a call waited ``wait`` (15 s) for it
                    # (a hostile re-check), as the Go metaclient did.
                    raise errors.PocketError(
                        f"controller {self.addr} refused this client's TLS certificate ({e}): give the cluster's "
                        "TLS directory (the one pocket up printed), or certificates pocket cert issue made from "
                        "its CA", errors.Code.UNSUPPORTED) from e
                if wrote and self.tls is None and not reused and not self._got \
                        and not isinstance(e, _Stalled) and self._speaks_tls():
                    # Any call: before 2026-12-07 an idempotent one (a map
                    # fetch) was waited for until ``wait`` (15 s), though
                    # no try could succeed.
                    raise errors.PocketError(
                        f"controller {self.addr} serves TLS and closed this plain TCP connection without reading "
                        "the request, so it did nothing: set POCKET_TLS_DIR to the cluster's TLS directory "
                        "(the one pocket up printed), or give tls_dir",
                        errors.Code.UNSUPPORTED) from None
                if self._sent and not idempotent:
                    hint = _OUTCOME_HINT.get(op, "the controller may have acted on it")
                    what = "it stopped answering" if isinstance(e, _Stalled) else \
                        "its reply was too slow" if isinstance(e, TimeoutError) else "the connection failed"
                    raise errors.OutcomeUnknown(f"controller {self.addr}: {what} after the request was sent, so "
                                                f"its outcome is unknown ({hint}): {e}") from e
                if not reused or attempt or isinstance(e, _Stalled):
                    raise _Away(f"controller {self.addr}: {e}", self._sent) from None
        raise AssertionError("unreachable")

    def _speaks_tls(self) -> bool:
        """Whether the controller answers a TLS handshake (its certificate
        unchecked: this only asks whether a TLS server listens). A TLS
        listener reads a plain TCP request as a bad handshake and closes the
        connection without acting on it; a plain controller that closed one
        after the request (it may have acted) answers no handshake."""
        host, _, port = self.addr.rpartition(":")
        host = host.strip("[]")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((host, int(port)), timeout=min(self.timeout, 5.0)) as s:
                with ctx.wrap_socket(s, server_hostname=host):
                    return True
        except ssl.SSLError as e:
            return "ALERT" in (e.reason or "").upper()  # a TLS alert: a TLS server answered
        except (OSError, ValueError):
            return False

    def _drop_if_closed(self) -> None:
        """Drops the connection when the controller closed it or sent
        something unasked (readable before a request: an end of stream, or
        TLS records after the handshake, at worst a needless new dial)."""
        if self._sock is None:
            return
        try:
            p = select.poll()  # not select: it fails on a descriptor past 1023
            p.register(self._sock, select.POLLIN)
            readable = p.poll(0)
        except (OSError, ValueError):
            readable = [self._sock]
        if readable:
            self._drop()

    def _recv_exact(self, n: int, cut: bool = False, until: float | None = None, what: str = "reply") -> bytes:
        """Reads n bytes of a reply (what), all by until (time.monotonic;
        None: no deadline), else raises TimeoutError saying how much came.
        A hostile trial's controller answered the challenge, then dripped a
        reply claiming 4 MiB of metadata a byte every 3 s: bounded for each
        byte only, register_job would have waited some 145 days. With cut,
        a wait that goes on probes the controller (STALL_AFTER) and raises
        _Stalled when a probe meets silence. Timeouts
        on the socket, not select, wait: a TLS 1.3 session ticket makes
        the socket readable with no reply to read (a review: no probe ran),
        and select fails on a descriptor past 1023."""
        buf = bytearray(n)
        view, k = memoryview(buf), 0
        s = self._sock
        last = time.monotonic()  # when the last byte came
        probe_at = last + STALL_AFTER
        t0 = last

        def slow() -> TimeoutError:
            return TimeoutError(f"the {what} ({n} bytes) did not arrive within {time.monotonic() - t0:.1f} s "
                                f"({k} bytes came; the controller timeout is {self.timeout} s)")
        try:
            while k < n:
                wake = until if not cut else probe_at if until is None else min(probe_at, until)
                if wake is not None:
                    if until is not None and time.monotonic() >= until:
                        raise slow()
                    s.settimeout(max(wake - time.monotonic(), 0.001))
                try:
                    got = s.recv_into(view[k:])
                except socket.timeout:
                    now = time.monotonic()
                    if until is not None and now >= until:
                        raise slow() from None
                    if not cut or now < probe_at:
                        continue
                    bound = STALL_WAIT if until is None else min(STALL_WAIT, until - now)
                    if not self._probe(s.getpeername(), bound):
                        raise _Stalled(f"waited {now - last:.1f} s for the reply and a new connection met "
                                       f"{bound:.1f} s of silence, or a refusal: the controller answers nothing "
                                       "(stopped, cut off, gone, or out of descriptors and accepting no connection)") from None
                    probe_at = time.monotonic() + STALL_EVERY
                    continue
                self._got += got
                if got == 0:
                    if self.tls is None:
                        raise ConnectionError("connection closed by the controller; the controller may require TLS: "
                                              "set POCKET_TLS_DIR to the directory pocket up printed")
                    raise ConnectionError("connection closed by the controller")
                k += got
                last = time.monotonic()
                probe_at = last + STALL_AFTER
        finally:
            if self._sock is s:
                s.settimeout(self.timeout)
        return bytes(buf)

    def _roundtrip(self, op: int, meta: bytes) -> bytes:
        self._id += 1
        # A sendall that raises wrote part of the frame at most, which the
        # controller cannot act on: the request counts as sent once it
        # returns.
        self._sock.sendall(wire.pack_header(op, 0, self._id, len(meta), 0) + meta)
        self._sent = True
        cut = op in _IDEMPOTENT or op == wire.OP_CHALLENGE  # see STALL_AFTER
        # The header and metadata within one timeout in all (_recv_exact).
        until = None if self.timeout is None else time.monotonic() + self.timeout
        h = wire.parse_header(self._recv_exact(wire.HEADER_LEN, cut, until, "reply's header"),
                              wire.CONTROL_MAX_META, 0)
        rmeta = self._recv_exact(h.meta_len, cut, until, "reply's metadata") if h.meta_len else b""
        if h.id == 0 and h.op == wire.OP_GO_AWAY | wire.REPLY_BIT:
            self._drop()
            raise wire.reply_error(h.code or errors.Code.CLOSED, rmeta)
        if h.op != op | wire.REPLY_BIT or h.id != self._id:
            self._drop()
            raise errors.Malformed(f"reply op {h.op:#x} id {h.id} to request {op:#x} id {self._id}")
        if h.code:
            raise wire.reply_error(h.code, rmeta)
        return rmeta

    def register_job(self, name: str, lambdas: int = 0, capacity_bytes: int = 0, peak_mbps: float = 0.0,
                     latency_sensitive: bool = False, ttl_ms: int = 0) -> wire.PlacementMap:
        """Registers a job; the map carries its id and token."""
        meta = wire.encode_job_register(name, lambdas, capacity_bytes, peak_mbps, latency_sensitive, ttl_ms)
        return wire.decode_placement_map(self.call(wire.OP_REGISTER_JOB, meta))

    def get_map(self, job: str, token: bytes) -> wire.PlacementMap:
        """The job's current map; for a job that ended (deregistered, or its
        token expired) while nodes keep its persisted values, the final map
        the controller kept, marked ended, when token is the job's (expired
        or not). A controller that kept none (or predates it) raises
        UnknownJob."""
        m = wire.decode_placement_map(self.call(wire.OP_GET_MAP, wire.encode_job_ref(job, token, ended_ok=True)))
        if m.job != job:
            # Another job's map would send this job's requests, with its
            # token, to that job's nodes (the Go metaclient's mapOf).
            raise errors.Malformed(f"the controller answered the map of job {m.job!r} for job {job!r}")
        return m

    def deregister_job(self, job: str, token: bytes) -> wire.DropResult:
        """Ends a job: its nodes drop its data except persistent values."""
        return wire.decode_drop_result(self.call(wire.OP_DEREGISTER_JOB, wire.encode_job_ref(job, token)))
