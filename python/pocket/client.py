"""The Pythonic API: a Client (the cluster) and its Jobs (a job's keys).

::

    with pocket.Client("127.0.0.1:7000", tls_dir=...) as c:
        with c.register_job("sort", lambdas=100) as job:   # deregisters at exit
            job.put("in/part-0", b"...")
            data = job.get("in/part-0")

Values are bytes-like (bytes, bytearray, memoryview, anything with the
buffer protocol); a get returns bytes, or for a value of 64 KiB or more a
memoryview over a memory map it was received into (no copy, no zero-fill:
see the buffer module); ``get_into`` fills a caller's buffer. Names are
str (UTF-8) or bytes; they may not be empty or contain 0x00, and are keys
as given ("x" and "/x" are two names, as in the Go SDK).

The object layout, placement and chunking are the Go SDK's (package
pocket's doc): a value of at most ``chunk_size`` bytes is one record on the
node of (key, 0), one round trip; a larger one is written as leased chunks
of a fresh random version, confirmed on each node, then published by a
manifest put, after which the replaced version's chunks are dropped. A get
returns one whole version or raises.
"""

from __future__ import annotations

import atexit
import base64
import collections
import contextlib
import errno
import io
import json
import math
import os
import random
import shutil
import stat
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
import dataclasses
import datetime
import functools
from dataclasses import dataclass

from . import buffer, control, errors, placement, wire
from . import conn as pconn
from .conn import DEFAULT_TIMEOUT, NodeConn, NodeUnavailable, Pool, Reply, fenced

DEFAULT_CHUNK_SIZE = 1 << 20  # the Go SDK's DefaultChunkSize
_CHUNK_WINDOW = 16384  # chunks of one get routed and fetched at a time (_get_chunks)
TRUSTED_SIZE = 256 << 20  # past it a manifest's size is checked against the job's usage
MAX_NAME = wire.MAX_KEY_LEN - 40
_MAX_READ_RETRIES = 16
_WINDOW = 4  # requests in flight per connection in a chunk transfer
_SPACE_RACE_RETRIES = 5  # tries again of a put that lost a race for space (Job._put_chunked)
_LIST_PAGE = 10000
# Paging bounds. A hostile trial's node answered every listing page, and
# every prefix delete, with more=True: list() and delete_all() never
# ended (316,962 requests in 40 s; 1 GiB of memory in 30 s with new keys
# on each page). Each page must now make progress (_check_list_page,
# _check_delete_page), and a node's paging ends within PAGING_TIMEOUTS
# times the client's timeout (None: no bound) and, for a listing, within
# LIST_MAX_BYTES, counted as each key's bytes and LIST_ENTRY_COST (what an
# entry costs here, measured 213-236 bytes: a re-check's 300,000 short keys
# took 68 MiB, where a bound on key bytes alone let a listing reach some
# 11 GiB); past either it raises Malformed. The Go SDK counts the same
# (pocket.MaxListBytes).
PAGING_TIMEOUTS = 10
LIST_MAX_BYTES = 1 << 30
LIST_ENTRY_COST = 224
MAX_PAGE_NAMES = 1 << 32  # names one prefix-delete page may claim (the Go SDK's maxPageNames)
MAX_ENTRY_SIZE = 1 << 62  # an entry's size past it (or below 0) is no value's
PREFETCH = 2  # chunks a stream read fetches ahead of the one being consumed

# Follows "node ADDR is dead" in the Unavailable of a request for a key of
# a node the job's map marks dead (the Go SDK's deadNodeAdvice): the node
# stays in the map, its keys unavailable, until the controller has seen it
# dead for its --dead-node-grace and takes it out of the map. The map does
# not carry the grace, so the advice gives the default.
DEAD_NODE_ADVICE = ("its keys are unavailable until the controller declares it lost (once it has been dead for "
                    "the controller's --dead-node-grace, 30 s by default, while another node of the cluster is alive) and takes it out of the job's map; retry "
                    "then: puts go to the job's other nodes, and gets of the values it held answer lost")

Buffer = bytes | bytearray | memoryview
Name = str | bytes


def _bytes(name: Name) -> bytes:
    """A name as the bytes on the wire: a str as UTF-8, its surrogate
    escapes as the bytes they stand for, as listings decode names that
    are not UTF-8 (so a listed name can be got and deleted)."""
    return name.encode("utf-8", "surrogateescape") if isinstance(name, str) else bytes(name)


def _name(key: Name) -> bytes:
    if isinstance(key, (int, float, bool)) or key is None:
        # bytes(5) is five 0x00 bytes: a number is no key (a hostile
        # trial's put(5, ...) was refused as "key 5 (5 bytes)").
        raise errors.BadKey(f"key {key!r}: want str or bytes")
    try:
        k = _bytes(key)
    except UnicodeEncodeError as e:
        raise errors.BadKey(f"key {_shown(key)}: not encodable as UTF-8: {e.reason}") from None
    except TypeError:
        # An object that is no name, such as a listing's Entry (a trial's
        # stat(entry) raised "cannot convert 'Entry' object to bytes").
        hint = ": a listing's Entry: pass its .name" if isinstance(key, Entry) else ""
        raise errors.BadKey(f"key {key!r}: want str or bytes{hint}") from None
    if not k or len(k) > MAX_NAME or b"\x00" in k:
        raise errors.BadKey(f"key {_shown(key)} ({len(k)} bytes): want 1 to {MAX_NAME} bytes, no 0x00")
    return k


def _ttl_ms(ttl: float) -> int:
    """A TTL in seconds as whole milliseconds, a positive one rounded up:
    under a millisecond, truncated to 0, it read as the controller's
    default, a token that never expires without one (the Go SDK's
    ceilMs)."""
    if not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or abs(ttl) * 1000 >= 2 ** 63:
        raise errors.Malformed(f"ttl {ttl!r}: want a finite number of seconds, under 2**63 ms")
    return math.ceil(ttl * 1000) if ttl > 0 else int(ttl * 1000)


def _shown(key: Name, limit: int = 64) -> str:
    """key's repr, cut to about limit characters for an error message."""
    r = repr(key)
    return r if len(r) <= limit else r[:limit] + "..."


def _dir_prefix(d: Name) -> bytes:
    p = _bytes(d).rstrip(b"/")
    return p + b"/" if p else b""


def _new_version() -> int:
    while True:
        v = random.getrandbits(64)
        if v:
            return v


@dataclass(frozen=True)
class Info:
    """A stored value's size in bytes and whether it persists after its job."""

    size: int
    persist: bool


class RegistrationNote(UserWarning):
    """The warning Client.register_job (and the module API's register_job)
    emits when the controller's reply carries a note (PlacementMap.note):
    what the job should know of its placement, such as nodes the
    autoscaler started for it that did not come, so that it is placed over
    the nodes there are and may carry less than it asked for. ``pocket job
    register`` prints it as "note: ..."; the Go SDK gives it as
    Allotment.Note. ``job`` is the job's id, ``note`` the controller's
    text (also Job.note)."""

    def __init__(self, message: str, job: str = "", note: str = ""):
        super().__init__(message)
        self.job = job
        self.note = note


class LiveJobsAtExit(UserWarning):
    """The warning emitted once at interpreter exit (atexit) when jobs this
    process registered (Client.register_job, or the module API's
    register_job) were not deregistered: they stay registered on the
    controller, holding their allotment, until deregistered, their token
    expires, or an operator ends them (``pocket job end JOBID
    --secret-file FILE``). ``jobs`` lists their ids. Not a
    RegistrationNote (a filter of one leaves the other alone); silence it
    with ``warnings.filterwarnings("ignore", category=pocket.LiveJobsAtExit)``,
    or from outside the program with ``PYTHONWARNINGS=ignore::UserWarning:pocket``
    (the warning's module is "pocket"). Nothing is deregistered at exit."""

    def __init__(self, message: str, jobs: list[str] | None = None):
        super().__init__(message)
        self.jobs = list(jobs or [])


def _warn_note(m: wire.PlacementMap) -> None:
    """Emits the registration reply's note, if any, as a RegistrationNote,
    attributed to the first caller outside this package (the user's
    register_job call, through either API)."""
    note = m.allotment.note if m.allotment is not None else ""
    if not note:
        return
    pkg = os.path.dirname(os.path.abspath(__file__))
    level, f = 1, sys._getframe(0)
    while f is not None and os.path.dirname(os.path.abspath(f.f_code.co_filename)) == pkg:
        level, f = level + 1, f.f_back
    warnings.warn(RegistrationNote(f"job {m.job} registered with a note from the controller: {note}", m.job, note),
                  stacklevel=level)


def _notes_expiry(f):
    """Makes a Job method's PocketError say, when the job's token has
    expired, that it did and when (Job._expiry_note)."""

    @functools.wraps(f)
    def noted(self, *args, **kwargs):
        try:
            return f(self, *args, **kwargs)
        except errors.PocketError as e:
            self._expiry_note(e)
            raise

    return noted


@contextlib.contextmanager
def _record_noted(record: str, size: int, chunk: int):
    """Adds to a node's TooLarge refusal of a put's record (an NVMe
    tier's staging memory, --nvme-staging, holds a record whole) which
    record it refused, its size, and that values over chunk_size are
    stored in chunks of that size, as the Go SDK's recordNote: the node
    names only its own limit, so a value stored in chunks read as refused
    whole (a new user's trial). The exception's class and code are
    unchanged; other errors pass as they are."""
    try:
        yield
    except errors.TooLarge as e:
        if "the record refused was" not in e.message:
            e.message = (f"{e.message} (the record refused was {record}, {size} bytes; values over the client's "
                         f"chunk size, {chunk} bytes, are stored in chunks of that size: a smaller chunk size stores "
                         "this value (Go pocket.Config.ChunkSize, Python Client(chunk_size=...), pocket put "
                         "--chunk-size), or a node with a larger --nvme-staging)")
            e.args = (e._text(),)
        raise


def _key_text(key: Name) -> str:
    """key for an error message: a bytes key that is printable UTF-8 as
    its text's repr, any other as its repr (cut as _shown cuts it)."""
    if isinstance(key, (bytes, bytearray, memoryview)):
        try:
            text = bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            return _shown(bytes(key))
        return _shown(text if text.isprintable() else bytes(key))
    return _shown(key)


def _name_key(e: errors.PocketError, op: str, key: Name) -> None:
    """Makes e, a NotFound or Lost of a single-key op, name the op and the
    key (``get 'a/b': key not found``), as the Go SDK's errors and the
    CLI do; before, the node's "key not found" said neither. An error
    named already (by a call made through another, as get_file opens a
    stream) is named again by the outer call, once."""
    old = getattr(e, "_key_named", "")
    msg = e.message[len(old):] if old and e.message.startswith(old) else e.message
    prefix = f"{op} {_key_text(key)}: "
    e._key_named = prefix
    e.message = prefix + msg if msg else prefix[:-2]
    e.args = (e._text(),)


def _names_key(op: str):
    """Makes a Job method of one key (its first argument) name it in the
    NotFound or Lost it raises (_name_key)."""

    def deco(f):
        @functools.wraps(f)
        def named(self, key, *args, **kwargs):
            try:
                return f(self, key, *args, **kwargs)
            except (errors.NotFound, errors.Lost) as e:
                _name_key(e, op, key)
                raise

        return named

    return deco


# The answers a job whose token expired gets (its values dropped but the
# persisted ones, its token refused): Job._expiry_note explains them.
_EXPIRY_CODES = frozenset({errors.Code.NOT_FOUND, errors.Code.REVOKED, errors.Code.UNKNOWN_JOB, errors.Code.BAD_TOKEN})


class Listing(list):
    """What Job.list returns: the names (Entry), a list as before, and the
    nodes of the job's map the listing could not cover, whose names it is
    missing (the Go SDK's Job.ListReport): ``dead`` nodes the map marks
    dead (not asked: their values unavailable, lost if they stay dead past
    the controller's grace), ``lost`` nodes that left the map dead
    (wire.LostNode: their values are gone, reads raise Lost) and ``gone``
    nodes of an ended job's map (Job.gone_nodes). ``partial`` is whether
    any is named."""

    def __init__(self, entries=(), dead=(), lost=(), gone=()):
        super().__init__(entries)
        self.dead: list[str] = list(dead)
        self.lost: list = list(lost)
        self.gone: list[str] = list(gone)

    @property
    def partial(self) -> bool:
        """Whether the listing may miss names: a node of the map was dead,
        lost or gone."""
        return bool(self.dead or self.lost or self.gone)


@dataclass(frozen=True, order=True)
class Entry:
    """One name in a listing: a value, or a directory (name ends in '/').
    Entries order by name (then size), so a listing sorts as its names do;
    before, sorted() of entries raised TypeError (a new user's trial)."""

    name: str
    size: int
    dir: bool


_pools: "weakref.WeakSet[Client]" = weakref.WeakSet()


def _after_fork() -> None:
    # A child must not share its parent's sockets or use its threads.
    for c in list(_pools):
        c._reset_after_fork()
    # The parent's registered jobs are its to warn of at its exit, not
    # the child's (which keeps their tokens, as job_token says).
    _live.clear()


os.register_at_fork(after_in_child=_after_fork)


# The tokens of the jobs registered in this process (Client.register_job)
# and not deregistered: id -> token, for pocket.job_token.
_tokens: dict[str, bytes] = {}
_tokens_lock = threading.Lock()


# The jobs this process registered (Client.register_job, which the module
# API's register_job calls) and has not seen end: id -> the token's expiry
# (ms since the epoch, 0: none), in registration order, for the warning at
# exit (_warn_live_jobs). A deregistration the controller took removes its
# job (Job._ended: also one that raises DropError, its nodes not all having
# dropped the data), as does a map the controller hands out as ended (the
# job ended elsewhere: another process deregistered it, an operator ended
# it, its token expired). A job opened from a token or a credential is not
# this process's to end, so is never in it. Guarded by _tokens_lock.
_live: dict[str, int] = {}
_EXIT_LIST = 10  # job ids the warning at exit names; past them, "and N more"


def _unlive(job_id: str) -> None:
    with _tokens_lock:
        _live.pop(job_id, None)


def _warn_live_jobs() -> None:
    """At interpreter exit, warns once (LiveJobsAtExit) of the jobs in
    _live, skipping those whose token has expired (their jobs ended).

    It does not deregister them: a serverless job spans many processes
    (the launcher, its lambdas, later readers), and the one that
    registered a job exiting does not mean the others are done with it;
    deregistering would drop data they may still read or write. Ending
    a job is left to its owner (Job.deregister, deregister_job, ``pocket
    job deregister``) or its token's expiry, or the operator's ``pocket
    job end``."""
    now = time.time() * 1000
    with _tokens_lock:
        jobs = [j for j, exp in _live.items() if not exp or now < exp]
    if not jobs:
        return
    shown = ", ".join(jobs[:_EXIT_LIST])
    if len(jobs) > _EXIT_LIST:
        shown += f" and {len(jobs) - _EXIT_LIST} more"
    one = len(jobs) == 1
    msg = (f"{len(jobs)} job{'' if one else 's'} this process registered {'was' if one else 'were'} not "
           f"deregistered: {shown}. {'It stays' if one else 'They stay'} registered on the controller, holding "
           f"{'its' if one else 'their'} allotment, until deregistered (Job.deregister(), "
           f"pocket.deregister_job(jobid), `pocket job deregister`), until {'its' if one else 'their'} token "
           f"expires, or until an operator ends {'it' if one else 'them'} with `pocket job end JOBID "
           f"--secret-file FILE`. Pocket does not deregister at exit, as other processes may still use a job. "
           f"If that is intended, silence this warning with "
           f"warnings.filterwarnings(\"ignore\", category=pocket.LiveJobsAtExit), or from outside the "
           f"program with PYTHONWARNINGS=ignore::UserWarning:pocket")
    # No caller's frame is left at exit: attributed to module "pocket" (the
    # only warning that is: RegistrationNote is the caller's), with no source
    # line printed under it. PYTHONWARNINGS matches that module name as text;
    # its category=pocket.LiveJobsAtExit form would import pocket before
    # site-packages (flatbuffers) is on sys.path, and be ignored.
    warnings.warn_explicit(LiveJobsAtExit(msg, jobs), LiveJobsAtExit, "pocket", 0, module="pocket")


atexit.register(_warn_live_jobs)


def registered_token(job_id: str) -> bytes | None:
    """The token of a job registered in this process with
    Client.register_job and not deregistered, else None."""
    with _tokens_lock:
        return _tokens.get(job_id)


class Client:
    """A connection to a cluster: the controller (optional) and pooled
    connections to the storage nodes, shared by the jobs opened through it.
    Safe for use from many threads. In a process forked from one that used
    it, its connections start afresh.

    controller is "host:port", or a comma-separated list of them (several
    controllers on etcd: calls go to the active one and move on past one
    that is unreachable or stopped), default $POCKET_CONTROLLER. The controller
    is reached over mutual TLS with the client certificate in tls_dir
    (default, as for the Go CLI: $POCKET_TLS_DIR, the directory ``pocket
    up`` prints, else DATA/tls when it holds ca.pem, DATA being
    $POCKET_DATA_DIR, else ~/.pocket), else over plain TCP (a cluster
    started with ``--insecure``); ``insecure`` forces plain TCP. A
    standby controller's address works too: calls follow it to the
    active one. ``timeout`` bounds a node's reply in seconds (default
    ``conn.DEFAULT_TIMEOUT``, 60 s; None: wait forever): its header and
    metadata within it in all, its payload at least 1 MiB per timeout
    (conn.py's Bounds); a slower node raises ``Unavailable`` saying it
    timed out and what was slow. ``controller_wait`` bounds how long a call to the
    controller waits for one that is away (refusing connections, losing
    them before the request went out, or for a map fetch at any point: a
    restart; an election in progress) in seconds, default 15 as the Go
    SDK's; 0 raises ``Unavailable`` at once.
    """

    def __init__(self, controller: str | None = None, *, tls_dir: str | None = None, insecure: bool = False,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, parallel: int = 8,
                 timeout: float | None = DEFAULT_TIMEOUT, controller_wait: float = control.DEFAULT_WAIT):
        if not 0 < chunk_size <= wire.MAX_PAYLOAD:
            raise ValueError(f"chunk_size {chunk_size} outside 1..{wire.MAX_PAYLOAD}")
        self.chunk_size = chunk_size
        self.parallel = max(1, parallel)
        self.pool = Pool(timeout)
        self._closed = False
        self._exec: ThreadPoolExecutor | None = None
        self._exec_lock = threading.Lock()
        addr = controller or os.environ.get("POCKET_CONTROLLER", "")
        self.controller: control.Controller | None = None
        if addr:
            insecure = insecure or (tls_dir is None and control.insecure_from_env())
            tls_dir = None if insecure else tls_dir or control.default_tls_dir()
            ctx = control.tls_context(tls_dir) if tls_dir else None
            self.controller = control.Controller(addr, ctx, wait=controller_wait)
        _pools.add(self)

    def _reset_after_fork(self) -> None:
        self.pool = Pool(self.pool.timeout)
        self._exec = None
        self._exec_lock = threading.Lock()
        if self.controller is not None:
            self.controller._sock = None
            self.controller._lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        self._check_open()  # a shut executor would raise a bare RuntimeError
        if self._exec is None:
            with self._exec_lock:
                if self._exec is None:
                    self._exec = ThreadPoolExecutor(self.parallel, thread_name_prefix="pocket")
        return self._exec

    def _check_open(self) -> None:
        """Raises errors.Closed once close() was called. A new user's trial:
        register_job on a closed Client registered a live job, whose put and
        get then failed with a bare PocketError "closed: client closed"."""
        if self._closed:
            raise errors.Closed(pconn.CLOSED_TEXT)

    def _ctl(self) -> control.Controller:
        if self.controller is None:
            raise errors.PocketError("no controller configured (give one or set POCKET_CONTROLLER)",
                                     errors.Code.UNSUPPORTED)
        return self.controller

    def register_job(self, name: str, *, lambdas: int = 0, capacity_bytes: int = 0, peak_mbps: float = 0,
                     latency_sensitive: bool = False, ttl: float = 0) -> "Job":
        """Registers a job with Pocket's hints (0: not given; ttl in seconds,
        0: the controller's default) and returns it; its ``allotment``
        (wire.Allotment: mbps, bytes, sized_from, the quotas and note) says
        what the controller allotted, as ``pocket job register`` prints it.
        A note in the controller's reply (``job.note``: nodes the
        autoscaler started for the job did not come, say) is also emitted
        as a RegistrationNote warning, as the CLI prints it as "note: ...".
        Hints beyond the cluster are reserved as asked (``pocket status``
        shows what each job gets). Used as a context manager, the job is
        deregistered at the end of the block."""
        self._check_open()
        m = self._ctl().register_job(name, lambdas, capacity_bytes, peak_mbps, latency_sensitive, _ttl_ms(ttl))
        with _tokens_lock:
            _tokens[m.job] = m.token
            _live[m.job] = m.expires_ms
        job = Job(self, m, owner=True)
        job.allotment = m.allotment
        _warn_note(m)
        return job

    def open_job(self, job_id: str, token: bytes | str) -> "Job":
        """Opens a job registered elsewhere by its id and token (bytes, or
        hex as Job.token_hex and POCKET_TOKEN give it). A job that has ended
        (deregistered, or its token expired) while nodes keep its persisted
        values opens as a deregistered one (Job.ended), on the final map the
        controller kept: it reads, lists and deletes those values, its puts
        raise Revoked, and its credential() hands them on. A job the
        controller does not know (or kept no map of) raises UnknownJob."""
        try:
            tok = bytes.fromhex(token) if isinstance(token, str) else bytes(token)
        except ValueError:
            raise errors.BadToken(f"token {_shown(token)} for job {job_id}: not hex (Job.token_hex, POCKET_TOKEN)") from None
        self._check_open()
        m = self._ctl().get_map(job_id, tok)
        job = Job(self, m)
        job.allotment = m.allotment
        job._retired = m.ended
        if m.ended:
            _unlive(job_id)
        return job

    def open_static(self, job_id: str, addrs: Iterable[str]) -> "Job":
        """Opens a job on fixed nodes with equal weights and no token (nodes
        started without a controller)."""
        self._check_open()
        nodes = [wire.MapNode(a, 1.0) for a in addrs]
        return Job(self, wire.PlacementMap(job_id, wire.TIER_DRAM, 0, nodes, b""))

    def open_credential(self, cred: str) -> "Job":
        """Opens a job from Job.credential() (also the Go SDK's): typically
        a deregistered one, to read or delete its persisted values. A client
        with a controller asks it whether the job is still live: then the
        Job is an ordinary one, with the controller's current map, whose
        refusals (an expired token, say) raise; if the job ended and the
        controller kept its final map, the Job is an ended one on that map
        (on the credential's own when that is not older); if the controller
        does not know the job (UnknownJob, or BadToken: another job has its id now),
        or the client has none, the Job is a deregistered one's, for which a
        node that answers Revoked holds none of its values. Other controller
        errors raise (a client without a controller opens a deregistered
        job's credential while the controller is down)."""
        self._check_open()
        m, suspect = _decode_credential(cred)
        job = Job(self, m)
        job._suspect = suspect
        if self.controller is None:
            job._retired = True
            return job
        try:
            cur = self.controller.get_map(m.job, m.token)
            if not cur.ended or cur.epoch > m.epoch:
                job._st = _MapState(cur)
                job._suspect = frozenset()
            elif cur.epoch == m.epoch and (_names_more_lost(cur, m) or _names_fewer_nodes(cur, m)):
                # The same map with nodes lost since the job ended (their
                # process restarted or was retired): their keys read Lost,
                # not NotFound; or with nodes that left it since, drained
                # with their values moved: a read no longer asks them. The
                # credential's suspect marks stay on the nodes left (the Go
                # SDK's OpenCredential).
                job._st = _MapState(cur)
                job._suspect = frozenset(a for a in job._suspect if any(n.addr == a for n in cur.nodes))
            job._retired = cur.ended
            if cur.ended:
                _unlive(m.job)
        except (errors.UnknownJob, errors.BadToken):
            job._retired = True
        except errors.Revoked:
            pass  # live, its token expired: its calls raise that
        return job

    def close(self) -> None:
        """Closes every connection and the worker threads. From then on
        the Client refuses every call (register_job, open_*) and its Jobs
        every data call, with errors.Closed; a Job's deregister still goes
        to the controller, so that a job can always be ended."""
        self._closed = True
        self.pool.close()
        if self._exec is not None:
            self._exec.shutdown(wait=False)
        if self.controller is not None:
            self.controller.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _decode_credential(cred: str) -> tuple[wire.PlacementMap, frozenset[str]]:
    """The map a credential (Job.credential, the Go SDK's Credential)
    carries, and the nodes it marks dead, which the map does not (they are
    suspect: see _cred_node); BadToken when it does not decode or names no
    job or node."""
    try:
        c = json.loads(base64.urlsafe_b64decode(cred + "=" * (-len(cred) % 4)))
        nodes = [_cred_node(n) for n in c["nodes"]]
        suspect = frozenset(n["ID"] for n in c["nodes"] if n.get("dead"))
        lost = [wire.LostNode(str(n["addr"]), float(n["weight"]), int(n["epoch"])) for n in c.get("lost") or []]
        if len(lost) > wire.MAX_LOST_NODES:
            raise ValueError(f"{len(lost)} lost nodes, over the limit of {wire.MAX_LOST_NODES}")
        m = wire.PlacementMap(c["job"], int(c.get("tier") or wire.TIER_DRAM), int(c.get("epoch") or 0), nodes,
                              base64.b64decode(c.get("token") or ""), lost=lost)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise errors.BadToken(f"credential: {e}") from None
    if not m.job or not nodes and not lost:
        # A final map whose nodes were all lost since the job ended names
        # lost ones only (the Go SDK's decodeCredential).
        raise errors.BadToken("credential names no job or no node")
    return m, suspect


# A credential's nodes (persist.go's credNode): {"ID": addr, "Weight": w},
# the field names of the first credentials, which stay readable, and
# "draining": true or "joining": true when the map named the node so
# (absent: neither). A credential taken while a node of the map drained
# (the controller hands out the map naming it draining until every node
# has confirmed the next epoch) routes its reads as the live job's did: a
# value the drain moved at its owner without the draining node first, then
# the draining node, which keeps what it had not moved. A node dead in the
# map, or suspect (one its deregistration named dead), is written "dead":
# true, as the Go SDK writes it. A reader takes the mark as suspect
# (Job._suspect), not dead: a node the controller took for dead may have
# come back with the job's persisted values, so the reader still tries it,
# but finds it gone at its first refused connection instead of dialing it
# for _GONE_WAIT seconds (as an SDK that predates the mark does).


def _cred_node(n: dict) -> wire.MapNode:
    """A node of a credential as the map's node; TypeError or ValueError
    (BadToken to the caller) for a state that is not true or false, or a
    node both draining and joining (no map hands one out)."""
    for k in ("draining", "joining", "dead"):
        if n.get(k) is not None and not isinstance(n[k], bool):
            raise TypeError(f"node {n['ID']!r}: {k} is {n[k]!r}, want true or false")
    if n.get("draining") and n.get("joining"):
        raise ValueError(f"node {n['ID']!r} is both draining and joining")
    state = wire.NODE_DRAINING if n.get("draining") else wire.NODE_JOINING if n.get("joining") else wire.NODE_ACTIVE
    return wire.MapNode(n["ID"], float(n["Weight"]), state, int(n.get("since") or 0))


def _cred_nodes(m: wire.PlacementMap, suspect: frozenset[str] = frozenset()) -> list[dict]:
    """The map's nodes as a credential writes them (see _cred_node), the
    suspect ones dead."""
    out = []
    for n in m.nodes:
        d = {"ID": n.addr, "Weight": n.weight}
        if n.state == wire.NODE_DRAINING:
            d["draining"] = True
        elif n.state == wire.NODE_JOINING:
            d["joining"] = True
        if n.state == wire.NODE_DEAD or n.addr in suspect:
            d["dead"] = True
        if n.since:
            d["since"] = n.since
        out.append(d)
    return out


def credential_job(cred: str) -> str:
    """The id of the job a credential opens (the Go SDK's CredentialJob);
    BadToken when it does not decode."""
    return _decode_credential(cred)[0].job


def _drop_failure_text(job: str, res: wire.DropResult) -> str:
    """DropError's text: the job deregistered, the live nodes that did not
    drop its data, and the dead ones apart (the Go SDK's DropError)."""
    others = res.other_failures()
    s = (f"job {job} deregistered, but {len(others)} node(s) did not drop its data (they may still hold it): "
         + "; ".join(others))
    dead = res.dead_nodes()
    if dead:
        s += "; dead node(s), whose copy went with them: " + ", ".join(dead)
    return s


class _MapState:
    """One placement map as the job routes with it; immutable."""

    def __init__(self, m: wire.PlacementMap):
        self.map = m
        self.job = m.job.encode()
        self.codec = wire.RequestCodec(self.job, m.token, m.epoch)
        self.tier_flags = wire.FLAG_TIER_NVME if m.tier == wire.TIER_NVME else 0
        self.addrs = [n.addr for n in m.nodes]
        self.dead = {n.addr for n in m.nodes if n.state == wire.NODE_DEAD}
        self.draining = {n.addr for n in m.nodes if n.state == wire.NODE_DRAINING}
        self.joining = {n.addr for n in m.nodes if n.state == wire.NODE_JOINING}
        self.set = placement.NodeSet([(n.addr, n.weight) for n in m.nodes])
        # The live set places keys where they go now: the map without its
        # draining nodes. The prior set places them where they were: the
        # map without its joining nodes. Each is the whole set when no node
        # (or every node) drains, or joins.
        self.live = self._without(self.draining)
        # A node given the job to take a draining node's share (active,
        # since SINCE_NOT_YET) holds none of the values it owns until the
        # drainer moved them: it is left out of the prior set too (the Go
        # SDK's priorSet).
        self.prior = self._without(self.joining | {n.addr for n in m.nodes if n.since == wire.SINCE_NOT_YET})
        self.settled = self.live is self.set and self.prior is self.set
        # The live nodes that may be moving values (version requests go to
        # them first, one by one): the draining ones and, while a node
        # joins, every node that is not joining; in map order.
        self.movers = [a for a in self.addrs if a not in self.dead and
                       (a in self.draining or (self.joining and a not in self.joining))]
        # The live nodes grouped in the order values move between them:
        # the draining ones (values leave them), the others, the joining
        # ones (values reach them); one group when nothing moves. Listings
        # and prefix deletes go group by group (the Go SDK's movePhases).
        live = [a for a in self.addrs if a not in self.dead]
        self.phases = [g for g in ([a for a in live if a in self.draining],
                                   [a for a in live if a not in self.draining and a not in self.joining],
                                   [a for a in live if a in self.joining]) if g]
        # Who owned a key before the lost nodes left: for each epoch a node
        # was lost at (an era's end), the nodes that held their whole share
        # before it and the lost nodes still in the map then (lost at that
        # epoch or later), with the index of the first lost one and those
        # lost nodes (the Go SDK's lostSets).
        # A draining node is left out (unless every node drains): its keys'
        # writes went to their live owners, where its mover takes what it
        # holds, so a lost live owner held them (the Go SDK's lostSets).
        drained = self.draining if any(n.addr not in self.draining for n in m.nodes) else set()
        self.lost_sets = []
        for e in sorted({n.epoch for n in m.lost}):
            held = [(n.addr, n.weight) for n in m.nodes if n.since < e and n.addr not in drained]
            then = [n for n in m.lost if n.epoch >= e]
            self.lost_sets.append((placement.NodeSet(held + [(n.addr, n.weight) for n in then]), len(held), then))
        self.fetched = time.monotonic()

    def _without(self, out: set[str]) -> placement.NodeSet:
        """The map's node set without the nodes in out: the whole set when
        out is empty or holds every node."""
        rest = [(n.addr, n.weight) for n in self.map.nodes if n.addr not in out]
        return placement.NodeSet(rest) if out and rest else self.set

    def lost_owners(self, key: bytes, chunk: int) -> list:
        """The lost nodes (wire.LostNode) that owned (key, chunk) in some era,
        oldest loss first, each loss once (an address lost twice is two
        losses): which one held the value depends on when it was written."""
        out = []
        for s, first, then in self.lost_sets:
            i = s.pick(key, chunk) - first
            if i >= 0 and all((n.addr, n.epoch) != (then[i].addr, then[i].epoch) for n in out):
                out.append(then[i])
        return out

    def check(self, r: Reply, key: bytes, chunk: int = 0) -> Reply:
        """r.check(), except that "not found" for a key whose owner left the
        map dead raises Lost."""
        if r.code == errors.Code.NOT_FOUND:
            ls = self.lost_owners(key, chunk)
            # A chunk's loss is the value's, its manifest and other chunks
            # left on other nodes (as the Go SDK's lostErr says).
            what, gone = "the value (if it was written)", "it is gone, recompute it"
            if chunk > 0:
                what = f"chunk {chunk} of the value"
                gone = "the value is gone; its manifest and other chunks are on other nodes until it is deleted or put again"
            if len(ls) == 1:
                raise errors.Lost(f"{what} was on node {ls[0].addr}, which left the job's map "
                                  f"at epoch {ls[0].epoch} without handing its values over (it died or restarted, "
                                  f"its drain ran out of time, or, for an ended job, a drain discarded them: "
                                  f"--discard-persisted): {gone}")
            if ls:
                names = ", ".join(f"{n.addr} (at epoch {n.epoch})" for n in ls)
                raise errors.Lost(f"{what} was on one of the nodes {names}, which left the "
                                  f"job's map without handing their values over, depending on when it was written: "
                                  f"{gone}")
        return r.check()

    def route(self, key: bytes, chunk: int, keep_dead: bool = False) -> tuple[str, str]:
        """The owner of (key, chunk) (its owner under the live set) and its
        old owner: its owner under the prior set when that differs and is
        not dead (or keep_dead: a retired job answers gone for a key whose
        old owner is), a node that may still hold the value (else ""). See
        the Go SDK's drain.go."""
        addr = self.live.ids[self.live.pick(key, chunk)]
        if self.settled:
            return addr, ""
        old = self.prior.ids[self.prior.pick(key, chunk)]
        return addr, (old if old != addr and (keep_dead or old not in self.dead) else "")

    def dead_old(self, key: bytes, chunk: int) -> str:
        """The old owner of (key, chunk) when the map marks it dead (route
        leaves it out), else "": it may hold the value, and come back
        within the controller's grace (the Go SDK's deadOldDo)."""
        if self.settled or not self.dead:
            return ""
        addr = self.live.ids[self.live.pick(key, chunk)]
        old = self.prior.ids[self.prior.pick(key, chunk)]
        return old if old != addr and old in self.dead else ""

    def keyless(self, key: bytes = b"", **kw) -> bytes:
        """A request of the job with no key (or a prefix) and fields kw."""
        return wire.encode_request(self.job, key, self.map.token, self.map.epoch, **kw)


_REFRESH = (errors.Code.STALE_EPOCH, errors.Code.DRAINING, errors.Code.REVOKED)


def _dead_not_gone(m: wire.PlacementMap, gone) -> list[str]:
    """The nodes map m marks dead that the handle has not found gone: not
    asked, they may come back with their names (the Go SDK's deadNotGone)."""
    return [n.addr for n in m.nodes if n.state == wire.NODE_DEAD and n.addr not in gone]


def _not_found_at_both(r: Reply, r_old: Reply) -> Reply:
    """The answer of a read that asked a key's owner (r, its last reply)
    after its old owner (r_old): "not found" only when the old owner said
    so too; else the old owner's reply stands (the Go SDK's
    notFoundAtBoth)."""
    if r.code == errors.Code.NOT_FOUND and r_old.code not in (0, errors.Code.NOT_FOUND):
        return r_old
    return r


def _until_not_busy(send, wait: float) -> Reply:
    """send() again while its reply is busy, pausing from 1 to 50 ms, for
    at most wait seconds; returns the last reply, unchecked."""
    deadline = time.monotonic() + wait
    pause = 0.001
    while True:
        r = send()
        if r.code != errors.Code.BUSY or time.monotonic() >= deadline:
            return r
        time.sleep(pause)
        pause = min(2 * pause, 0.05)


def _patient(op: int, flags: int) -> bool:
    """Whether a fan-out request waits out busy: version requests and
    prefix deletes, which a node refuses while a value they concern is
    being moved (as the Go SDK's patientOp)."""
    return op in (wire.OP_CONFIRM, wire.OP_DROP_VERSION) or (op == wire.OP_DELETE and flags & wire.FLAG_PREFIX != 0)


def _ended_no_node() -> errors.Revoked:
    """The refusal of a put to an ended job whose map has no node left
    (the Go SDK's errEndedNoNode)."""
    return errors.Revoked("the job has ended: its persist-after-job values are read-only, "
                          "and no node of its final map is left (each was lost since it ended)")


def _names_fewer_nodes(cur: wire.PlacementMap, m: wire.PlacementMap) -> bool:
    """Whether cur is m with nodes taken out: each of cur's nodes is one of
    m's, and m names more (the Go SDK's namesFewerNodes)."""
    had = {n.addr for n in m.nodes}
    return all(n.addr in had for n in cur.nodes) and len(cur.nodes) < len(m.nodes)


def _names_more_lost(cur: wire.PlacementMap, m: wire.PlacementMap) -> bool:
    """Whether cur names a lost node (address and epoch) that m does not
    (the Go SDK's namesMoreLost)."""
    had = {(n.addr, n.epoch) for n in m.lost}
    return any((n.addr, n.epoch) not in had for n in cur.lost)


_FENCE_SWEEP = 32  # fences a Job keeps before it looks for those it can take down


class _Fence:
    """A put or delete of a key that timed out, whose connection owes its
    reply (Job's fences). after: a fence on the same key put up before,
    waited for first."""

    __slots__ = ("conn", "after", "lock", "done", "answered")

    def __init__(self, conn: NodeConn, after: "_Fence | None"):
        self.conn, self.after = conn, after
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.answered = False  # the owed reply came, or the node closed the connection

    def wait(self, bound: float | None = None) -> None:
        """Returns once the owed reply has come or been given up: the first
        caller reads it (NodeConn.settle), the others wait for that. Raises
        NodeUnavailable (not sent) when it was given up: the node has been
        silent for the larger of the timeout and conn.SILENCE, and the
        request it owes a reply for may still be executed; the caller's
        request is not sent (the fence is down: a later call goes). A
        caller waits at most bound seconds (the client's timeout; None: no
        bound): past it, it raises NodeUnavailable (not sent) and the fence
        stays up, as a Go call ends at its context's deadline. Before, a
        put with a 1 s timeout waited 30 s at the fence of a frozen node (a
        trial)."""
        end = None if bound is None else time.monotonic() + bound
        left = lambda: None if end is None else end - time.monotonic()  # noqa: E731
        a = self.after
        if a is not None and not a.done.is_set():
            a.wait(left())  # raises past bound, or once when a is given up
        # a settled or given up: this fence's own reply is what is owed now.
        # Before, a fence behind one given up raised that one's error to
        # every caller for good (a review: the key never writable again).
        self.after = None
        # Another caller settling it may be interrupted and leave the wait
        # (settle_now): then this one takes it over.
        while True:
            settled = self.settle_now(limit=left())
            if settled:
                break
            rest = left()
            if settled is None or (rest is not None and rest <= 0):
                c = self.conn
                raise NodeUnavailable(c.addr, f"node {c.addr}: an earlier put or delete of this key timed out (or was interrupted) and the node "
                                      f"has not answered it within the client's timeout ({bound} s; it may still execute it, and the key's "
                                      f"next put or delete waits for it again, until the node has been silent for {max(bound, pconn.SILENCE)} s): "
                                      f"nothing was sent; try again", sent=False)
            if self.done.wait(0.1 if rest is None else min(0.1, rest)):
                break
        if not self.answered:
            c = self.conn
            raise NodeUnavailable(c.addr, f"node {c.addr}: an earlier put or delete of this key timed out (or was interrupted) and the node "
                                  f"has not answered it since (it may still execute it): nothing was sent; try again",
                                  sent=False)

    def settle_now(self, give_up: bool = False, limit: float | None = None) -> bool | None:
        """Settles the fence here unless another caller does (False):
        reads the owed reply, within limit seconds (None when they pass
        first: the fence stays up), or with give_up closes the connection
        unread."""
        if self.done.is_set():
            return True
        if not self.lock.acquire(blocking=False):
            return False
        finished = False
        try:
            if give_up:
                self.conn.close()
            else:
                answered = self.conn.settle(limit)
                if answered is None:
                    return None
                self.answered = answered
            finished = True
        except BaseException:
            # Interrupted (KeyboardInterrupt, a signal handler's exception):
            # the fence stays up, still owing the reply, unless the reply
            # began meanwhile (NodeConn.settle: owed is then 0).
            if not self.conn.owed:
                self.answered = finished = True
            raise
        finally:
            if finished:
                self.done.set()
            else:
                self.lock.release()
        return True


def _resendable(e: errors.Unavailable, op: int, flags: int) -> bool:
    """Whether a request (op, flags) that met e, a node it could not reach,
    may be sent again on a newer map: when it did not reach the node
    (conn.NodeUnavailable's sent is False), or when sending it twice, with
    other callers' writes between the two, does what sending it once does
    (the Go SDK's resendable, in pocket/route.go, gives the reasons op by
    op). That holds for reads (not a get that deletes what it read), chunk
    puts (a name of the writer's own version, unread before its manifest),
    version requests (confirm, drop-version), prefix deletes, listings and
    usage. A write of one key is not sent twice once it may have reached
    the node: a manifest put (another writer may have replaced the first
    copy and dropped its chunks, which the second copy would republish; or
    the second copy is refused and the put drops the chunks of the value
    the first published), a record put (a reader could see the first copy,
    another writer's value, then the second copy), a conditional put, a
    delete of one key or a get that deletes (the second answer would say
    what the first did: "not found", "exists"; or take a newer value)."""
    if not getattr(e, "sent", True):
        return True
    if op == wire.OP_GET:
        return not flags & wire.FLAG_DELETE_AFTER_READ
    if op == wire.OP_PUT:
        return bool(flags & wire.FLAG_CHUNK) and not flags & (wire.FLAG_IF_ABSENT | wire.FLAG_IF_VERSION |
                                                              wire.FLAG_MANIFEST)
    if op == wire.OP_DELETE:
        return bool(flags & wire.FLAG_PREFIX)
    return op in (wire.OP_STAT, wire.OP_LIST, wire.OP_USAGE, wire.OP_CONFIRM, wire.OP_DROP_VERSION)


# How long a job waits for the controller to hand out a map newer than one
# a node called stale, fetching it again with pauses growing from
# _STALE_PAUSE to _STALE_PAUSE_MAX (seconds): the controller publishes a new
# epoch once every node of the map has learned it (a heartbeat or two), and
# a node learns it first. The Go SDK's staleWait.
_STALE_WAIT = 5.0
_STALE_PAUSE = 0.01
_STALE_PAUSE_MAX = 0.2
# The first pause before a request goes again, on the same map, to a node
# that refused it with an epoch older than the request's: the node is
# behind (it restarted and has not synced its job table yet, or its table
# missed the epoch and it is catching up now), not the map. Each later
# pause of the call doubles (_behind_wait): 0.06, 0.12, 0.24 and 0.48 s
# over _MAP_RETRIES, about a second in all, in which a restarted node
# registers and syncs. A node that knows the job and missed its epoch
# heartbeats at once (at most once per 50 ms), so the first pause is
# usually the only one (the Go SDK's behindPause).
_BEHIND_PAUSE = 0.06


def _behind_wait(attempt: int) -> float:
    """The pause before the retry that follows attempt earlier ones of a
    call (0: the first) to a node behind the map (the Go SDK's behindWait)."""
    return _BEHIND_PAUSE * (1 << min(max(attempt, 0), _MAP_RETRIES))


# The first pause before a request goes again to a node that knows no
# epoch of the job, after the map was fetched: most often a node that has
# not heard of a new job from its controller yet, which refuses its puts
# until it has and heartbeats at once (the Go SDK's noEpochPause).
_NO_EPOCH_PAUSE = 0.005


def _no_epoch_wait(attempt: int) -> float:
    """The pause before the retry that follows attempt earlier ones of a
    call to a node that knows no epoch of the job (the Go SDK's
    noEpochWait)."""
    return _NO_EPOCH_PAUSE if attempt <= 0 else _behind_wait(attempt)


def _fetch_failed_note(fetch_error: Exception) -> str:
    """What follows the error of a node that asked for the job's map to
    be fetched (a stale epoch, which names 0 when its lease had lapsed;
    draining) when the client's fetch failed with fetch_error: that the
    advice was followed and nothing was sent again (the Go SDK's
    fetchFailedErr)."""
    return (" (the SDK asked the controller for the job's map and got no answer, "
            f"so the request was not sent again: {fetch_error})")


def _note_fetch_failed(errs: list, fetch_error: Exception, code: int) -> None:
    """Adds _fetch_failed_note(fetch_error) to the messages of the errors
    of code in errs, which the caller raises."""
    for e in errs:
        if isinstance(e, errors.PocketError) and e.code == code:
            e.message += _fetch_failed_note(fetch_error)
            e.args = (e._text(),)


# How long a version request (confirm, drop-version) waits out a node that
# answers busy while it moves a chunk of that version (the Go SDK's settle).
_SETTLE = 10.0
# How long a retired job's request (Job._retired) waits out a node that
# answers busy while it drops the job's temporary values: such a node may
# hold persisted values, and answers revoked ("none here") only once the
# drop has ended (the Go SDK's dropWait).
_DROP_WAIT = 60.0

# How many times one call starts over with a newer map: a change of a
# job's map is two epochs, and the controller hands out an epoch only once
# the map's nodes know it, so a call may meet an intermediate one (as the
# Go SDK's mapRetries). A node drained from the cluster is a change too:
# its retirement removes it from the map, and scale-in stops it at once.
_MAP_RETRIES = 4

# _LOST_RESENDS bounds how often a read whose connection was lost goes
# again on another (Job._send_once).
_LOST_RESENDS = 2


def _read_only(op: int, flags: int) -> bool:
    """Whether a request (op, flags) changes nothing at its node, so that
    sending it twice is sending it once."""
    if op == wire.OP_GET:
        return not flags & wire.FLAG_DELETE_AFTER_READ
    return op in (wire.OP_STAT, wire.OP_LIST, wire.OP_USAGE)


# How many keys a Job holds undropped versions for (_drop_or_hold); past
# it a version's chunks stay until the job ends (the Go SDK's
# maxUndroppedKeys).
_MAX_UNDROPPED_KEYS = 4096


def _settles(op: int, flags: int) -> bool:
    """Whether _do settles a key's undropped versions after a request
    (op, flags) for its value: a put (not of a chunk), a delete of one
    key, a consuming get (the Go SDK's settles)."""
    if op == wire.OP_DELETE:
        return not flags & wire.FLAG_PREFIX
    if op == wire.OP_PUT:
        return not flags & wire.FLAG_CHUNK
    return op == wire.OP_GET and bool(flags & wire.FLAG_DELETE_AFTER_READ)
# The least time between two map fetches a job makes because a node was
# unavailable, so that many calls to a dead node do not each ask the
# controller.
_REFRESH_GAP = 0.5
# After deregistration a node that kept none of the job's (persisted) values
# answers revoked: for a listing, a usage or a recursive delete of a Job retired by
# its deregister or opened from a credential it holds nothing. A live job's
# handle raises Revoked (its token was revoked, or expired).
_REVOKED_EMPTY = (wire.OP_DELETE, wire.OP_LIST, wire.OP_USAGE)


# Nodes gone from an ended job's frozen map (the Go SDK's gone.go): the
# controller forgets an ended job, so no newer map says a node of its
# credential was retired or died. A node's persisted values live in its
# process, so a node that refuses connections (nothing listens at its
# address) for _GONE_WAIT seconds (the wait a live job's fan-out gives the
# map without a stopped node) holds none: it is marked dead in the handle's
# map (fan-outs skip it) and named by Job.gone_nodes(); a request to it
# raises NodeGone, a Lost naming it. Listings, counts and recursive deletes
# then cover the reachable nodes and succeed.
_GONE_WAIT = _STALE_WAIT
# How long Job.deregister waits for the count of the persisted values its
# nodes still hold (the CLI's persistedWait): under _GONE_WAIT, so that a
# node the controller lists alive that cannot be reached leaves them not
# counted instead of being taken for gone (its values counted as none).
_PERSISTED_WAIT = 3.0
# How many times a retired job's request to a node whose connection was
# lost probes the node again before a fresh dial tells whether it is there
# (more than the pool's connections per node).
_LOST_TRIES = 4


class NodeGone(errors.Lost):
    """A node of an ended job's map is gone (retired or dead: it refused
    connections for _GONE_WAIT seconds after the job ended), and the job's
    values on it with it: ``addr`` names it."""

    def __init__(self, addr: str):
        super().__init__(f"values on node {addr} are gone (retired or dead: it refused connections for "
                         f"{_GONE_WAIT:g} s after the job ended); recompute them")
        self.addr = addr


class _Answer(Reply):
    """A reply the SDK answers itself: code and the exception check raises
    (a retired job's "not found" for a node that answered revoked)."""

    __slots__ = ("err",)

    def __init__(self, code: int, err: errors.PocketError):
        super().__init__(0, 0, code, b"", b"")
        self.err = err

    def check(self) -> "Reply":
        raise self.err


class _Pager:
    """Bounds one node's paging (PAGING_TIMEOUTS, LIST_MAX_BYTES):
    page() after each page that says more raises Malformed, naming the
    node, once the pages took too long or carried too many key bytes."""

    def __init__(self, addr: str, what: str, timeout: float | None):
        self.addr, self.what, self.timeout = addr, what, timeout
        self.start, self.pages, self.bytes = time.monotonic(), 0, 0

    def page(self, nbytes: int = 0, max_bytes: int = 0) -> None:
        self.pages += 1
        self.bytes += nbytes
        took = time.monotonic() - self.start
        if self.timeout is not None and took > PAGING_TIMEOUTS * self.timeout:
            raise errors.Malformed(f"node {self.addr}: {self.what} still says more after {self.pages} pages and "
                                   f"{took:.1f} s (bound: {PAGING_TIMEOUTS} x the client's timeout, "
                                   f"{self.timeout} s)")
        if max_bytes and self.bytes > max_bytes:
            raise errors.Malformed(f"node {self.addr}: {self.what} still says more after {self.pages} pages and "
                                   f"{self.bytes} bytes of entries (keys and {LIST_ENTRY_COST} bytes each; "
                                   f"bound: LIST_MAX_BYTES, {max_bytes}): list under narrower prefixes")


def _check_list_page(addr: str, prefix: bytes, after: bytes, resp: wire.Response) -> None:
    """Raises Malformed, naming the node, for a listing page that makes no
    progress or lies: more with no entry, more entries than asked for,
    keys not ascending strictly past the cursor after, keys outside
    prefix (a hostile trial's node answered list("a/") with "zzz/secret"),
    or sizes below 0 or past MAX_ENTRY_SIZE."""
    def bad(why: str) -> errors.Malformed:
        return errors.Malformed(f"node {addr}: listing of {prefix[:64]!r} after {after[:64]!r}: {why}")
    if resp.more and not resp.entries:
        raise bad("the page says more but carries no entry")
    if len(resp.entries) > _LIST_PAGE:
        raise bad(f"{len(resp.entries)} entries, over the {_LIST_PAGE} asked for")
    prev = after
    for i, e in enumerate(resp.entries):
        if not e.key.startswith(prefix):
            raise bad(f"entry {i} {e.key[:64]!r} is outside the prefix")
        if (i or after) and e.key <= prev:
            raise bad(f"entry {i} {e.key[:64]!r} is not after {prev[:64]!r}")
        if not 0 <= e.size <= MAX_ENTRY_SIZE:
            raise bad(f"entry {i} {e.key[:64]!r} has size {e.size}")
        prev = e.key


def _check_delete_page(addr: str, resp: wire.Response) -> None:
    """Raises Malformed, naming the node, for a prefix delete's reply that
    says more having removed nothing (no name, no chunk byte, no version):
    a hostile trial's node answered so forever."""
    if resp.more and resp.count <= 0 and resp.size <= 0 and not resp.versions:
        raise errors.Malformed(f"node {addr}: prefix delete says more but removed nothing (count {resp.count})")
    if resp.count > MAX_PAGE_NAMES:
        # A re-check's node claimed 2^64-1 names on two pages: delete_all
        # returned 36893488147419103230.
        raise errors.Malformed(f"node {addr}: a prefix delete's page claims {resp.count} names deleted")


def _absent(x) -> bool:
    """Whether an answer (a Reply or an exception) says the key is not
    there: not found, or gone with its node."""
    return isinstance(x, NodeGone) or (isinstance(x, Reply) and x.code == errors.Code.NOT_FOUND)


def _best_answer(live, old):
    """Combines the answers (Reply or exception) of a key's live owner and
    old owner (the Go SDK's bestAnswer): a success (the live owner's
    first); else one that is not absent (the node may hold the key); else
    gone; else not found. Returns the reply, or raises the exception."""
    def ok(x):
        return isinstance(x, Reply) and x.code == 0
    for pick in (ok, lambda x: not _absent(x), lambda x: isinstance(x, NodeGone), lambda x: True):
        for x in (live, old):
            if pick(x):
                if isinstance(x, BaseException):
                    raise x
                return x
    raise AssertionError("unreachable")



def _deregister_job(ctl, job: str, token: bytes) -> wire.DropResult:
    """Asks ctl to deregister job. A request whose reply was lost after it
    was sent (OutcomeUnknown: the controller stopped or failed over
    meanwhile) is sent again, up to twice: deregistering is safe to
    repeat. A job found ended then (by the lost request, another client's,
    or its token's expiry) counts as deregistered, its result
    ``unreported``. Before, the call raised OutcomeUnknown and, when the
    lost request had not been applied, the job held its allotment until
    its token expired (a new user's trial; the Go SDK's deregisterJob)."""
    try:
        return ctl.deregister_job(job, token)
    except errors.OutcomeUnknown as lost:
        first = lost
    for _ in range(2):
        try:
            return ctl.deregister_job(job, token)
        except errors.UnknownJob:
            return wire.DropResult(nodes=0, failed=0, values=0, bytes=0, message="", unreported=True)
        except errors.OutcomeUnknown:
            continue
        except errors.PocketError as e:
            # Not settled: the first request's outcome is still unknown.
            raise first from e
    raise first

class Job:
    """A registered job: its placement map and the operations on its keys.
    Safe for use from many threads."""

    def __init__(self, client: Client, m: wire.PlacementMap, owner: bool = False):
        if not m.nodes and not m.lost:
            raise errors.PocketError(f"job {m.job!r} has no nodes", errors.Code.UNAVAILABLE)
        self.client = client
        self._st = _MapState(m)
        self._owner = owner
        # What the controller allotted (wire.Allotment): set by
        # register_job; for a job opened by id and token, the bandwidth and
        # bytes its map says; None on static nodes or from a credential.
        self.allotment: wire.Allotment | None = None
        self._retired = False  # deregistered through it, or opened from a credential
        self._gone: list[str] = []  # nodes of a retired job's map found gone
        # Nodes of a retired job's map named dead only by a hint (a
        # credential's dead mark, the controller at its deregistration):
        # tried still, but gone at their first refused connection
        # (_gone_check); one that answers is no longer suspect.
        self._suspect: frozenset[str] = frozenset()
        self._gone_lock = threading.Lock()
        # Fences (_fence_await): per key, the connection of a put or delete
        # of it that timed out once sent, owing its reply.
        self._fences: dict[bytes, _Fence] = {}
        self._fence_lock = threading.Lock()
        # Per key, manifest versions deletes removed at its old owner and
        # could not drop yet (_hold_undropped).
        self._undropped: dict[bytes, list[int]] = {}
        self._undropped_lock = threading.Lock()
        # Set on a thread while it drops a failed put's unconfirmed chunks
        # (_ObjectWrite.abort_unconfirmed): no map fetch (_follow,
        # _map_changed) waits for an away controller then.
        self._no_fetch = threading.local()

    # ---- identity ----

    def _expiry_note(self, e: errors.PocketError) -> None:
        """Adds to e, a node's answer, that the job's token expired at the
        map's expires_ms, when that time has passed and e is an answer an
        expired job gets (not found: its values were dropped but those put
        with persist; revoked, unknown job, bad token), as the Go SDK's
        expiryNote: "key not found" alone read as a missing key of a live
        job. A node that said so itself is left as it is. The exception's
        class and code are unchanged."""
        m = self._st.map
        if not m.expires_ms or time.time() * 1000 < m.expires_ms:
            return
        if e.code not in _EXPIRY_CODES or "token expired at" in e.message:
            return
        at = datetime.datetime.fromtimestamp(m.expires_ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        e.message = (f"{e.message} (job {m.job}'s token expired at {at}: the job has ended, "
                     f"and only its values put with persist remain, read-only)")
        e.args = (e._text(),)

    def __repr__(self) -> str:
        """The job's id, map (its token left out: a secret) and whether it
        ended."""
        return f"<pocket.Job {self.id!r} ended={self._retired} map={self._st.map!r}>"

    @property
    def id(self) -> str:
        """The job id, like "sort-3"."""
        return self._st.map.job

    @property
    def note(self) -> str:
        """The note of the controller's registration reply ("": none, or
        a job not registered through this Job): what the job should know of
        its placement, also emitted as a RegistrationNote warning (the Go
        SDK's Allotment.Note)."""
        return self.allotment.note if self.allotment is not None else ""

    @property
    def token(self) -> bytes:
        """The job's capability token."""
        return self._st.map.token

    @property
    def token_hex(self) -> str:
        """The token as text, as POCKET_TOKEN takes it."""
        return self._st.map.token.hex()

    @property
    def map(self) -> wire.PlacementMap:
        """The job's current placement map."""
        return self._st.map

    def credential(self) -> str:
        """The job's id, token and map as one string (the Go SDK's
        Credential format): a secret that opens the job's values, including
        persisted ones after deregistration, with Client.open_credential.
        It carries which nodes of the map drain or join, so its reads route
        as this Job's do (see _cred_node), and the map's lost nodes, so a
        key they held raises Lost through it too."""
        m = self._st.map
        c = {"job": m.job, "token": base64.b64encode(m.token).decode(), "tier": m.tier, "epoch": m.epoch,
             "nodes": _cred_nodes(m, self._suspect)}
        if m.lost:
            c["lost"] = [{"addr": n.addr, "weight": n.weight, "epoch": n.epoch} for n in m.lost]
        return base64.urlsafe_b64encode(json.dumps(c, separators=(",", ":")).encode()).decode().rstrip("=")

    def refresh(self) -> None:
        """Fetches the job's map again from the controller. A job found
        ended (its final map) reads its persisted values from then on."""
        self._adopt(self._fetch_map())

    def _fetch_map(self) -> wire.PlacementMap:
        """Asks the controller for the job's map. A final map (the job
        ended), or UnknownJob (the job ended and its final map is no longer
        kept, or a controller without state forgot it), means no
        registration of it is held any more: the job leaves _live, so no
        warning at exit names it, whether or not the caller takes the map.
        Before, a job ended by another process or an operator, with nothing
        persisted, was still named "not deregistered" at exit (a new user's
        trial)."""
        st = self._st
        try:
            m = self.client._ctl().get_map(st.map.job, st.map.token)
        except errors.UnknownJob:
            _unlive(st.map.job)
            raise
        if m.ended:
            _unlive(m.job)
        return m

    def _adopt(self, m: wire.PlacementMap) -> None:
        """Takes m, a map the controller handed out; an ended job's final
        map makes the handle read its persisted values from then on."""
        self._st = _MapState(m)
        if m.ended:
            self._retired = True
            _unlive(m.job)

    @property
    def ended(self) -> bool:
        """Whether the job has ended, as far as this handle knows:
        deregistered through it, opened from a credential of an ended job,
        or found ended by the controller. Such a job reads, lists and
        deletes its persisted values only."""
        return self._retired

    def _map_changed(self, code: int, used: _MapState, meta=None, attempt: int = 0, reply=None) -> bool:
        """After a node answered code (and meta, its reply's) to a request
        routed with the map used, on the call's retry attempt (0: the
        first): whether to send it again. A stale epoch older than used's
        is the node's lag: the same map goes again after
        _behind_wait(attempt); else a stale epoch fetches the map until the
        controller hands out a newer one (_refresh_newer); a node draining
        since the map was fetched fetches it once. A failed fetch answers
        False: the caller raises the node's error, which says the fetch
        failed (reply.note, _fetch_failed_note). Needs a controller."""
        if self.client.controller is None or getattr(self._no_fetch, "on", False):
            return False
        if code == errors.Code.STALE_EPOCH and meta is not None and \
                wire.reply_error(code, meta).epoch < used.map.epoch:
            if wire.reply_error(code, meta).epoch == 0:
                # The node knows no epoch now (_moved_on). A failed fetch
                # (the controller away past controller_wait) ends the
                # call with the node's answer, as in Go: before, each
                # retry waited for the controller again (59 s, a trial).
                failed: list = []
                moved = self._moved_on(used, failed=failed)
                if moved is None:
                    if reply is not None:
                        reply.note = _fetch_failed_note(failed[0])
                    return False
                if moved:
                    return True
                time.sleep(_no_epoch_wait(attempt))
                return True
            time.sleep(_behind_wait(attempt))
            return True
        if code == errors.Code.STALE_EPOCH:
            failed = []
            moved = self._refresh_newer(used.map.epoch, failed=failed)
            if failed and reply is not None:
                reply.note = _fetch_failed_note(failed[0])
            return moved
        if code == errors.Code.REVOKED:
            # A node that dropped the job while it lives on (the node was
            # lost and came back) answers revoked to a map from before.
            return not self._retired and self._moved_on(used, live=True)
        if code == errors.Code.DRAINING:
            try:
                self.refresh()
            except errors.PocketError as e:
                if reply is not None:
                    reply.note = _fetch_failed_note(e)
                return False
            return True
        return False

    def _moved_on(self, used: _MapState, live: bool = False, failed: list | None = None) -> bool | None:
        """Fetches the map once and reports whether it is newer than used:
        after a node that knows no epoch of the job now (its lease lapsed,
        dataplane/lease.go, or it has not synced since it started: a stale
        epoch naming 0) or that dropped the job while it lives on (revoked
        to a handle that has not seen the job end: live), the map may have
        moved on without that node (the Go SDK's mapChanged and
        movedOnLive). With live, an ended job's final map is not taken
        (the node's answer stands, as before). A failed fetch answers
        None (false, too), its error appended to failed if given."""
        st = self._st
        try:
            m = self._fetch_map()
        except errors.PocketError as e:
            if failed is not None:
                failed.append(e)
            return None
        if live and m.ended:
            return False
        if m.epoch >= self._st.map.epoch:
            self._adopt(m)
        return self._st.map.epoch > used.map.epoch

    def _refresh_newer(self, used: int, failed: list | None = None) -> bool:
        """Fetches the map after a node called the map of epoch used stale
        (or one of its draining nodes has stopped: _follow), again and
        again (pauses of _STALE_PAUSE doubling to _STALE_PAUSE_MAX, for at
        most _STALE_WAIT seconds) while the controller still hands out an
        epoch not newer than used; reports whether the map is now newer.
        A controller that cannot be reached (restarting, failing over) is
        asked again within the same bound, as the Go SDK's metaclient
        waits for one; any other failure answers False at once. A fetch
        that failed last is appended to failed, if given."""
        deadline = time.monotonic() + _STALE_WAIT
        pause = _STALE_PAUSE
        while True:
            if self._st.map.epoch > used:
                return True
            try:
                self.refresh()
            except (errors.Unavailable, errors.NotLeader) as e:
                if time.monotonic() >= deadline:
                    if failed is not None:
                        failed.append(e)
                    return False
            except errors.PocketError as e:
                if failed is not None:
                    failed.append(e)
                return False
            if self._st.map.epoch > used or time.monotonic() >= deadline:
                return self._st.map.epoch > used
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(2 * pause, _STALE_PAUSE_MAX)

    def _follow(self, errs: list, used: _MapState, op: int, flags: int, fan_out: bool = False,
                attempt: int = 0) -> bool:
        """After a request (op, flags) routed with the map used failed with
        errs (one error per node asked: a fan-out or a chunk transfer
        asks several), on the call's retry attempt (0: the first): whether
        to send it again, the job's map being now newer (or, every error
        a node behind used, the same map after _behind_wait(attempt)).
        Every error must be one a newer map may cure:

          - stale epoch, draining: as _map_changed;
          - a node unavailable (refused or lost connection, dead in the
            map) to a request that may be sent again (_resendable): when
            the node is draining in used, it has most likely finished,
            been retired and been stopped (as scale-in does), and the map
            without it is handed out once the other nodes have learned it,
            a heartbeat or two later: the map is fetched until it is newer
            (_refresh_newer). So too for any node of the map when fan_out
            is set (a request sent to every node, a listing, a prefix
            delete): the node has most likely drained and stopped, or
            died, and the map without it (or marking it dead, which a
            fan-out skips) is a heartbeat or two away. Else another node
            may have left the map since it was fetched: _map_moved.

        Anything else answers False, as does a failed fetch: the caller
        raises the first error. Needs a controller."""
        if self.client.controller is None or not errs or getattr(self._no_fetch, "on", False):
            return False
        stale = draining = retired = revoked = knows_none = False
        behind = True  # every stale refusal names an epoch older than used's
        for e in errs:
            if isinstance(e, errors.Unavailable):
                if not _resendable(e, op, flags):
                    # Not sent again, but the node may have left the map or
                    # been marked dead: a node that stopped without closing
                    # its connections only times out, and without this
                    # fetch every later put to it waited out the timeout.
                    self._map_moved(used)
                    return False
                retired = retired or fan_out or getattr(e, "addr", "") in used.draining
            elif isinstance(e, errors.PocketError) and e.code == errors.Code.STALE_EPOCH:
                stale = True
                behind = behind and e.epoch < used.map.epoch
                knows_none = knows_none or e.epoch == 0
            elif isinstance(e, errors.PocketError) and e.code == errors.Code.DRAINING:
                draining = True
            elif isinstance(e, errors.PocketError) and e.code == errors.Code.REVOKED and not self._retired:
                revoked = True
            else:
                return False
        if revoked:
            return self._moved_on(used, live=True)  # as _map_changed
        if stale and behind and not retired and not draining:
            failed: list = []
            moved = self._moved_on(used, failed=failed) if knows_none else False
            if moved is None:  # the controller away (_map_changed)
                _note_fetch_failed(errs, failed[0], errors.Code.STALE_EPOCH)
                return False
            if moved:
                return True
            time.sleep(_behind_wait(attempt))  # the nodes lag the map (_map_changed)
            return True
        if stale or retired:
            failed = []
            moved = self._refresh_newer(used.map.epoch, failed=failed)
            if failed:
                _note_fetch_failed(errs, failed[0], errors.Code.STALE_EPOCH)
            return moved
        if draining:
            try:
                self.refresh()
            except errors.PocketError as e:
                _note_fetch_failed(errs, e, errors.Code.DRAINING)
                return False
            return True
        return self._map_moved(used)

    def _pass_again(self, errs: list, used: _MapState, op: int, flags: int, attempt: int) -> bool:
        """Whether a pass over the job's nodes in the order values move
        (_MapState.phases: a listing, a prefix delete), routed with the map
        used on the call's retry attempt (0: the first) and ended with errs
        (none: it completed), starts over: on a newer map when the nodes'
        errors call for one (_follow, as a fan-out), or, the pass done,
        when the job's map changed while it ran. Its order of the nodes was
        the old map's, and a change that reverses a move (a node that
        joined the map leaves it again) moves values onto nodes the pass
        had already asked: a listing missed them, a prefix delete left them
        (test_spans_change.py; the Go SDK's passAgain). A pass that ends
        on the map it started with met no such change: a node that moved
        on to a newer map refuses the older one as stale."""
        if attempt >= _MAP_RETRIES:
            return False
        if errs:
            return self._follow(errs, used, op, flags, fan_out=True, attempt=attempt)
        return self._st.map.epoch != used.map.epoch

    def _map_moved(self, used: _MapState) -> bool:
        """After a node was unavailable to a request routed with the map
        used: whether the job's map has changed since (fetched again by
        another call, or now, at most once per _REFRESH_GAP). Needs a
        controller."""
        if self.client.controller is None:
            return False
        st = self._st
        if st.map.epoch != used.map.epoch:
            return True
        if time.monotonic() - st.fetched < _REFRESH_GAP:
            return False
        try:
            self.refresh()
        except errors.PocketError:
            return False
        return self._st.map.epoch != used.map.epoch

    def deregister(self, *, count_persisted: bool = True) -> wire.DropResult:
        """Releases the job: every node drops its data except persisted
        values, which stay readable (read-only) through this Job and its
        credential(). Returns the controller's DropResult with what
        ``pocket job deregister`` reports beside it: the credential and the
        bytes of persisted values the job's nodes still hold
        (``persisted_bytes``, None when a node could not be asked within
        3 s: ``count_error``; not asked with count_persisted=False, which
        saves the round trip to each node).

        Once the controller deregistered the job, this Job is an ended
        job's whatever its nodes did (the Go SDK's Job.Deregister): the
        map's dead nodes (``result.dead_nodes()``: their copy of the job's
        data went with them) are no failure, and are marked dead in the
        map the Job reads by; live nodes that did not drop its data raise
        DropError, whose ``result`` is the DropResult (other_failures()
        names them). Any other error means the job was not deregistered
        and the Job stays live: the controller's refusal (BadToken,
        UnknownJob for a job it does not know), Unavailable when it cannot
        be reached, OutcomeUnknown when the connection failed after the
        request was sent and asking again did not settle it (the controller
        may have deregistered the job): such a request is sent again, up to
        twice, and a job found ended then counts as deregistered by it
        (``result.unreported``).

        It fetches the job's map first: the persisted values stay where
        that map put them, and this Job and its credential find them by it
        from then on. A map not refreshed since a node of it drained (the
        values moved, this Job never met the change) named the drained node
        for them, and they read as Unavailable after the deregistration.
        A failed fetch raises its error (the job stays registered), except
        UnknownJob and Revoked, which the deregistration itself reports."""
        ctl = self.client._ctl()
        try:
            self.refresh()
        except (errors.UnknownJob, errors.Revoked):
            pass
        except errors.PocketError as e:
            raise errors.error_for(e.code, f"deregister {self.id}: fetching the job's map: {e.message}",
                                   e.epoch) from e
        st = self._st
        try:
            res = _deregister_job(ctl, st.map.job, st.map.token)
        except errors.UnknownJob:
            _unlive(st.map.job)  # ended elsewhere: no registration is held (_fetch_map)
            raise
        self._ended(res)
        res.credential = self.credential()
        if count_persisted:
            res.persisted_bytes, res.count_error = self._count_persisted()
        else:
            res.count_error = "not asked (count_persisted=False)"
        others = res.other_failures()
        if others:
            raise errors.DropError(_drop_failure_text(st.map.job, res), result=res)
        return res

    def _ended(self, res: wire.DropResult) -> None:
        """Makes this Job an ended job's, the controller having deregistered
        it with the result res: the dead nodes res names are marked suspect
        (the map the deregistration fetched may predate their death, as the
        controller hands out a changed map once the live nodes have it; and
        a node taken for dead may come back with the job's persisted
        values), so a request finds one that refuses connections gone at
        once instead of after _GONE_WAIT seconds, and uses one that answers."""
        self._mark_suspect(res.dead_nodes())
        self._owner = False
        self._retired = True
        with _tokens_lock:
            _tokens.pop(self._st.map.job, None)
            _live.pop(self._st.map.job, None)

    def _mark_suspect(self, addrs: list[str]) -> None:
        """Marks the nodes at addrs that are in the map, and not dead in it,
        suspect (see _suspect)."""
        with self._gone_lock:
            st = self._st
            self._suspect = self._suspect | ({a for a in addrs if a not in st.dead} & set(st.addrs))

    def _unsuspect(self, addr: str) -> None:
        """addr answered: it is an ordinary node of the map again."""
        if addr in self._suspect:
            with self._gone_lock:
                self._suspect = self._suspect - {addr}

    def _count_persisted(self) -> tuple[int | None, str]:
        """The bytes of the ended job's persisted values on its nodes and,
        when not counted, why: usage() over the deregistration's map by a
        handle of its own (so this Job's record of gone nodes is its own;
        it shares this Job's suspect nodes),
        within _PERSISTED_WAIT seconds, as ``pocket job deregister`` counts
        them. A node that cannot be reached in that time leaves them not
        counted (the count, a daemon thread, ends by itself)."""
        counter = Job(self.client, self._st.map)
        counter._retired = True
        counter._suspect = self._suspect
        out: dict = {}

        def run() -> None:
            try:
                out["bytes"] = counter.usage()
            except Exception as e:  # noqa: BLE001 - reported as not counted
                out["err"] = e
        t = threading.Thread(target=run, name="pocket-persisted", daemon=True)
        t.start()
        t.join(_PERSISTED_WAIT)
        got = dict(out)
        if "bytes" in got:
            return got["bytes"], ""
        if "err" in got:
            return None, str(got["err"])
        return None, f"the nodes did not all answer within {_PERSISTED_WAIT:g} s"

    def _retire(self, m: wire.PlacementMap, suspect: frozenset[str] = frozenset()) -> None:
        """Marks the job deregistered (elsewhere in this process), its
        reads routed from now on by m, the map its deregistration took,
        with the nodes in suspect suspect (see _suspect)."""
        self._st = _MapState(m)
        self._suspect = suspect
        self._owner = False
        self._retired = True

    def gone_nodes(self) -> list[str]:
        """The nodes of an ended job's map this handle found gone (retired
        or dead: they refused connections for 5 s, or, suspect ones, when
        first dialed), in the order found: the
        values they held are gone, and listings, counts and deletes leave
        them out. Empty for a live job, whose maps leave such nodes out."""
        with self._gone_lock:
            return list(self._gone)

    def _mark_gone(self, addr: str) -> None:
        """Marks addr dead in the retired job's map (fan-outs skip it)."""
        with self._gone_lock:
            m = self._st.map
            if addr in self._st.dead:
                return
            nodes = [dataclasses.replace(n, state=wire.NODE_DEAD) if n.addr == addr else n for n in m.nodes]
            self._st = _MapState(dataclasses.replace(m, nodes=nodes))
            self._suspect = self._suspect - {addr}
            self._gone.append(addr)

    def _gone_check(self, addr: str, e: NodeUnavailable) -> None:
        """For a retired job whose request to addr raised e: returns when
        the node answers (the caller raises e: the request's outcome stands
        unknown), or after a refusal that lasts _GONE_WAIT seconds marks the
        node gone and raises NodeGone; a suspect node (_suspect) is gone at
        its first refusal. A probe (a listing of one key) asks, never the
        request itself."""
        err = e
        for _ in range(_LOST_TRIES):
            if err.refused or err.sent and not err.lost:
                # Refused: wait below. Timed out (a frozen node accepts
                # dials and answers nothing): each probe would wait out the
                # timeout again (a hostile check: 5 timeouts a call), so
                # the request's error stands.
                break
            try:
                self._probe(addr)
                self._unsuspect(addr)
                return
            except NodeUnavailable as e2:
                err = e2
        if not err.refused:
            return
        deadline = time.monotonic() + (0 if addr in self._suspect else _GONE_WAIT)
        wait = 0.02
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._mark_gone(addr)
                raise NodeGone(addr) from None
            time.sleep(min(wait, left))
            wait = min(2 * wait, 0.5)
            try:
                self._probe(addr)
                self._unsuspect(addr)
                return
            except NodeUnavailable as e2:
                if not e2.refused:
                    return

    def _probe(self, addr: str) -> Reply:
        """A listing of one key of the job at addr: changes nothing."""
        st = self._st
        return self._send_once(addr, wire.OP_LIST, st.tier_flags, st.keyless(limit=1))

    def _key_answer(self, op: int, flags: int, addr: str, r: Reply) -> Reply:
        """A retired job's single-key read or delete answered revoked by
        addr: the node holds none of the job's values, so the key is not
        found (the Go SDK's keyAnswer). Other replies as they are."""
        if (self._retired and r.code == errors.Code.REVOKED and op in (wire.OP_GET, wire.OP_STAT, wire.OP_DELETE)
                and not flags & wire.FLAG_PREFIX):
            return _Answer(errors.Code.NOT_FOUND, errors.NotFound(f"the job has ended, and only its persist-after-job values remain: node {addr} keeps none of them"))
        return r

    def _retired_key_do(self, st: _MapState, key: bytes, addr: str, old: str, op: int, flags: int, meta: bytes,
                        payload, dst) -> Reply:
        """A single-key request of a retired job whose key has an old owner
        (the Go SDK's retiredKeyDo): no value of an ended job moves, so each
        owner answers on its own. A read asks the owner, then the old one; a
        delete deletes at both; a read that deletes looks at the owner and,
        holding a value, deletes the old owner's older copy, then reads and
        deletes at the owner (an old owner that fails fails the call, the
        value untaken; the owner holding nothing, it reads and deletes at
        the old one). Answers combine as _best_answer."""
        def one(a: str, o: int = op, f: int = flags):
            try:
                if a in self._st.dead:
                    raise NodeGone(a)
                return self._key_answer(o, f, a, self._send_patient(a, o, f, meta, payload, dst))
            except errors.PocketError as e:
                # A timed-out request's connection, kept open owing its
                # reply, fences nothing here: a retired job takes no put,
                # and deletes of a key commute. Before, it stayed open
                # until the garbage collector found the exception.
                owed = getattr(e, "conn", None)
                if owed is not None:
                    e.conn = None
                    owed.close()
                return e
        def drop_older(o, live_ver: int) -> None:
            # An older manifest deleted at the old owner is no one else's:
            # its chunks are dropped here (the Go SDK's dropOlder), unless
            # it is the live owner's version (the caller's to drop or keep).
            ov = o.response().version if isinstance(o, Reply) and o.code == 0 and o.meta else 0
            if ov and ov != live_ver:
                self._drop_version(ov)

        if op == wire.OP_DELETE:
            o = one(old)
            live = one(addr)
            if isinstance(live, Reply) and live.code == 0:
                drop_older(o, live.response().version if live.meta else 0)
            elif isinstance(o, Reply) and o.code == 0 and not _absent(live):
                # Deleted at the old owner only: the owner's value stays and
                # reads, so the call fails with the owner's answer, and the
                # version deleted at the old owner is dropped only when a
                # stat says the owner holds another (the Go SDK's
                # retiredKeyDo). Before, the old owner's success was the
                # answer and the caller dropped its version, which may be
                # the owner's too.
                s = one(addr, wire.OP_STAT, flags)
                if (isinstance(s, Reply) and s.code == 0 and (s.response().version if s.meta else 0)
                        != (o.response().version if o.meta else 0)) or _absent(s):
                    drop_older(o, 0)
                elif o.meta and o.response().version:
                    self._hold_undropped(key, o.response().version)
                if isinstance(live, BaseException):
                    raise live
                return live
            return _best_answer(live, o)
        if op == wire.OP_GET and flags & wire.FLAG_DELETE_AFTER_READ:
            # The owner is looked at without deleting; holding a value, the
            # old owner's copy goes first, and only then is the value read
            # and deleted, so that an old owner that fails (refused, or its
            # reply lost) fails the call with the value still in place (the
            # Go SDK's retiredKeyDo). Before, the value was taken first and
            # the old owner's failure was then the call's answer: the value
            # gone, handed to no one.
            live = one(addr, wire.OP_STAT, flags & ~wire.FLAG_DELETE_AFTER_READ)
            if isinstance(live, Reply) and live.code == 0:
                o = one(old, wire.OP_DELETE, flags & ~wire.FLAG_DELETE_AFTER_READ)
                if not _absent(o) and not (isinstance(o, Reply) and o.code == 0):
                    if isinstance(o, BaseException):
                        raise o
                    return o
                drop_older(o, live.response().version if live.meta else 0)
                r = one(addr)
                return _best_answer(r, r)
            if not _absent(live):
                return _best_answer(live, live)
            return _best_answer(live, one(old))
        if op in (wire.OP_GET, wire.OP_STAT):
            live = one(addr)
            if not _absent(live):
                return _best_answer(live, live)
            return _best_answer(live, one(old))
        return self._send(addr, op, flags, meta, payload, dst)  # a put: refused (read-only)

    def _holds_none(self, code: int, op: int) -> bool:
        """Whether a node's reply code to op means it holds none of a
        retired job's persisted values (see _REVOKED_EMPTY)."""
        return code == errors.Code.REVOKED and self._retired and op in _REVOKED_EMPTY

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, *exc) -> None:
        if self._owner:
            self.deregister(count_persisted=False)

    # ---- requests ----

    def _send(self, addr: str, op: int, flags: int, meta: bytes, payload=None, dst=None) -> Reply:
        """Sends one request to addr; a retired job's that cannot reach the
        node finds out whether the node is gone (_gone_check: NodeGone)."""
        try:
            r = self._send_once(addr, op, flags, meta, payload, dst)
        except NodeUnavailable as e:
            if self._retired:
                self._gone_check(addr, e)
            raise
        self._unsuspect(addr)
        return r

    def _send_once(self, addr: str, op: int, flags: int, meta: bytes, payload=None, dst=None) -> Reply:
        """Sends one request to addr on a pooled connection. A read
        (_read_only) whose connection the node closed or reset, while it
        was written or after (NodeUnavailable.lost), goes again on another,
        up to _LOST_RESENDS times: the node was there a moment before, and
        one that cut a connection (evicting it at its connection limit)
        most likely serves the next; one that is gone refuses the dial,
        and that error is raised. Before, such a get failed "connection
        closed by the node" (the Go SDK's resendLost). A retired job's
        requests are left to _gone_check, which sends them again itself (a
        hostile check: each of its probes went up to three times, 14
        connections for one get)."""
        pool = self.client.pool

        def once() -> Reply:
            c = pool.acquire(addr)
            try:
                return c.roundtrip(op, flags, meta, payload, dst)  # closes c when interrupted
            finally:
                pool.release(c)

        if not _read_only(op, flags):
            return once()
        return self._again_while_lost(once)

    def _again_while_lost(self, attempt):
        """attempt() for a read, again up to _LOST_RESENDS times while it
        raises NodeUnavailable with lost set (the node closed or reset the
        connection), unless the job is retired (_gone_check's to retry)."""
        for i in range(_LOST_RESENDS + 1):
            try:
                return attempt()
            except NodeUnavailable as e:
                if i == _LOST_RESENDS or not e.lost or self._retired:
                    raise
        raise AssertionError("unreachable")

    def _do(self, op: int, flags: int, key: bytes, chunk: int = 0, version: int = 0, object_size: int = 0,
            payload=None, dst=None) -> tuple[Reply, str]:
        """Sends one request for (key, chunk) to its node (and, while its
        owner changes, its old owner: _drain_do). On a stale map, a node
        draining since the map was fetched, or a node that cannot be
        reached, it starts over on a newer map when _follow finds one, up
        to _MAP_RETRIES times. Returns the reply, unchecked, and the node's
        address."""
        fence = fenced(op, flags)
        if fence:
            self._fence_await(key)
        # A delete whose attempt deleted at the key's old owner and was then
        # refused (or not sent) at its owner, and so goes again on a newer
        # map (_drain_do appends the success here): the next attempt finds
        # nothing there, and its "not found" (or, by version, "conflict")
        # is not the call's answer.
        deleted: list = []
        for attempt in range(_MAP_RETRIES + 1):
            st = self._st
            if not st.addrs:
                # An ended job whose every node's process went away since
                # it ended: its keys are lost (st.check says so; the Go
                # SDK's noNodeErr), and it takes no put.
                if op == wire.OP_PUT:
                    raise _ended_no_node()
                return Reply(0, 0, errors.Code.NOT_FOUND, b"", None), ""
            addr, old = self._owners(st, key, chunk)
            try:
                if st.dead and addr in st.dead and not (old and self._retired):
                    if self._retired:
                        raise NodeGone(addr)
                    raise NodeUnavailable(addr, f"node {addr} is dead: {DEAD_NODE_ADVICE}", sent=False)
                meta = st.codec.encode(key, version, object_size)
                dead_old = "" if old or self._retired else st.dead_old(key, chunk)
                if dead_old:
                    r = self._dead_old_do(addr, dead_old, op, flags | st.tier_flags, meta, payload, dst)
                elif old and self._retired:
                    # Either owner may hold it; either may be gone.
                    r = self._retired_key_do(st, key, addr, old, op, flags | st.tier_flags, meta, payload, dst)
                elif old:
                    r = self._retired_patient(lambda: self._drain_do(st, key, version, addr, old, op,
                                                                     flags | st.tier_flags, meta, payload, dst,
                                                                     deleted))
                elif self._retired:
                    r = self._key_answer(op, flags, addr,
                                         self._send_patient(addr, op, flags | st.tier_flags, meta, payload, dst))
                else:
                    r = self._send_once(addr, op, flags | st.tier_flags, meta, payload, dst)
                    if r.code == errors.Code.BUSY:
                        # Nothing done: the node bounds the bytes of a
                        # job's puts still arriving (dataplane/unfinished.go)
                        # and its device calls in flight, whoever makes
                        # them (the Go SDK's keyPatient).
                        r = _until_not_busy(lambda: self._send_once(addr, op, flags | st.tier_flags, meta, payload, dst),
                                            _SETTLE)
            except errors.Unavailable as e:
                owed = getattr(e, "conn", None)
                if owed is not None:
                    e.conn = None
                    self._owed(key, fence, owed)
                if self._owed(key, fence, e.__dict__.pop("pocket_owed_conn", None)):
                    raise  # a signal handler's Unavailable (conn._interrupted): not sent again
                # The node may have left the map (drained, and stopped)
                # since it was fetched.
                if attempt < _MAP_RETRIES and self._follow([e], st, op, flags, attempt=attempt):
                    continue
                raise
            except BaseException as e:
                # Interrupted (KeyboardInterrupt, a signal handler's
                # exception) while a put or delete of key was written or
                # awaited: its connection owes the reply, and the next
                # put or delete of key waits for it (conn._interrupted).
                self._owed(key, fence, getattr(e, "__dict__", {}).pop("pocket_owed_conn", None))
                raise
            if r.code in _REFRESH and attempt < _MAP_RETRIES and self._map_changed(r.code, st, r.meta, attempt, reply=r):
                continue
            if not chunk and _settles(op, flags):
                self._settle_undropped(key, r.response().version if op == wire.OP_DELETE and r.code == 0 and r.meta else 0)
            if deleted and r.code in (errors.Code.NOT_FOUND, errors.Code.CONFLICT):
                return deleted[0], addr
            return r, addr
        raise AssertionError("unreachable")

    # Fences: a put or delete that timed out is not overtaken by the next
    #
    # A put or delete whose reply did not come within the client's timeout
    # once it was written may still be executed by its node, later (a node
    # stalled, overloaded, frozen for a while). The next put or delete of
    # the same key through this Job, sent at once on another connection,
    # could then land first and be replaced by the older one: an
    # acknowledged value overwritten, or brought back after a delete. So
    # the timed-out request's connection is kept open (conn.py, "Owed
    # replies") as a fence on its key, and the next such request of the
    # key first waits for that reply (NodeConn.settle), as the Go SDK
    # waits for a call given up (pocket/fence.go). A node silent for the
    # larger of the timeout and conn.SILENCE (30 s) is given up, as the Go
    # SDK gives up a silent node's call: what it does after that is its
    # lease's to bound (a node whose controller has been away refuses
    # requests). A put or delete interrupted (KeyboardInterrupt, a signal
    # handler's exception) before its reply began is fenced the same way
    # (conn._interrupted). Calls through other Job
    # objects, or other processes, are not ordered. Before, a request that
    # timed out closed its connection, and the known limits said the Python
    # client orders nothing after a timeout.

    def _owed(self, key: bytes, fence: bool, c: NodeConn | None) -> bool:
        """Takes c, a connection owing the reply of a request of key (or
        None): a fence on key when the request is fenced, else closed.
        Reports whether there was one."""
        if c is None:
            return False
        if fence:
            self._fence_hold(key, c)
        else:
            c.close()
        return True

    def _fence_hold(self, key: bytes, c: NodeConn) -> None:
        """Puts up a fence on key: c owes the reply of a put or delete of
        it. A fence still up on key (two callers timed out on it at once)
        is waited for before this one. Past _FENCE_SWEEP fences, those
        whose reply has come or that are past giving up are taken down
        (_fence_sweep): each holds a socket."""
        with self._fence_lock:
            prev = self._fences.get(key)
            self._fences[key] = _Fence(c, prev if prev is not None and not prev.done.is_set() else None)
            many = list(self._fences.items()) if len(self._fences) > _FENCE_SWEEP else []
        if many:
            self._fence_sweep(many)

    def _fence_await(self, key: bytes) -> None:
        """Waits for the fence on key, if any (see above): every caller
        waits until the owed reply has come or been given up (the first
        reads it), and the fence is then taken down."""
        if not self._fences:
            return
        with self._fence_lock:
            f = self._fences.get(key)
        if f is None:
            return
        try:
            f.wait(self.client.pool.timeout)
        finally:
            # An interrupted wait leaves the fence up (the reply still owed).
            with self._fence_lock:
                if self._fences.get(key) is f and f.done.is_set():
                    del self._fences[key]

    def _fence_sweep(self, fences: list) -> None:
        """Takes down the fences of fences whose reply has arrived (read
        here, as the next request would) or that are older than the
        longest a fence is waited for, the larger of the timeout and
        conn.SILENCE (closed unread, given up as a wait would)."""
        give_up = max(self.client.pool.timeout or 0.0, pconn.SILENCE)
        now = time.monotonic()
        for key, f in fences:
            if (f.after is not None and not f.after.done.is_set()) or f.done.is_set():
                continue
            if f.conn.closed_by_node() or now - f.conn.owed_at > give_up:
                if f.settle_now(give_up=now - f.conn.owed_at > give_up):
                    with self._fence_lock:
                        if self._fences.get(key) is f:
                            del self._fences[key]

    def _drain_do(self, st: _MapState, key: bytes, version: int, addr: str, old: str, op: int, flags: int,
                  meta: bytes, payload, dst, deleted: list | None = None) -> Reply:
        """A request for a key whose old owner (old: its owner under the
        prior set, a draining node or, while a node joins, the node that
        owned it before) differs from its owner (addr): reads ask the owner,
        then the old one, then the owner again; deletes go to the old owner
        first (waiting while it answers busy), then the owner, a get that
        deletes and a delete by version as _read_delete and
        _delete_found; puts go to the owner, and a put stored
        there (not a chunk's) deletes the old owner's older copy (_drop_old;
        see the Go SDK's drain.go)."""
        def send(a: str) -> Reply:
            # The old owner may be moving this very key: wait until it has.
            # A busy owner did nothing (its DRAM tier making room, its
            # device queue full, the job's puts still arriving there over
            # their bound): sent again, as outside a change (the Go SDK's
            # movingKey.send). Before, only puts were, and a get, stat or
            # delete answered busy there failed at once.
            return self._send_patient(a, op, flags, meta, payload, dst)
        if op == wire.OP_GET and flags & wire.FLAG_DELETE_AFTER_READ:
            return self._read_delete(st, key, addr, old, flags, meta, dst, send)
        if op in (wire.OP_GET, wire.OP_STAT):
            r = send(addr)
            if r.code != errors.Code.NOT_FOUND:
                return r
            r2 = send(old)
            return r2 if r2.code == 0 else _not_found_at_both(send(addr), r2)
        if op == wire.OP_DELETE and flags & wire.FLAG_IF_VERSION:
            r = self._send_patient(addr, wire.OP_STAT, st.tier_flags, st.codec.encode(key))
            if r.code == 0 and r.response().version == version:
                return self._delete_found(st, key, addr, old, version)
            if r.code not in (0, errors.Code.NOT_FOUND):
                return r
        if op == wire.OP_DELETE:
            r_old = send(old)
            if r_old.code not in (0, errors.Code.NOT_FOUND, errors.Code.CONFLICT):
                # The old owner did not answer for the key (a map newer than
                # the request's, say): deleting at the owner alone would
                # leave its value to be moved back.
                return r_old
            old_ver = r_old.response().version if r_old.code == 0 and r_old.meta else 0
            # Deleted at the old owner, then failed at the owner: the old
            # owner's manifest was dropped here, and a retry (_do) that finds
            # nothing answers with this success, not "not found".
            done = Reply(r_old.id, r_old.flags, 0, b"", b"")
            try:
                r = send(addr)
            except errors.PocketError:
                # The owner failed after the old owner deleted: the manifest
                # removed there is no one else's to drop, unless the owner
                # holds the same version (the Go SDK's deleteBoth).
                if old_ver:
                    self._drop_or_hold(st, key, addr, old_ver)
                if r_old.code == 0 and deleted is not None:
                    deleted.append(done)
                raise
            if r_old.code == 0 and r.code in (errors.Code.NOT_FOUND, errors.Code.CONFLICT):
                # Deleted at the old owner only: its reply names the
                # version removed, whose chunks the caller drops.
                return r_old
            new_ver = r.response().version if r.code == 0 and r.meta else 0
            if old_ver and old_ver != new_ver:
                # A second manifest, removed at the old owner while the
                # owner held another value: no one else drops its chunks.
                # After the owner failed, only when it holds another (a
                # mover's copy of the same version, put there and not yet
                # deleted at home, is the owner's value: before, its chunks
                # went and the key read corrupt).
                if r.code == 0:
                    self._drop_version(old_ver)
                else:
                    self._drop_or_hold(st, key, addr, old_ver)
            if r_old.code == 0 and r.code and deleted is not None:
                deleted.append(done)
            return r
        r = send(addr)
        if op == wire.OP_PUT and r.code == 0 and not flags & wire.FLAG_CHUNK:
            self._drop_old(st, key, old, version)
        return r

    def _dead_old_do(self, addr: str, dead_old: str, op: int, flags: int, meta: bytes, payload, dst) -> Reply:
        """A request for a key whose old owner (dead_old) the map marks
        dead: it is not asked. A get or stat its owner answers "not found",
        a delete and a get that deletes raise that the dead node's keys are
        unavailable (the value may be on it, and it may come back); a put
        goes to the owner. Before, the owner's "not found" was the answer
        (a hostile trial: 506 of 1,000 gets, 98 of 200 deletes of values
        that read back once the node did)."""
        def unavailable() -> NodeUnavailable:
            return NodeUnavailable(dead_old, f"node {dead_old} is dead: {DEAD_NODE_ADVICE}", sent=False)
        if op == wire.OP_DELETE or (op == wire.OP_GET and flags & wire.FLAG_DELETE_AFTER_READ):
            raise unavailable()
        r = self._send_patient(addr, op, flags, meta, payload, dst)
        if op in (wire.OP_GET, wire.OP_STAT) and r.code == errors.Code.NOT_FOUND:
            raise unavailable()
        return r

    def _drop_old(self, st: _MapState, key: bytes, old: str, ver: int) -> None:
        """Deletes at the old owner what it holds of a key just put at its
        owner (whose manifest, if any, is version ver), dropping the chunks
        of a manifest deleted there: if the owner were then lost, the older
        value would read again after the newer one was acknowledged. Best
        effort: an old owner that cannot be reached keeps its copy."""
        try:
            r = self._send_patient(old, wire.OP_DELETE, st.tier_flags, st.codec.encode(key))
        except errors.PocketError:
            return  # best effort: the put is stored
        old_ver = r.response().version if r.code == 0 and r.meta else 0
        if old_ver and old_ver != ver:
            self._drop_version(old_ver)

    # Deletes while a key's owner changes. Every write of the change goes to
    # the owner, so whatever the old owner holds is older: a delete must
    # leave it at neither, or reads (which ask the old owner on "not
    # found") answer it and the old owner's mover puts it back at the
    # emptied owner (put-if-absent). The old owner is deleted at first,
    # waiting while it answers busy, then the owner. Against the mover
    # (mark the key at the old owner, put it at the owner if absent, delete
    # it, unmark): a delete at the old owner before the mark leaves nothing
    # to move, one during the move waits until the old copy is gone, one
    # after finds nothing; either way nothing of the key is left at the old
    # owner, and nothing puts it there again, once it has answered, so
    # nothing arrives at the owner after the second delete. The other order
    # would empty the owner for the mover's put of the older value.

    def _read_delete(self, st: _MapState, key: bytes, addr: str, old: str, flags: int, meta: bytes, dst,
                     send) -> Reply:
        """A get that deletes what it read, for a key whose owner changes.
        The owner is looked at without deleting; if it holds a value, the
        key is deleted at the old owner (whatever is there is older; waiting
        while it answers busy), then read and deleted at the owner in one
        step, whose reply is the caller's: of readers racing, exactly one
        gets the value, as outside a change. A manifest is left to the
        caller, who deletes it by version once its chunks are read. If the
        owner has nothing, the old owner reads and deletes as usual (its
        mover deletes at the owner a value it moved meanwhile), and failing
        that the owner, where it may just have moved."""
        # The owner is waited out while it answers busy, as every send to
        # it in a change (the Go SDK's movingKey.send).
        r = self._send_patient(addr, wire.OP_GET, (flags & ~wire.FLAG_DELETE_AFTER_READ) | wire.FLAG_VERSION, meta, None, dst)
        if r.code == errors.Code.NOT_FOUND:
            r2 = send(old)
            if r2.code in (0, errors.Code.UNAVAILABLE, errors.Code.CLOSED):
                # A reply of unavailable or closed may follow a read and
                # delete that was done (outcome unknown, as the Go SDK's
                # unexecuted): the call ends there. Before, it went on to
                # the owner, whose read and delete consumed a value written
                # there meanwhile as well.
                return r2
            return _not_found_at_both(send(addr), r2)
        if r.code or r.flags & wire.FLAG_MANIFEST:
            return r
        seen = r.response().version if r.meta else 0
        r_old = self._send_patient(old, wire.OP_DELETE, st.tier_flags, st.codec.encode(key))
        if r_old.code not in (0, errors.Code.NOT_FOUND):
            return r_old  # the value stays; the caller raises (or retries on a new map)
        old_ver = r_old.response().version if r_old.code == 0 and r_old.meta else 0
        if old_ver and old_ver != seen:
            self._drop_version(old_ver)  # an older manifest no writer replaced
        return send(addr)

    def _drop_or_hold(self, st: _MapState, key: bytes, addr: str, ver: int) -> None:
        """Drops version ver, removed at key's old owner after its owner
        (addr) failed, when the owner holds another version or none; else
        holds it until a later delete of key shows it dead
        (_settle_undropped)."""
        if not self._live_may_hold(st, key, addr, ver):
            self._drop_version(ver)
        else:
            self._hold_undropped(key, ver)

    def _hold_undropped(self, key: bytes, ver: int) -> None:
        """Holds version ver, removed at key's old owner while whether its
        owner holds the same version is unknown, until the next put, delete
        or consuming get of key settles it (_settle_undropped); at most
        _MAX_UNDROPPED_KEYS keys (the Go SDK's undropped)."""
        with self._undropped_lock:
            held = self._undropped.get(key)
            if held is None and len(self._undropped) >= _MAX_UNDROPPED_KEYS:
                return
            if held is None:
                held = self._undropped[key] = []
            if ver not in held:
                held.append(ver)

    def _settle_undropped(self, key: bytes, named: int) -> None:
        """Drops the versions held for key (_hold_undropped) that neither of
        its owners holds now (_version_gone), but for named, the version
        the call's answer names and its caller drops; holds the others
        again. _do calls it after a put, delete or consuming get of key,
        whatever its answer: no answer of the call is taken as proof (a
        delete by another version answers "not found" while the old owner
        may still hold the kept version). The Go SDK's settleUndropped:
        before, a delete refused stale by an owner that had moved on kept
        the chunks of the version it removed at the old owner until the
        job ended."""
        if not self._undropped:
            return
        with self._undropped_lock:
            held = self._undropped.pop(key, [])
        self._settle_versions(key, held, named)

    def _settle_under(self, p: bytes) -> None:
        """Settles every key under prefix p holding undropped versions: a
        prefix delete removes them, not one by one (the Go SDK's
        settleUnder; a review found their chunks left after remove_all)."""
        if not self._undropped:
            return
        with self._undropped_lock:
            under = {k: self._undropped.pop(k) for k in list(self._undropped) if k.startswith(p)}
        for k, held in under.items():
            self._settle_versions(k, held, 0)

    def _settle_versions(self, key: bytes, held: list, named: int) -> None:
        """Drops each of held (versions of key) that neither owner holds,
        but named; holds the others again, and, interrupted, the ones not
        yet decided."""
        for i, v in enumerate(held):
            try:
                gone = v != named and self._version_gone(key, v)
            except BaseException:
                for w in held[i:]:
                    self._hold_undropped(key, w)
                raise
            if gone:
                self._drop_version(v)
            elif v != named:
                self._hold_undropped(key, v)

    def _owners(self, st: _MapState, key: bytes, chunk: int) -> tuple[str, str]:
        """The live owner of key's chunk (0: the key's record) under st
        and its old owner while it moves ("" when none)."""
        if st.settled:
            return st.addrs[st.set.pick(key, chunk)], ""
        return st.route(key, chunk, keep_dead=self._retired)

    def _version_gone(self, key: bytes, ver: int) -> bool:
        """Whether neither owner of key under the job's map holds version
        ver of it: both answered, with another version or none; the old
        owner first (a mover puts at the owner before it deletes its own
        copy). A dead owner, or one that does not answer, says nothing."""
        st = self._st
        if not st.addrs:
            return False
        addr, old = self._owners(st, key, 0)
        if (st.dead and (addr in st.dead or old in st.dead)) or (not old and not self._retired and st.dead_old(key, 0)):
            return False
        for a in (old, addr):
            if not a:
                continue
            try:
                # One attempt: busy says nothing, and a call of the key
                # does not wait on it (a review: the Go SDK's settle
                # waited busy out for 10 s, on every later call).
                r = self._send_once(a, wire.OP_STAT, st.tier_flags, st.codec.encode(key))
            except errors.PocketError:
                return False
            if r.code == errors.Code.NOT_FOUND:
                continue
            if r.code != 0 or (r.response().version if r.meta else 0) == ver:
                return False
        return True

    def _live_may_hold(self, st: _MapState, key: bytes, addr: str, ver: int) -> bool:
        """Whether the key's owner may hold version ver after its delete
        failed (the Go SDK's liveMayHold): a stat answering another version
        or none says no; any other answer, yes (chunks kept rather than a
        value torn)."""
        try:
            r = self._send_patient(addr, wire.OP_STAT, st.tier_flags, st.codec.encode(key))
        except errors.PocketError:
            return True
        if r.code == errors.Code.NOT_FOUND:
            return False
        return r.code != 0 or (r.response().version if r.meta else 0) == ver

    def _delete_found(self, st: _MapState, key: bytes, addr: str, old: str, ver: int) -> Reply:
        """Deletes key at its old owner, whatever it holds there (waiting
        while it answers busy), then at its owner if it still holds version
        ver, which it held when the caller looked; returns the owner's
        reply (a conflict: a newer value was written meanwhile and stays).
        A manifest deleted at the old owner is dropped here: no writer
        replaced it, so no one else will drop its chunks."""
        r_old = self._send_patient(old, wire.OP_DELETE, st.tier_flags, st.codec.encode(key))
        if r_old.code not in (0, errors.Code.NOT_FOUND):
            return r_old
        old_ver = r_old.response().version if r_old.code == 0 and r_old.meta else 0
        if old_ver and old_ver != ver:
            self._drop_version(old_ver)
        return self._send_patient(addr, wire.OP_DELETE, st.tier_flags | wire.FLAG_IF_VERSION, st.codec.encode(key, ver))

    def _fan_out(self, op: int, flags: int, skip: Iterable[str] = (), **fields) -> list[Reply]:
        """Sends the same keyless or prefix request to every live node at
        once. When nodes refuse it for a stale map or cannot be reached,
        the whole fan-out starts over on a newer map when _follow finds one
        (_MAP_RETRIES times at most); a prefix delete also returns the
        replies of the nodes that deleted in an earlier round (they name
        versions whose chunks the caller drops). Raises the first error."""
        kept: list[Reply] = []
        for attempt in range(_MAP_RETRIES + 1):
            st = self._st
            meta = st.keyless(**fields)
            addrs = [a for a in st.addrs if a not in st.dead and a not in skip]
            send = self._send_patient if _patient(op, flags) or self._retired else self._send
            out = self._gather([lambda a=a: send(a, op, flags | st.tier_flags, meta) for a in addrs])
            # A node found gone holds none of a retired job's values.
            out = [x for x in out if not isinstance(x, NodeGone)]
            errs = [x for x in out if isinstance(x, BaseException)]
            replies = [x for x in out if not isinstance(x, BaseException)]
            errs += [r.error() for r in replies if r.code in _REFRESH]
            if errs and attempt < _MAP_RETRIES and self._follow(errs, st, op, flags, fan_out=True, attempt=attempt):
                if op == wire.OP_DELETE:
                    kept += [r for r in replies if r.code == 0]
                continue
            for x in out:
                if isinstance(x, BaseException):
                    raise x
                if not self._holds_none(x.code, op):
                    x.check()
            return kept + [r for r in replies if r.code == 0]
        raise AssertionError("unreachable")

    def _gather(self, calls: list) -> list:
        """Runs calls, one on this thread and the others on the client's
        workers; returns, in order, each one's result or the exception it
        raised, once every call has ended."""
        def run(f):
            try:
                return f()
            except Exception as e:  # noqa: BLE001 - handed to the caller
                return e
        if len(calls) <= 1:
            return [run(f) for f in calls]
        futs = [self.client.executor().submit(run, f) for f in calls[1:]]
        try:
            first = run(calls[0])
        finally:
            rest = [f.result() for f in futs]
        return [first] + rest

    def _parallel(self, calls: list) -> list:
        """Runs calls as _gather does; returns their results in order, or
        raises the first error once every call has ended."""
        out = self._gather(calls)
        for x in out:
            if isinstance(x, BaseException):
                raise x
        return out

    # ---- put ----

    @_notes_expiry
    def put(self, key: Name, value: Buffer, *, persist: bool = False) -> None:
        """Stores value under key, replacing any older value whole (the last
        put to complete wins; a get never sees a mix). persist keeps it
        after the job is deregistered (Pocket's PERSIST_AFTER_JOB). A put
        that fails leaves the older value and no chunk behind."""
        k = _name(key)
        view = value if type(value) is bytes else memoryview(value).cast("B")
        flags = wire.FLAG_PERSIST if persist else 0
        cs = self.client.chunk_size
        try:
            with _record_noted("the value whole" if len(view) <= cs else "a chunk", min(len(view), cs), cs):
                if len(view) <= cs:
                    self._put_small(k, flags, view)
                else:
                    self._put_chunked(k, flags, memoryview(view))
        except (errors.NoSpace, errors.Busy) as e:
            # Named as the Go SDK names them (put "k": ...), with the
            # value's size: a new user's 48 threads read 17 bare "tier
            # full" refusals and could not tell which put or size each was.
            _name_key(e, "put", key)
            e.message += f" (the value is {len(view)} bytes)"
            e.args = (e._text(),)
            raise

    def _put_small(self, k: bytes, flags: int, view) -> None:
        r, _ = self._do(wire.OP_PUT, flags, k, 0, version=_new_version(), payload=view)
        if r.code or r.meta:
            r.check()
            self._drop_replaced(r)

    def _drop_replaced(self, r: Reply, own: int = 0) -> None:
        """Drops the chunks of the manifest a put or delete replaced or
        removed (its reply names the version; 0: none), unless that
        version is own, the put's own (sent twice, it replaced itself)."""
        if r.meta:
            v = r.response().version
            if v and v != own:
                self._drop_version(v)

    def _put_chunked(self, k: bytes, flags: int, view) -> None:
        """Puts view in chunks. A put refused for space after a chunk of its
        own was stored lost a race for the last of a tier (an NVMe tier
        reserves a chunk's extents as its header arrives, so puts that
        start together each take part of the room and most are refused):
        it drops its chunks, as every failed put does, and tries again with
        a new version after a random pause, up to _SPACE_RACE_RETRIES times
        (the Go SDK's spacerace.go). A put whose first chunk is refused
        fails at once. Before, a new user's trial's 48 puts of 8 MiB into a
        256 MiB NVMe tier stored 14 of the 31 that fit."""
        cs = self.client.chunk_size
        n = (len(view) + cs - 1) // cs
        for attempt in range(_SPACE_RACE_RETRIES + 1):
            w = _ObjectWrite(self, k, flags)
            try:
                # Chunks refused for a changed map go again on the new one.
                w.put_chunks([(i, view[(i - 1) * cs:i * cs]) for i in range(1, n + 1)])
            except errors.NoSpace:
                w.abort_unconfirmed()
                if attempt == _SPACE_RACE_RETRIES or not w.sent:
                    raise
                time.sleep(random.uniform(0, 0.05 * 2 ** attempt))
                continue
            except BaseException:
                w.abort_unconfirmed()
                raise
            w.commit(wire.Manifest(w.ver, len(view), cs, n))
            return

    def _drop_version(self, ver: int) -> None:
        """Deletes every chunk of version ver on every live node, the nodes
        that may be moving values first (_movers_first), in passes: again
        whole while the job's map changed during the last one (up to
        _MAP_RETRIES times more, none started after _SETTLE seconds).
        Cleanup: failures are ignored; the job's end reclaims the rest.

        A pass orders the nodes by the map it starts with, and values move
        by the map the nodes hold: when the map changes meanwhile (a node
        that joined the map leaves it again, so values that were moving to
        it now move away from it), chunks of ver can move onto a node after
        the pass asked it, and its mark of ver as dropped refuses them for
        one chunk lease only (dataplane/versions.go): they stayed until the
        job ended (test_spans_change.py; the Go SDK's drainingFirst). A pass
        that ends on the map it started with met no such change: a node
        that moved on to a newer map refuses the older one as stale, and the
        refusal fetches the newer map. Unlike a confirm, a drop may ask a
        node twice."""
        deadline = time.monotonic() + _SETTLE
        for _ in range(_MAP_RETRIES + 1):
            used = self._st.map.epoch
            try:
                self._movers_first(wire.OP_DROP_VERSION, ver)
            except errors.PocketError:
                pass
            if self._st.map.epoch == used or time.monotonic() >= deadline:
                return

    def _movers_first(self, op: int, ver: int) -> list[Reply]:
        """Sends a version request (drop-version) to every live node: to
        the ones that may be moving values (_MapState.movers)
        first, one by one, waiting while each answers busy (a chunk of the
        version is being moved), then to the others at once, which by then
        hold every chunk that moved. A mover that cannot be reached may
        have finished and left the cluster (a drained node is stopped once
        retired): when _follow finds a newer map the request goes on over
        it, to the nodes that have not answered yet. One pass: a drop
        runs it again whole when the map changed meanwhile
        (_drop_version). Returns the replies that succeeded; raises the
        first error once every node was asked."""
        answered: dict[str, Reply] = {}
        for attempt in range(_MAP_RETRIES + 1):
            st = self._st
            first = [a for a in st.movers if a not in answered]
            errs: list = []
            for a in first:
                try:
                    answered[a] = self._send_version(a, op, ver).check()
                except errors.PocketError as e:
                    errs.append(e)
            gone = [e for e in errs if isinstance(e, errors.Unavailable)]
            if gone and attempt < _MAP_RETRIES and self._follow(gone, st, op, 0, attempt=attempt):
                continue
            replies = list(answered.values())
            try:
                replies += self._fan_out(op, 0, skip=st.movers + list(answered), version=ver)
            except errors.PocketError as e:
                errs.append(e)
            if errs:
                raise errs[0]
            return replies
        raise AssertionError("unreachable")

    def _send_patient(self, addr: str, op: int, flags: int, meta: bytes, payload=None, dst=None) -> Reply:
        """Sends a request to one node, again while it answers busy (a value
        the request concerns is being moved: pauses from 1 to 50 ms, for at
        most _SETTLE seconds; a retired job's, _DROP_WAIT: the node may be
        dropping the job's temporary values). Returns the reply, unchecked."""
        return _until_not_busy(lambda: self._send(addr, op, flags, meta, payload, dst),
                               _DROP_WAIT if self._retired else _SETTLE)

    def _retired_patient(self, send) -> Reply:
        """send() once for a live job; for a retired one, again while it
        answers busy, for up to _DROP_WAIT seconds (see _DROP_WAIT)."""
        return _until_not_busy(send, _DROP_WAIT) if self._retired else send()

    def _send_version(self, addr: str, op: int, ver: int) -> Reply:
        """Sends a version request to one node, again while it answers busy
        (_send_patient) and on a new map (up to _MAP_RETRIES times) when it
        calls the map stale, or cannot be reached and a newer map still has
        it (_follow); a node gone from the map raises its Unavailable (what
        it held of the version is gone with it). Returns the reply,
        unchecked."""
        for attempt in range(_MAP_RETRIES + 1):
            st = self._st
            try:
                r = self._send_patient(addr, op, st.tier_flags, st.keyless(version=ver))
            except errors.Unavailable as e:
                if attempt < _MAP_RETRIES and self._follow([e], st, op, 0, attempt=attempt) and addr in self._st.addrs:
                    continue
                raise
            if r.code in _REFRESH and attempt < _MAP_RETRIES and self._map_changed(r.code, st, r.meta, attempt, reply=r):
                continue
            return r
        raise AssertionError("unreachable")

    # ---- get ----

    @_notes_expiry
    @_names_key("get")
    def get(self, key: Name, *, delete_after_read: bool = False) -> bytes | memoryview:
        """Returns the value under key: bytes for a value under
        buffer.MAP_MIN (64 KiB), else a writable memoryview (format "B")
        over a buffer of its own, an anonymous memory map the value was
        received into (see the buffer module; bytes(v) copies it out).
        Raises NotFound. delete_after_read deletes the version read once it
        has been read whole (Pocket's DELETE_AFTER_READ); a value written
        meanwhile stays."""
        k = _name(key)
        flags = wire.FLAG_DELETE_AFTER_READ if delete_after_read else 0
        r, _ = self._do(wire.OP_GET, flags, k)
        if r.code == 0 and not r.flags & wire.FLAG_MANIFEST:
            return r.payload  # a one-record value: one round trip
        if r.code:
            self._st.check(r, k)
        out, _ = self._get(k, None, flags, r)
        return bytes(out) if len(out) < buffer.MAP_MIN else out

    @_notes_expiry
    @_names_key("get_into")
    def get_into(self, key: Name, buf: Buffer, *, delete_after_read: bool = False) -> int:
        """Reads the value under key into buf (a writable buffer) and
        returns its length. Raises TooLarge, deleting nothing, when the
        value does not fit."""
        k = _name(key)
        view = memoryview(buf).cast("B")
        if view.readonly:
            raise TypeError("get_into needs a writable buffer")
        flags = wire.FLAG_VERSION if delete_after_read else 0
        out, ver = self._get(k, view, flags)
        if not isinstance(out, memoryview) or (len(out) and out.obj is not view.obj):
            raise errors.TooLarge(f"value of {len(out)} bytes does not fit the {len(view)}-byte buffer")
        if delete_after_read:
            self._delete_version(k, ver)  # raises when another reader took it first
        return len(out)

    def _get(self, k: bytes, dst: memoryview | None, flags: int, first: Reply | None = None):
        """Reads key's value (into dst when it fits) and returns it with its
        version; first is the reply to a get of the key already sent. A
        chunked object replaced while its chunks are read is read again; a
        version whose chunk is missing twice raises Corrupt, a key replaced
        under every one of _MAX_READ_RETRIES + 1 reads Conflict."""
        last, moved = 0, 0
        for attempt in range(_MAX_READ_RETRIES + 1):
            if first is not None:
                r, first = first, None
            else:
                r, _ = self._do(wire.OP_GET, flags, k, 0, dst=dst)
            self._st.check(r, k)
            if not r.flags & wire.FLAG_MANIFEST:
                ver = r.response().version if r.meta else 0
                return r.payload, ver
            m = wire.decode_manifest(bytes(r.payload))
            self._plausible(m)
            if dst is not None and len(dst) >= m.size:
                out = dst[:m.size]
            elif dst is not None:
                raise errors.TooLarge(f"value of {m.size} bytes does not fit the {len(dst)}-byte buffer")
            else:
                try:
                    out = buffer.alloc(m.size)
                except (MemoryError, OSError, OverflowError) as e:
                    raise errors.TooLarge(f"manifest of version {m.version:016x} claims {m.size} bytes, "
                                          f"more than this process can hold: {e}; stream it with Job.open") from None
            used = self._st
            try:
                self._get_chunks(k, m, out)
            except (errors.StaleEpoch, errors.Draining, errors.Unavailable) as e:
                # The map changed, or a chunk's node left it: read the key
                # again on a newer map.
                if moved >= _MAP_RETRIES or not self._follow([e], used, wire.OP_GET, 0, attempt=moved):
                    raise
                moved += 1
                continue
            except errors.Lost:
                # A chunk's node left the map dead: the object is lost,
                # unless it was replaced meanwhile (read the key again).
                if m.version == last or attempt == _MAX_READ_RETRIES:
                    raise
                last = m.version
                continue
            except errors.NotFound as e:
                if m.version == last:
                    raise errors.Corrupt(f"version {m.version:016x}: {e}") from None
                if attempt == _MAX_READ_RETRIES:
                    # The key kept changing, not corrupt (the Go SDK's
                    # errKeptChanging): before, a new user's readers of a
                    # key two writers kept replacing read Corrupt 9 times
                    # in 726.
                    raise errors.Conflict(f"the value was replaced each of the {_MAX_READ_RETRIES + 1} times it was read "
                                          f"(the last, version {m.version:016x}: {e}); read it again, "
                                          "or read it when its writers pause") from None
                last = m.version
                continue
            if flags & wire.FLAG_DELETE_AFTER_READ:
                try:
                    self._delete_version(k, m.version)
                except (errors.NotFound, errors.Conflict):
                    # Another reader took this version first, or a writer
                    # replaced it: read the key again.
                    if attempt == _MAX_READ_RETRIES:
                        raise
                    continue
            return out, m.version
        raise AssertionError("unreachable")

    def _plausible(self, m: wire.Manifest) -> None:
        """A manifest over TRUSTED_SIZE must not claim more bytes than the
        job's nodes hold, so a forged one cannot make us allocate it."""
        if m.size <= TRUSTED_SIZE:
            return
        stored = self.usage()
        if stored < m.size:
            raise errors.Corrupt(f"manifest of version {m.version:016x} claims {m.size} bytes, the job holds {stored}")

    def _get_chunks(self, k: bytes, m: wire.Manifest, out: memoryview) -> None:
        """Reads chunks 1..count into out, _CHUNK_WINDOW chunks at a time:
        the first failure stops it. Before, every chunk's entry was built
        first: a manifest of 4 Mi one-byte chunks (4 MiB, well under
        TRUSTED_SIZE) took 56 s and 1.5 GiB before the first chunk's "not
        found" ended the get (a hostile trial)."""
        for first in range(1, m.count + 1, _CHUNK_WINDOW):
            self._get_chunk_window(k, m, out, first, min(m.count, first + _CHUNK_WINDOW - 1))

    def _get_chunk_window(self, k: bytes, m: wire.Manifest, out: memoryview, first: int, last: int) -> None:
        st = self._st
        by_node: dict[str, list] = {}
        for i in range(first, last + 1):
            ck = wire.chunk_key(k, m.version, i)
            addr, old = st.route(ck, i)
            lo, hi = m.bounds(i)
            # A chunk whose owner changes, or whose old owner is dead, goes
            # alone (_do), which asks both or answers unavailable.
            alone = old or st.dead_old(ck, i)
            by_node.setdefault(addr if not alone else "", []).append((i, ck, out[lo:hi], old))
        calls = []
        for addr, items in by_node.items():
            if addr and not self._retired:
                calls.append(lambda a=addr, it=items: self._get_chunk_batch(a, it))
            else:
                calls.append(lambda it=items: [self._get_chunk_one(ck, i, part) for i, ck, part, _ in it])
        self._parallel(calls)

    def _get_chunk_one(self, ck: bytes, i: int, part: memoryview) -> None:
        r, _ = self._do(wire.OP_GET, 0, ck, i, dst=part)
        self._st.check(r, ck, i)
        if len(r.payload) != len(part) or not isinstance(r.payload, memoryview):
            raise errors.Corrupt(f"chunk {i} is {len(r.payload)} bytes, want {len(part)}")

    def _get_chunk_batch(self, addr: str, items: list) -> None:
        """Gets a node's chunks over one connection, _WINDOW in flight, each
        reply's payload received straight into its part of the output. The
        chunks not yet received whole go again on another connection, up to
        _LOST_RESENDS times, when the node closed or reset the connection
        (NodeUnavailable.lost), as _send_once sends a read again; before, a
        chunked get cut mid-chunk failed (a hostile check: 6 of 6)."""
        got: set[int] = set()
        self._again_while_lost(lambda: self._get_chunk_batch_once(addr, [it for it in items if it[0] not in got], got))

    def _get_chunk_batch_once(self, addr: str, items: list, got: set) -> None:
        """_get_chunk_batch's one connection: adds each chunk's index to got
        once its part is received whole."""
        st = self._st
        if addr in st.dead:
            raise NodeUnavailable(addr, f"node {addr} is dead: {DEAD_NODE_ADVICE}", sent=False)
        pool = self.client.pool
        c = pool.acquire(addr)
        try:
            parts: dict[int, tuple] = {}
            todo = collections.deque(items)
            win, busy_until, pause = _WINDOW, 0.0, 0.001
            while todo or parts:
                while todo and len(parts) < win:
                    it = todo.popleft()
                    i, ck, part, _ = it
                    rid = c.send(wire.OP_GET, st.tier_flags, st.codec.encode(ck))
                    parts[rid] = (i, part, ck, it)
                r = c.recv(lambda rid, n: parts[rid][1] if rid in parts else None, expect=wire.OP_GET | wire.REPLY_BIT)
                i, part, ck, it = parts.pop(r.id, (0, None, b"", None))
                if part is None:
                    raise c._fail(errors.Malformed(f"reply to unknown request {r.id}"))
                if r.code == errors.Code.STALE_EPOCH or r.code == errors.Code.DRAINING:
                    c.close()  # unread replies may follow; the caller retries
                    raise r.error()
                if r.code == errors.Code.BUSY:
                    # Nothing was read: an NVMe tier bounds the staging
                    # memory one owner's gets hold (a quarter of
                    # --nvme-staging), and never refuses its only one. The
                    # chunk goes again with fewer in flight once those are
                    # read, while the gets progress within _SETTLE seconds
                    # (the Go SDK's keyPatient). Before, the get failed
                    # Busy (a new user's trial: 12 of 12 gets of 4 MiB
                    # values from a node with 8 MiB of staging).
                    now = time.monotonic()
                    busy_until = busy_until or now + _SETTLE
                    if now < busy_until:
                        win = max(1, len(parts))
                        todo.appendleft(it)
                        if not parts:
                            time.sleep(pause)
                            pause = min(2 * pause, 0.05)
                        continue
                # A chunk came: the window grows back, one a reply (a
                # hostile re-check: after four busy replies one chunk was
                # in flight for the rest of the batch, 4x slower).
                busy_until, pause, win = 0.0, 0.001, min(_WINDOW, win + 1)
                st.check(r, ck, i)
                if len(r.payload) != len(part) or not isinstance(r.payload, memoryview):
                    raise errors.Corrupt(f"chunk {i} is {len(r.payload)} bytes, want {len(part)}")
                got.add(i)
        except BaseException:
            c.close()
            raise
        finally:
            pool.release(c)

    def usage(self) -> int:
        """The bytes the job's values take on the nodes of its map (values,
        chunks and manifests), summed over one usage request to each live
        node (the Go SDK's Job.Usage). A node the map marks dead is not
        asked, and what it holds is not counted: ``list().dead`` names such
        nodes, as ``pocket job show`` does. For an ended job (after
        deregister, or opened from its credential) the bytes of its
        persisted values, a node that kept none, or was found gone,
        counting 0. Raises a node's error (Unavailable for one that cannot
        be reached)."""
        return sum(r.response().size for r in self._fan_out(wire.OP_USAGE, 0))

    # ---- stat, delete ----

    @_notes_expiry
    @_names_key("stat")
    def stat(self, key: Name) -> Info:
        """A value's size and persistence, without reading it. Raises
        NotFound, or Lost for a value whose node left the map dead."""
        k = _name(key)
        r, _ = self._do(wire.OP_STAT, 0, k)
        resp = self._st.check(r, k).response()
        return Info(resp.size, bool(resp.flags & wire.FLAG_PERSIST))

    def _stat_version(self, k: bytes) -> int:
        """The version key holds (a stat). Raises NotFound or Lost."""
        r, _ = self._do(wire.OP_STAT, 0, k)
        return self._st.check(r, k).response().version

    def exists(self, key: Name) -> bool:
        """Whether key holds a value (False for one lost with its node)."""
        try:
            self.stat(key)
            return True
        except (errors.NotFound, errors.Lost):
            return False

    @_notes_expiry
    @_names_key("delete")
    def delete(self, key: Name) -> None:
        """Removes one value (and a chunked object's chunks). Raises NotFound,
        or Lost when its owner left the map dead (as get and stat do)."""
        k = _name(key)
        r, _ = self._do(wire.OP_DELETE, 0, k)
        self._st.check(r, k)
        self._drop_replaced(r)

    def _delete_version(self, k: bytes, ver: int) -> None:
        """Deletes k if it still holds version ver (what a delete-after-read
        read), then its chunks; a newer value stays. Returns only when this
        call removed ver: of readers racing to delete-after-read one
        version, exactly one returns, the others raise NotFound (another
        reader took it, or it was deleted) or Conflict (a writer replaced
        it), so each hands the value out only if it won. Raises the
        node's error when the delete fails (the value may remain)."""
        r, _ = self._do(wire.OP_DELETE, wire.FLAG_IF_VERSION, k, 0, version=ver)
        r.check()
        self._drop_replaced(r)

    # ---- directories ----

    @_notes_expiry
    def list(self, prefix: Name = "") -> Listing:
        """Every name starting with prefix (a string prefix: "a" lists "ab"
        too), ascending, from all the job's nodes; chunk keys hidden. The
        Listing (a list of Entry: name, size in bytes, dir) also names the
        nodes it could not cover
        (``partial``: some names are missing)."""
        st: list = []
        ents = self._list(_bytes(prefix), 0, st)
        m = st[0].map
        gone = self.gone_nodes()
        return Listing(ents, _dead_not_gone(m, gone), m.lost, gone)

    def _list(self, prefix: bytes, delim: int, used: list | None = None) -> list[Entry]:
        """Lists every node's names under prefix (directories collapsed at
        delim, 0: none) and merges them; starts over while the pass met or
        missed a change of the map (_pass_again). A listing that completes
        names every key that existed throughout it, once. The map state it
        ran on is appended to used, when given."""
        for attempt in range(_MAP_RETRIES + 1):
            st = self._st
            # While the map changes, the nodes values leave (draining) are
            # listed before the others and those they reach (joining) last,
            # each group in parallel (_MapState.phases): a moved value is
            # put at its new owner before it leaves the old one, so it is
            # found at one or the other; listed all at once, one that moved
            # in between could be missed.
            lists = []
            for g in st.phases:
                lists += self._gather([lambda a=a: self._list_node(st, a, prefix, delim) for a in g])
            errs = [x for x in lists if isinstance(x, BaseException)]
            # A stale map, a node that left it, or a map changed while the
            # nodes were listed: list again on the newer one.
            if self._pass_again(errs, st, wire.OP_LIST, 0, attempt):
                continue
            if errs:
                raise errs[0]
            merged: dict[bytes, wire.Entry] = {}
            for lst in lists:
                for e in lst:
                    merged[e.key] = e  # a later node's entry wins, as in Go
            if used is not None:
                used.append(st)
            return [Entry(k.decode("utf-8", "surrogateescape"), merged[k].size, merged[k].dir) for k in sorted(merged)]
        raise AssertionError("unreachable")

    def _list_node(self, st: _MapState, addr: str, prefix: bytes, delim: int) -> list:
        out, after, pager = [], b"", _Pager(addr, "listing", self.client.pool.timeout)
        while True:
            meta = wire.encode_request(st.job, prefix, st.map.token, st.map.epoch, after=after,
                                       limit=_LIST_PAGE, delimiter=delim)
            try:
                # A node queues only so many listings at once and answers
                # the rest busy (dataplane/lane.go): wait it out.
                r = self._send_patient(addr, wire.OP_LIST, st.tier_flags, meta)
            except NodeGone:
                return out  # retired or dead: none of the job's values there
            if self._holds_none(r.code, wire.OP_LIST):
                return out  # deregistered, and none of its persisted values here
            resp = r.check().response()
            _check_list_page(addr, prefix, after, resp)
            out += [e for e in resp.entries if not wire.is_chunk_key(e.key)]
            if not resp.more:
                return out
            pager.page(sum(len(e.key) + LIST_ENTRY_COST for e in resp.entries), LIST_MAX_BYTES)
            last = resp.entries[-1]
            after = last.key + (b"\xff" if last.dir else b"")

    @_notes_expiry
    def create_dir(self, d: Name) -> None:
        """Makes a directory (a marker key "d/"); an existing one is fine."""
        p = _name(_dir_prefix(d))
        r, _ = self._do(wire.OP_PUT, 0, p, 0)
        r.check()

    @_notes_expiry
    def count_files(self, d: Name = "") -> int:
        """The number of direct children (values and directories) of d.
        Raises NotFound when d neither exists nor has children, and
        Unavailable when a node of the map is dead (not asked: it may come
        back with its names), as the Go SDK's CountFiles; before, it counted
        what the other nodes held. Names on lost nodes are gone, not
        counted."""
        p = _dir_prefix(d)
        n, marker = 0, False
        used: list = []
        ents = self._list(p, ord("/"), used)
        dead = _dead_not_gone(used[0].map, self.gone_nodes())
        if dead:
            raise NodeUnavailable(dead[0], f"count files {d!r}: node {dead[0]} is dead: {DEAD_NODE_ADVICE}", sent=False)
        for e in ents:
            if _bytes(e.name) == p:
                marker = True
            else:
                n += 1
        if n == 0 and not marker and p:
            raise errors.NotFound(f"count files {d!r}")
        return n

    @_notes_expiry
    def remove_all(self, name: Name) -> int:
        """Deletes name and everything under name/ (Pocket's recursive
        delete; not other names that start with name, which list(name)
        lists). Returns the number of names deleted (name itself, and the
        values and directory markers under name/, a chunked object once:
        the Go SDK's RemoveAllCount): 0 when nothing was there, which is no
        error. A name that is empty or only slashes names the whole job: it
        raises BadKey before anything is sent (delete_all() deletes every
        value of the job), as ``pocket rm JOB /`` asks for --all; before,
        it deleted every value, so an empty prefix variable wiped the
        job."""
        if isinstance(name, (int, float, bool)) or name is None:
            # bytes(0) is b"": a number is no name (it named the whole job).
            raise errors.BadKey(f"remove_all({name!r}): want str or bytes")
        p = _dir_prefix(name)
        if not p:
            shown = _key_text(name)
            raise errors.BadKey(f"remove_all({shown}): {shown} names the whole job: "
                                "call delete_all() to delete every value of the job")
        return self._remove_prefix(p)

    @_notes_expiry
    def delete_all(self) -> int:
        """Deletes every value of the job (and its directory markers), as
        ``pocket rm --all JOB`` does; returns the number of names deleted,
        as remove_all counts them (0 for an empty job). What remove_all("")
        did before it refused a name that names the whole job."""
        return self._remove_prefix(b"")

    def _remove_prefix(self, p: bytes) -> int:
        """remove_all of the directory prefix p (b"": the whole job)."""
        counted = [0]
        for attempt in range(_MAP_RETRIES + 1):
            st = self._st
            errs = self._delete_prefix(st, p, counted)
            # A stale map, a node that left it, or a map changed while the
            # prefix delete ran: delete again on the newer one.
            if self._pass_again(errs, st, wire.OP_DELETE, wire.FLAG_PREFIX, attempt):
                continue
            if errs:
                raise errs[0]
            break
        self._settle_under(p)
        if p:
            try:
                self.delete(p[:-1])
                counted[0] += 1
            except (errors.NotFound, errors.Lost):
                pass  # nothing to delete, or gone with its node
            except errors.Revoked:
                # A retired job's node that kept none of its values holds
                # no name to delete (_holds_none; the Go SDK's RemoveAll).
                if not self._holds_none(errors.Code.REVOKED, wire.OP_DELETE):
                    raise
        return counted[0]

    def _delete_prefix(self, st: _MapState, p: bytes, counted: list | None = None) -> list:
        """Deletes the keys under prefix p on the nodes of map st, group by
        group in the order values move between them (_MapState.phases: the
        nodes values leave first), each group at once, each node asked
        again while it has more (a page at a time) and while it answers
        busy (it is moving a key under p), a group done before the next;
        drops the chunks of the objects removed. Once the nodes a value
        leaves hold nothing under p, nothing under p can arrive at the
        later groups, which are then emptied for good; all at once, the
        destinations emptied first and the movers then put values there.
        Adds the names the nodes deleted to counted[0]. Returns the errors
        met (none: done)."""
        meta = st.keyless(key=p)
        flags = wire.FLAG_PREFIX | st.tier_flags
        pagers: dict[str, _Pager] = {}
        for group in st.phases:
            while group:
                out = self._gather([lambda a=a: self._send_patient(a, wire.OP_DELETE, flags, meta) for a in group])
                more, errs = [], []
                for a, x in zip(group, out):
                    if isinstance(x, NodeGone):
                        pass  # retired or dead: none of the job's values there
                    elif isinstance(x, BaseException):
                        errs.append(x)
                    elif self._holds_none(x.code, wire.OP_DELETE):
                        pass  # deregistered, and none of its persisted values there
                    elif x.code:
                        errs.append(x.error())
                    else:
                        resp = x.response()
                        _check_delete_page(a, resp)
                        if counted is not None:
                            counted[0] += resp.count
                        for v in resp.versions:
                            self._drop_version(v)
                        if resp.more:
                            pagers.setdefault(a, _Pager(a, "prefix delete", self.client.pool.timeout)).page()
                            more.append(a)
                if errs:
                    return errs
                group = more
        return []

    # ---- streams ----

    @_names_key("open")
    def open(self, key: Name, mode: str = "rb", *, persist: bool = False, delete_after_read: bool = False,
             prefetch: int = PREFETCH) -> io.BufferedIOBase:
        """A file-like stream over one value: mode "rb" reads it chunk by
        chunk, with the next prefetch chunks (at least 1) being received
        while the caller consumes one; "wb" writes it (published whole at
        close(); a block that raises publishes nothing). Use as a context
        manager. With delete_after_read the version read is deleted at its
        end; the read that reaches the end raises NotFound (or Conflict)
        instead when another reader took that version first (or a writer
        replaced it): what it read was not this reader's to take. A read
        stream whose value is replaced while it reads raises Conflict: it
        cannot read the new value again as get and get_file do, having
        handed out part of the old one (the Go SDK's Reader and GetTo). A
        read stream's ``size`` is the value's size in bytes; a write stream's
        ``abort()`` publishes nothing (the Go SDK's Reader.Size and
        Writer.Abort)."""
        k = _name(key)
        if mode == "rb":
            return _BufferedReader(_Reader(self, k, delete_after_read, prefetch), self.client.chunk_size)
        if mode == "wb":
            return _Writer(self, k, wire.FLAG_PERSIST if persist else 0)
        raise ValueError(f"mode {mode!r}: want 'rb' or 'wb'")

    @_notes_expiry
    def put_file(self, src: str | os.PathLike, key: Name, *, persist: bool = False) -> None:
        """Uploads the local file src as key, streamed a chunk at a time
        (open "wb"); a failed upload publishes nothing (the Go SDK's
        PutFile). An upload refused for space after a chunk of its own was
        stored lost a race for the last of a tier: it is sent again from
        the file's start with a new version, as put sends a value again
        (_put_chunked). Before, put_file raised NoSpace at once where put
        would have stored the value."""
        with open(src, "rb") as f:
            for attempt in range(_SPACE_RACE_RETRIES + 1):
                w = self.open(key, "wb", persist=persist)
                try:
                    with w:
                        shutil.copyfileobj(f, w, self.client.chunk_size)
                    return
                except errors.NoSpace:
                    if attempt == _SPACE_RACE_RETRIES or w.obj is None or not w.obj.sent:
                        raise
                f.seek(0)
                time.sleep(random.uniform(0, 0.05 * 2 ** attempt))

    @_notes_expiry
    @_names_key("get_file")
    def get_file(self, key: Name, dst: str | os.PathLike, *, delete_after_read: bool = False) -> None:
        """Downloads key into the local file dst, replacing it only once the
        whole value has arrived (through a temporary file in dst's
        directory): a failed download leaves dst as it was (the Go SDK's
        GetFile). With delete_after_read the version read is deleted before
        dst is replaced; of readers racing to take one version, exactly one
        succeeds, the others read the key again (below): they raise
        NotFound, leaving dst as it was, once it is gone. A dst that names a directory
        raises IsADirectoryError before anything is deleted; a replace that
        fails after the delete leaves the temporary file, the value's only
        copy, in place, and the OSError raised names it.

        A value replaced while it is read, or taken or replaced before a
        delete_after_read deleted it, is read again, as get reads it again,
        up to _MAX_READ_RETRIES times (the Go SDK's GetFile): before, it
        raised Conflict where get went on (a new user's trial: 589 of a
        hot key's downloads)."""
        d, base = os.path.split(os.fspath(dst))
        if not os.path.isdir(d or "."):
            # Named as dst, not as the temporary file (a new user's trial
            # read ".x.part-19831-..." in a FileNotFoundError).
            raise FileNotFoundError(errno.ENOENT, f"no directory {d!r} to download {key!r} into", os.fspath(dst))
        _replaceable(dst)
        for attempt in range(_MAX_READ_RETRIES + 1):
            tmp = os.path.join(d, f".{base}.part-{os.getpid()}-{threading.get_ident()}-{random.getrandbits(32):08x}")
            try:
                self._get_file_once(key, dst, tmp, delete_after_read)
                break
            except _ReadAgain as e:
                if attempt == _MAX_READ_RETRIES:
                    raise e.err from None
        try:
            os.replace(tmp, dst)
        except OSError as e:
            if not delete_after_read:
                os.unlink(tmp)
                raise
            raise OSError(e.errno, f"the value read is in {tmp} (a delete-after-read took it from the store): "
                          f"replacing {os.fspath(dst)}: {e.strerror}") from e

    def _get_file_once(self, key: Name, dst, tmp: str, delete_after_read: bool) -> None:
        """One read of get_file into tmp (removed on failure); raises
        _ReadAgain for a failure that reading the key again may end."""
        try:
            try:
                with self.open(key, "rb") as src, open(tmp, "xb") as out:
                    shutil.copyfileobj(src, out, self.client.chunk_size)
                    raw = src.raw
                    ver = raw.m.version if raw.m else raw.ver
            except errors.Conflict as e:
                raise _ReadAgain(e) from None
            _replaceable(dst)
            if os.path.isfile(dst):
                os.chmod(tmp, stat.S_IMODE(os.stat(dst).st_mode))  # dst keeps its mode (the Go SDK's GetFile)
            if delete_after_read:
                try:
                    self._delete_version(_name(key), ver)
                except (errors.NotFound, errors.Conflict) as e:
                    raise _ReadAgain(e) from None
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _replaceable(dst) -> None:
    """Raises when a download cannot replace dst: a directory, or something
    other than a regular file (a device, a pipe, a socket: the rename would
    replace it with a regular file; a new user's download to a device node
    replaced it). The Go SDK's replaceable."""
    try:
        st = os.stat(dst)
    except OSError:
        return
    if os.path.isdir(dst) and not os.path.islink(dst):
        raise IsADirectoryError(f"{os.fspath(dst)} is a directory: a download replaces a file")
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.EINVAL, f"{os.fspath(dst)} is not a regular file: a download replaces a regular file; "
                      "to write into it, read the value with get or open(key, 'rb')", os.fspath(dst))


class _ReadAgain(Exception):
    """A read of get_file that reading the key again may end: err."""

    def __init__(self, err: Exception):
        super().__init__(str(err))
        self.err = err


class _ObjectWrite:
    """One version of a chunked object being written (see the module doc)."""

    def __init__(self, job: Job, key: bytes, flags: int):
        if not job._st.map.nodes:
            raise _ended_no_node()
        self.job, self.key, self.flags = job, key, flags
        self.ver = _new_version()
        self.sent: dict[str, int] = {}
        self._lock = threading.Lock()

    def put_chunks(self, chunks: list) -> None:
        """Puts (i, view) chunks leased, each node's over one connection.
        Chunks a node refuses because the map changed (stale epoch, a node
        draining), and those not answered by a node that cannot be reached
        (one drained from the cluster and stopped, say), are sent again
        under a newer map when _follow finds one, with the same version, up
        to _MAP_RETRIES times, as the Go SDK does per chunk: the chunks
        stored so far stay where they are (nodes do not move a leased
        chunk) and the confirm counts them there. A chunk put is the same
        bytes under the same name, so one whose reply was lost may be sent
        again. Any other error is raised once every node's batch has
        ended."""
        todo = chunks
        for attempt in range(_MAP_RETRIES + 1):
            st = self.job._st
            by_node: dict[str, list] = {}
            for i, part in todo:
                ck = wire.chunk_key(self.key, self.ver, i)
                addr, _ = st.route(ck, i)
                by_node.setdefault(addr, []).append((i, ck, part))
            again: list = []
            out = self.job._gather([lambda a=a, it=it: self._batch(st, a, it, again) for a, it in by_node.items()])
            errs = [x for x in out if isinstance(x, BaseException)]
            if not errs:
                return
            if attempt < _MAP_RETRIES and self.job._follow(errs, st, wire.OP_PUT, wire.FLAG_CHUNK, attempt=attempt):
                todo = again
                continue
            raise errs[0]

    def _batch(self, st: _MapState, addr: str, items: list, again: list) -> None:
        """Puts one node's chunks, pipelined (_WINDOW in flight). Once the
        node answers one with an error, no more are sent; every reply still
        due is read, so each chunk's fate is known. Chunks refused for a
        changed map, and those not sent, go to again (as (i, view)); the
        error raised is the first that is not such a refusal, else the
        first refusal. A connection that fails puts every chunk not
        answered in again and raises the node's Unavailable."""
        if addr in st.dead:
            with self._lock:
                again.extend((i, part) for i, _, part in items)
            raise NodeUnavailable(addr, f"node {addr} is dead: {DEAD_NODE_ADVICE}", sent=False)
        pool = self.job.client.pool
        flags = self.flags | wire.FLAG_CHUNK | wire.FLAG_LEASE | st.tier_flags
        pending: dict[int, tuple] = {}
        nxt = 0
        refusal = fatal = None
        items = list(items)
        # A chunk refused busy stored nothing (the node bounds the bytes of
        # a job's puts still arriving, dataplane/unfinished.go; an NVMe
        # tier's staging memory is taken by other transfers): it is sent
        # again, after a pause of 1 to 50 ms, while the batch makes
        # progress: up to _SETTLE seconds after its last chunk stored, as
        # the Go SDK waits _SETTLE a chunk. Before, the batch's first
        # _SETTLE bounded all of it: 1 of 12 parallel 10 MiB puts through
        # one chunk of staging failed busy.
        busy_until, pause = time.monotonic() + _SETTLE, 0.001
        try:
            c = pool.acquire(addr)
        except errors.Unavailable:
            with self._lock:
                again.extend((i, part) for i, _, part in items)
            raise
        try:
            while pending or (refusal is None and fatal is None and nxt < len(items)):
                while refusal is None and fatal is None and nxt < len(items) and len(pending) < _WINDOW:
                    i, ck, part = items[nxt]
                    pending[c.send(wire.OP_PUT, flags, st.codec.encode(ck, self.ver), part)] = (i, part)
                    nxt += 1
                r = c.recv(expect=wire.OP_PUT | wire.REPLY_BIT)
                if r.id not in pending:
                    raise c._fail(errors.Malformed(f"reply to unknown request {r.id}"))
                i, part = pending.pop(r.id)
                if r.code in _REFRESH:
                    refusal = refusal or r
                    with self._lock:
                        again.append((i, part))
                elif r.code == errors.Code.BUSY and fatal is None and refusal is not None:
                    # Stored nothing: resent with the refused ones, on the
                    # new map. Before, it became the batch's error and hid
                    # the refusal, so a fresh job's put racing its node's
                    # first map failed busy at once (2 of 12 parallel puts).
                    with self._lock:
                        again.append((i, part))
                elif r.code == errors.Code.BUSY and fatal is None and time.monotonic() < busy_until:
                    time.sleep(pause)
                    pause = min(2 * pause, 0.05)
                    items.append((i, wire.chunk_key(self.key, self.ver, i), part))
                elif r.code:
                    fatal = fatal or r
                else:
                    busy_until, pause = time.monotonic() + _SETTLE, 0.001
                    with self._lock:
                        self.sent[addr] = self.sent.get(addr, 0) + 1
        except BaseException:
            c.close()
            with self._lock:
                again.extend(pending.values())
                again.extend((i, part) for i, _, part in items[nxt:])
            raise
        finally:
            pool.release(c)
        if refusal is not None or fatal is not None:
            with self._lock:
                again.extend((i, part) for i, _, part in items[nxt:])
            (fatal or refusal).check()

    def commit(self, m: wire.Manifest) -> None:
        """Confirms the chunks on every node that took some (each must hold
        all it took), publishes the manifest, drops the replaced version. A
        failure before the manifest drops this version's chunks, as does a
        manifest put that certainly changed nothing (refused, or never
        sent). One that may have reached its node and got no reply has an
        unknown outcome: the manifest may be published, so nothing is
        dropped, neither this version's chunks nor the version it may have
        replaced, which is unknown (until the job ends). _do does not send
        it again then (_resendable)."""
        try:
            self._confirm()
        except BaseException:
            self.abort()
            raise
        try:
            r, _ = self.job._do(wire.OP_PUT, self.flags | wire.FLAG_MANIFEST, self.key, 0, version=self.ver,
                                object_size=m.size, payload=m.encode())
        except errors.Unavailable as e:
            if not getattr(e, "sent", True):
                self.abort()
                raise
            raise NodeUnavailable(getattr(e, "addr", ""), f"manifest of version {self.ver:016x}: outcome unknown "
                                  f"(the value may be stored; its chunks are kept): {e}", sent=True) from e
        if r.code:
            if r.code not in (errors.Code.UNAVAILABLE, errors.Code.CLOSED):
                self.abort()
            r.check()
        # The version replaced is this one only when this very manifest was
        # put before (test_manifest_put_again_keeps_its_chunks commits
        # twice): its chunks are the value just published.
        self.job._drop_replaced(r, own=self.ver)

    def _confirm(self) -> None:
        """Ends the chunks' leases, one request per node that took chunks,
        each of which must hold exactly the chunks it took (fewer: a lease
        ran out, and the put fails), as the Go SDK's confirm. Nodes never
        move a chunk of a version still leased (dataplane/migrate.go), so
        the counts hold whatever changes the job's map goes through
        meanwhile: a node leaves a map only once its values have moved,
        which waits for this confirm. Each request follows the map to a
        newer epoch and waits out a node that answers busy (_send_version).

        A confirmed chunk may move at once, and a node counts only the
        chunks still there (dataplane/versions.go), so no node is asked
        twice once it has answered. Before, while a node could be moving
        values, every node of the map was asked and the counts summed; a
        stale refusal from one node sent the whole fan-out again, asking
        again nodes that had answered, which by then had moved a chunk on:
        "the job's nodes hold 23 of the 24 chunks sent"
        (test_join.py's test_confirm_asks_each_node_once)."""
        job = self.job

        def one(addr: str) -> None:
            r = job._send_version(addr, wire.OP_CONFIRM, self.ver).check()
            got = r.response().count
            if got != self.sent[addr]:
                raise errors.Conflict(f"node {addr} holds {got} of the {self.sent[addr]} chunks it took "
                                      "(its chunk lease expired, or the node restarted or left the job's map "
                                      "and its chunks went with it): nothing was published, put the value again")
        job._parallel([lambda a=a: one(a) for a in self.sent])

    def abort(self) -> None:
        self.job._drop_version(self.ver)

    def abort_unconfirmed(self) -> None:
        """abort before any chunk was confirmed: a node's chunk lease frees
        what the drop does not reach, so no map fetch of the drop waits
        for an away controller (the Go SDK's abortUnconfirmed). Before, a
        chunked put to nodes whose leases had lapsed with the controller
        down waited for it twice (a trial: 6 s with a 3 s wait)."""
        nf = self.job._no_fetch
        nf.on = True
        try:
            self.job._drop_version(self.ver)
        finally:
            nf.on = False


class _Writer(io.BufferedIOBase):
    """A value written as a stream: chunks go out as they fill; close()
    publishes the manifest (or, for a value of at most one chunk, puts it
    as one record). Leaving a ``with`` block by an exception publishes
    nothing and drops the chunks written, and so does a stream dropped
    without close() (garbage-collected: io.IOBase's finalizer would call
    close(), publishing the part written so far as the whole value)."""

    def __init__(self, job: Job, key: bytes, flags: int):
        super().__init__()
        self.job, self.key, self.flags = job, key, flags
        self.cs = job.client.chunk_size
        self.buf = bytearray()
        self.size = 0
        self.n = 0
        self.obj: _ObjectWrite | None = None
        self.pending: list = []  # full chunks not sent yet: (number, bytes)
        self._failed = False

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if self.closed:
            raise ValueError("write to a closed stream")
        if self._failed:
            # close() will publish nothing: sending more chunks is waste.
            raise errors.PocketError(f"writing {_key_text(self.key)}: an earlier write of this stream failed; "
                                     "close it (nothing is published) and write the value again")
        view = memoryview(b).cast("B")
        self.buf += view
        while len(self.buf) > self.cs:
            self._take_chunk(self.cs)
        if len(self.pending) >= self.job.client.parallel:
            with _record_noted("a chunk", self.cs, self.cs):
                self._send_pending()
        return len(view)

    def _take_chunk(self, n: int) -> None:
        self.n += 1
        self.pending.append((self.n, bytes(memoryview(self.buf)[:n])))
        del self.buf[:n]
        self.size += n

    def _send_pending(self) -> None:
        """Puts the full chunks gathered so far, in parallel over their
        nodes (at most `parallel` chunks are held in memory)."""
        if self.obj is None:
            self.obj = _ObjectWrite(self.job, self.key, self.flags)
        try:
            self.obj.put_chunks(self.pending)
        except BaseException:
            self._failed = True
            raise
        finally:
            self.pending = []

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._failed:
                if self.obj is not None:
                    self.obj.abort_unconfirmed()
                return
            if self.n == 0:
                with _record_noted("the value whole", len(self.buf), self.cs):
                    self.job._put_small(self.key, self.flags, memoryview(self.buf))
            else:
                if self.buf:
                    self._take_chunk(len(self.buf))
                try:
                    with _record_noted("a chunk", self.cs, self.cs):
                        self._send_pending()
                except BaseException:
                    # The chunks written go, as after a write's failure
                    # (before, these stayed until their lease ended).
                    self.obj.abort_unconfirmed()
                    raise
                self.obj.commit(wire.Manifest(self.obj.ver, self.size, self.cs, self.n))
        finally:
            super().close()

    def abort(self) -> None:
        """Closes the stream publishing nothing: the chunks written so far
        are dropped and any older value stays (the Go SDK's
        Writer.Abort)."""
        if not self.closed:
            self._failed = True
            self.close()

    def __exit__(self, typ, exc, tb):
        if typ is not None:
            self._failed = True
        self.close()

    def __del__(self):
        # Only close() publishes; a stream nobody closed is abandoned.
        if not self.closed:
            self._failed = True
            try:
                self.close()
            except Exception:  # a finalizer cannot raise; the chunks live until the job ends
                pass


class _BufferedReader(io.BufferedReader):
    """What Job.open returns to read: a BufferedReader with the value's size."""

    @property
    def size(self) -> int:
        """The value's size in bytes."""
        return self.raw.size


class _Reader(io.RawIOBase):
    """A value read as a stream, one chunk at a time. While the caller
    consumes one chunk, the next ``prefetch`` chunks are being received on
    the client's workers, each into a chunk buffer of the reader's own (at
    most prefetch + 1 buffers, reused once consumed). If the object is
    replaced after bytes of it were handed out, reading on raises Conflict
    (nothing returned was torn; read again). An error fetching a chunk is
    raised by the read that reaches it, and by every read after it."""

    def __init__(self, job: Job, key: bytes, delete_after_read: bool, prefetch: int = PREFETCH):
        super().__init__()
        if prefetch < 1:
            raise ValueError(f"prefetch {prefetch}: want at least 1 chunk")
        self.job, self.key, self.dar, self.depth = job, key, delete_after_read, prefetch
        r, _ = job._do(wire.OP_GET, wire.FLAG_VERSION, key, 0)
        job._st.check(r, key)
        self.m: wire.Manifest | None = None
        self.cur = memoryview(r.payload)
        self._size = len(self.cur)
        self.off = 0  # bytes of cur consumed
        self.ver = 0
        self.asked = 0  # chunks asked for so far, 1..asked
        self.ahead: collections.deque = collections.deque()  # (future, chunk view, its buffer)
        self.free: list[memoryview] = []  # consumed chunk buffers
        self.base: memoryview | None = None  # the buffer under cur
        self._failed: BaseException | None = None  # what every read raises once one failed
        if r.flags & wire.FLAG_MANIFEST:
            self.m = wire.decode_manifest(bytes(r.payload))
            self._size = self.m.size
            job._plausible(self.m)
            self.cur = memoryview(b"")
            self._ask()
        elif r.meta:
            self.ver = r.response().version

    @property
    def size(self) -> int:
        """The value's size in bytes."""
        return self._size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._failed is not None:
            raise self._failed
        # A stream of a closed Client refuses, as its job's calls do. A new
        # user's trial read on after Client.close() and got a bare
        # RuntimeError from the shut workers (a value of one chunk read on).
        self.job.client._check_open()
        out = memoryview(b).cast("B")
        if self.off == len(self.cur):
            try:
                more = self._next()
            except BaseException as e:
                # A stream that failed stays failed. Before, the next read
                # went on with the chunk after the one that failed (its
                # fetch had been taken off the queue), or, past the last,
                # answered the end of the value (and a delete-after-read
                # deleted it): a caller reading on after an error got a
                # value with a chunk missing, or cut short.
                self._failed = e if isinstance(e, errors.PocketError) else errors.PocketError(
                    f"reading {_key_text(self.key)}: the stream failed earlier ({type(e).__name__}); open the value again")
                raise
            if not more:
                return 0
        n = min(len(out), len(self.cur) - self.off)
        out[:n] = self.cur[self.off:self.off + n]
        self.off += n
        return n

    def _ask(self) -> None:
        """Starts fetching chunks until depth of them are in flight or
        received but not yet consumed."""
        m = self.m
        while len(self.ahead) < self.depth and self.asked < m.count:
            self.asked += 1
            lo, hi = m.bounds(self.asked)
            base = self.free.pop() if self.free else buffer.alloc(min(m.chunk, m.size))
            part = base[:hi - lo]
            fut = self.job.client.executor().submit(
                self.job._get_chunk_one, wire.chunk_key(self.key, m.version, self.asked), self.asked, part)
            self.ahead.append((fut, part, base))

    def _next(self) -> bool:
        """Makes the next chunk current; False at the end of the value."""
        if self.base is not None:
            self.free.append(self.base)
            self.base = None
        if not self.ahead:
            self._done()
            return False
        fut, part, base = self.ahead.popleft()
        try:
            fut.result()
        except errors.NotFound:
            raise self._gone() from None
        except errors.Lost:
            if self._replaced():
                raise self._gone() from None
            raise
        self._ask()  # after the wait: at most depth fetches at once
        self.cur, self.off, self.base = part, 0, base
        return True

    def _replaced(self) -> bool:
        """Whether the key no longer holds the version being read."""
        try:
            return self.job._stat_version(self.key) != self.m.version
        except errors.NotFound:
            return True

    def _gone(self) -> errors.PocketError:
        """The error for a version whose chunk went while being read:
        NotFound when the key is gone (deleted, or taken by another
        delete-after-read reader), else Conflict (replaced)."""
        try:
            self.job._stat_version(self.key)
        except errors.NotFound:
            return errors.NotFound(
                f"object {_key_text(self.key)} was deleted (or taken by another delete-after-read reader) while being read")
        return errors.Conflict(f"object {_key_text(self.key)} was replaced while being read")

    def _done(self) -> None:
        if self.dar:
            self.dar = False
            self.job._delete_version(self.key, self.m.version if self.m else self.ver)

    def close(self) -> None:
        """Stops the chunk fetches not started yet; the ones running finish
        on their own into buffers nobody reads."""
        for fut, _, _ in self.ahead:
            fut.cancel()
        self.ahead.clear()
        super().close()
