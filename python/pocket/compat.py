"""Pocket's module API (pocket.py), with its names, arguments, defaults and
return conventions: 0 on success and -1 on error (counts or -1;
register_job returns the job id, or None on error). ``last_error()`` is
the exception behind the last -1 (or None) of the calling thread: every
call that succeeds, connect included, clears it.

Jobs and tokens. The controller is found as Pocket's lambdas found it:
``connect(hostname, port)``, and POCKET_CONTROLLER=host:port for
register_job and deregister_job (and for connect with an empty hostname);
mutual TLS with the client certificate in POCKET_TLS_DIR when it is set. A
job registered in this process keeps its token in the process (and in
processes forked from it); elsewhere the token comes from POCKET_TOKEN
(hex, Job.token_hex), with POCKET_JOB naming the job it belongs to.
A job registered in this process and not deregistered by its exit is
named then by a LiveJobsAtExit warning (it stays registered: nothing is
deregistered at exit); a job only opened here with a token or a
credential is not.

Persisted values. After deregister_job the job's PERSIST_AFTER_JOB values
stay readable and deletable (read-only) in the process that deregistered
it, and elsewhere with POCKET_CREDENTIAL set to the job's credential
(``job_credential(jobid)`` gives it after deregister_job; ``pocket job
deregister`` prints it; Job.credential() gives it): a
POCKET_CREDENTIAL that names the job is used whatever token is also set,
opened with Client.open_credential (a live job's opens with its current
map), as the Go compat layer does.

Names. Pocket named a value /jobid/name, so "x" and "/x" were one file:
leading slashes are dropped here too. The ``jobid`` argument may name a
job whose token this process has (registered here with register_job or
Client.register_job, or POCKET_TOKEN's) or, as in Pocket's examples (``create_dir(p, dir, "")``,
then ``put_buffer(..., dir)``), a top-level directory of the default job:
the job registered last in this process, else POCKET_JOB. An empty jobid
is the default job itself.

Where Python 3 makes Pocket's exact meaning impossible:

- get_buffer fills a writable buffer (bytearray, memoryview, array, numpy
  array) in place. Given an immutable one (str or bytes, as Pocket's
  examples passed), it reads and checks the value as usual and leaves its
  bytes in ``handle.last_value``, as nothing can be written into a str.
- put_buffer takes bytes-like data or a str (sent as UTF-8); ``len`` is in
  bytes. A str is stored whole: a ``len`` other than its UTF-8 length in
  bytes (``len(s)`` of a non-ASCII str counts characters) is refused
  (ValueError), never cut to a prefix of its bytes.
- get_buffer's ``len`` is the value's exact size in bytes: a value of any
  other size fails (LengthMismatch), as in Pocket.
- delete of an empty name (or only slashes) under a job fails (BadKey):
  it would name the whole job. Job.delete_all() of the Pythonic API, or
  ``pocket rm --all JOB``, deletes every value of a job.
- Overwriting a name replaces it (Pocket refused), and deregister_job
  really deletes the job's data except PERSIST_AFTER_JOB values.
"""

from __future__ import annotations

import os
import threading

from . import errors, wire
from .client import Client, Job, _decode_credential, _name_key, credential_job, registered_token

_tls = threading.local()
_lock = threading.Lock()
_tokens: dict[str, bytes] = {}  # jobs registered in this process: id -> token
_registered: list[str] = []  # their ids, oldest first
# Jobs deregistered by this process: a handle's Job of one reads and
# deletes its persisted values as retired (Job._retired: a node holding
# none of them answers revoked, which is then nothing there), routed by the
# map in the job's credential.
_deregistered: set[str] = set()
# Their credentials (Job.credential), with which any handle of this process
# opens them.
_creds: dict[str, str] = {}
# At most this many, the newest (the controller keeps at most 4096 ended
# jobs' final maps): a process deregistering jobs for ever kept every one,
# about 480 bytes a job. An older job's persisted values stay readable with
# POCKET_CREDENTIAL.
_MAX_CREDS = 4096


def last_error() -> BaseException | None:
    """The exception behind the last -1 (or None) returned to this thread."""
    return getattr(_tls, "err", None)


def _fail(e: BaseException, h: "Handle | None" = None) -> int:
    _tls.err = e
    if h is not None:
        h.err = e
    return -1


def _ok(h: "Handle | None" = None) -> int:
    _tls.err = None
    if h is not None:
        h.err = None
    return 0


def _controller_addr() -> str:
    a = os.environ.get("POCKET_CONTROLLER", "")
    if not a:
        raise errors.PocketError("POCKET_CONTROLLER is not set (host:port of the controller)", errors.Code.UNSUPPORTED)
    return a


def register_job(jobname, num_lambdas=0, capacityGB=0, peakMbps=0, latency_sensitive=1):
    """Registers a job (hints: lambdas, GB, Mb/s; 0: not given) and returns
    its id, "jobname-<int>", or None on error. latency_sensitive defaults to
    1, as Pocket's register_job does: the job then goes to DRAM, and one
    that DRAM cannot hold is refused; pass latency_sensitive=0 to let the
    controller pick the cheapest tier that serves it (NVMe included)."""
    try:
        with Client(_controller_addr()) as c:
            j = c.register_job(jobname, lambdas=int(num_lambdas), capacity_bytes=int(capacityGB * (1 << 30)),
                               peak_mbps=float(peakMbps), latency_sensitive=bool(latency_sensitive))
    except Exception as e:  # noqa: BLE001 - Pocket's convention: report, return None
        _fail(e)
        return None
    with _lock:
        _tokens[j.id] = j.token
        _registered.append(j.id)
    _ok()
    return j.id


def job_token(jobid):
    """The token (hex) of a job registered in this process, with
    register_job or with the Pythonic Client.register_job (then the same
    as Job.token_hex), for a launcher to pass to its workers as
    POCKET_TOKEN (with POCKET_JOB=jobid); None when this process did not
    register it, or deregistered it."""
    with _lock:
        tok = _tokens.get(jobid)
    if tok is None:
        tok = registered_token(jobid)
    return tok.hex() if tok is not None else None


def job_credential(jobid):
    """The credential of a job (Job.credential's string, the Go SDK's
    Credential, what ``pocket job deregister`` prints as
    POCKET_CREDENTIAL), for a launcher to hand to the processes that read
    or delete the job's PERSIST_AFTER_JOB values after it ends, as
    POCKET_CREDENTIAL. For a job deregistered with deregister_job in this
    process, the one it kept (taken with the deregistration's map); else
    POCKET_CREDENTIAL when it names jobid; else, for a live job whose token
    this process has (registered here, or POCKET_TOKEN and POCKET_JOB),
    one with its current map, fetched from POCKET_CONTROLLER (take it again
    after deregister_job: a drain meanwhile moves the values). None when
    there is none, or on error (last_error() says which). A secret: it
    reads and deletes the job's values."""
    try:
        cred = _credential_of(jobid)
        if cred is None:
            tok = _token_of(jobid)
            if tok is None:
                raise errors.BadToken(f"no credential for job {jobid!r}: register or deregister it here, "
                                      "or set POCKET_TOKEN and POCKET_JOB, or POCKET_CREDENTIAL")
            with Client(_controller_addr()) as c:
                cred = c.open_job(jobid, tok).credential()
    except Exception as e:  # noqa: BLE001 - Pocket's convention: report, return None
        _fail(e)
        return None
    _ok()
    return cred


def deregister_job(jobid):
    """Releases the job and deletes its data except PERSIST_AFTER_JOB
    values; 0 or -1. The process keeps the job's credential, taken with
    the map the deregistration fetched (Job.deregister), by which this
    process's handles find the persisted values from then on. A map's
    dead nodes are no failure (0); live nodes that did not drop the job's
    data return -1 with a DropError (last_error), yet the job is
    deregistered and read as such, as after 0. A job this process
    deregistered already returns -1 with UnknownJob ("has ended
    already")."""
    try:
        with _lock:
            again = jobid in _deregistered
        if again:
            # Its token went with the deregistration (_ended): say so, as
            # the controller and `pocket job deregister` do, rather than
            # ask for a token.
            raise errors.UnknownJob(f"job {jobid} is not registered: it has ended already (this process deregistered "
                                    "it). Its data was dropped, except values put with PERSIST_AFTER_JOB, which stay "
                                    "readable here, and elsewhere with POCKET_CREDENTIAL set to job_credential(jobid)")
        tok = _token_of(jobid)
        if tok is None:
            raise errors.BadToken(f"no token for job {jobid!r}: register it here or set POCKET_TOKEN and POCKET_JOB")
        with Client(_controller_addr()) as c:
            j = c.open_job(jobid, tok)
            try:
                j.deregister(count_persisted=False)
            except errors.DropError as e:
                # Deregistered: live nodes did not drop its data (-1).
                _ended(jobid, j.credential())
                return _fail(e)
            cred = j.credential()
    except Exception as e:  # noqa: BLE001
        return _fail(e)
    _ended(jobid, cred)
    return _ok()


def _ended(jobid: str, cred: str) -> None:
    """Records jobid deregistered: the process's handles read its persisted
    values through cred, the map its deregistration took."""
    with _lock:
        _tokens.pop(jobid, None)
        _deregistered.add(jobid)
        _creds.pop(jobid, None)
        _creds[jobid] = cred
        while len(_creds) > _MAX_CREDS:
            old = next(iter(_creds))
            del _creds[old]
            _deregistered.discard(old)
        if jobid in _registered:
            _registered.remove(jobid)


def _token_of(jobid: str) -> bytes | None:
    """The token of jobid this process has: a job it registered here,
    with register_job or with the Pythonic Client.register_job (as
    job_token finds it), else POCKET_TOKEN when POCKET_JOB names jobid or
    is unset. Before, a Client-registered job's id was not found here, so
    put_buffer(..., job.id) took it for a directory of the module API's
    job and stored the value there (a new user's trial)."""
    with _lock:
        if jobid in _tokens:
            return _tokens[jobid]
    tok = registered_token(jobid)
    if tok is not None:
        return tok
    env = os.environ.get("POCKET_TOKEN", "")
    if env and os.environ.get("POCKET_JOB", jobid) == jobid:
        try:
            return bytes.fromhex(env)
        except ValueError:
            raise errors.BadToken("POCKET_TOKEN is not hex") from None
    return None


def _credential_of(jobid: str) -> str | None:
    """The credential to open jobid with: kept when this process
    deregistered it, else POCKET_CREDENTIAL when it names jobid (the Go
    compat layer's credentialOf). A POCKET_CREDENTIAL that is not a
    credential at all raises BadToken naming it, as a POCKET_TOKEN that is
    not hex does: ignored, it would end in a misleading "no token"."""
    with _lock:
        if jobid in _creds:
            return _creds[jobid]
    env = os.environ.get("POCKET_CREDENTIAL", "")
    if not env:
        return None
    try:
        named = credential_job(env)
    except errors.PocketError as e:
        raise errors.BadToken(f"POCKET_CREDENTIAL is not a job credential: {e}") from None
    return env if named == jobid else None


def _default_job() -> str:
    with _lock:
        if _registered:
            return _registered[-1]
    env = os.environ.get("POCKET_JOB", "")
    if env:
        return env
    raise errors.UnknownJob("no job: register one in this process or set POCKET_JOB and POCKET_TOKEN")


class Handle:
    """What connect returns: a client of the cluster and the jobs opened
    through it. ``err`` is the exception behind its last -1; ``last_value``
    the bytes of the last get_buffer into an immutable buffer."""

    def __init__(self, client: Client):
        self.client = client
        self.jobs: dict[str, Job] = {}
        self.dirs: set[str] = set()  # jobid arguments found to be directories
        self.err: BaseException | None = None
        self.last_value: bytes | None = None
        self._lock = threading.Lock()

    def _job(self, jobid: str) -> Job:
        with self._lock:
            j = self.jobs.get(jobid)
        if j is not None:
            with _lock:
                cred = _creds.get(jobid) if jobid in _deregistered else None
            if cred is not None and not j._retired:
                # Deregistered since: its persisted values are where the
                # map the deregistration took puts them, which this
                # handle's (fetched before a drain, say) may not.
                j._retire(*_decode_credential(cred))
            return j
        cred = _credential_of(jobid)
        if cred is not None:
            j = self.client.open_credential(cred)
        else:
            tok = _token_of(jobid)
            if tok is None:
                raise errors.BadToken(f"no token for job {jobid!r}: register it here, or set POCKET_TOKEN and POCKET_JOB, "
                                      "or POCKET_CREDENTIAL for a deregistered job's persisted values")
            j = self.client.open_job(jobid, tok)
        with self._lock:
            self.jobs[jobid] = j
        return j

    def resolve(self, jobid: str, name: str) -> tuple[Job, str]:
        """The job and key a (jobid, name) pair of Pocket's calls names."""
        name = (name or "").lstrip("/")
        jobid = (jobid or "").strip("/")
        if not jobid:
            return self._job(_default_job()), name
        if jobid not in self.dirs:
            try:
                return self._job(jobid), name
            except (errors.BadToken, errors.UnknownJob):
                try:
                    default = _default_job()
                except errors.UnknownJob:
                    raise
                if default == jobid:
                    raise
                self.dirs.add(jobid)
        return self._job(_default_job()), jobid + "/" + name if name else jobid


def connect(hostname, port):
    """A handle to the controller at hostname:port (an empty hostname:
    POCKET_CONTROLLER). Nothing is sent until a call needs it. Like every
    call here that succeeds, it clears last_error(); one that fails (no
    POCKET_CONTROLLER, say) raises, as Pocket's had no -1 to return, and
    last_error() is that exception."""
    try:
        addr = f"{hostname}:{port}" if hostname else _controller_addr()
        if ":" in str(hostname) and not str(hostname).startswith("["):
            addr = f"[{hostname}]:{port}"
        h = Handle(Client(addr))
    except Exception as e:
        _fail(e)
        raise
    _ok()
    return h


def _run(h: Handle, f) -> int:
    try:
        f()
    except Exception as e:  # noqa: BLE001 - 0 / -1 is the API
        return _fail(e, h)
    return _ok(h)


def put(pocket, src_filename, dst_filename, jobid, PERSIST_AFTER_JOB=False):
    """Uploads the local file src_filename as dst_filename; 0 or -1."""
    def f():
        job, key = pocket.resolve(jobid, dst_filename)
        job.put_file(src_filename, key, persist=bool(PERSIST_AFTER_JOB))
    return _run(pocket, f)


def put_buffer(pocket, src, len, dst_filename, jobid, PERSIST_AFTER_JOB=False):  # noqa: A002 - Pocket's name
    """Stores the first len bytes of src (bytes-like) as dst_filename; a
    str is stored whole as UTF-8, len its length in bytes (a len that is
    not fails: -1 with a ValueError, rather than storing a cut value, as
    len(s) of a non-ASCII str counts characters); 0 or -1."""
    def f():
        if isinstance(src, str):
            data = memoryview(src.encode())
            if len != data.nbytes:
                raise ValueError(
                    f"put_buffer: a str is stored whole, as UTF-8, and len must be its length in bytes: this one is "
                    f"{src.__len__()} characters, {data.nbytes} bytes, and len is {len} (pass len(s.encode()), or "
                    "bytes and the number of their bytes to store)")
        else:
            data = memoryview(src).cast("B")
        if not 0 <= len <= data.nbytes:
            raise ValueError(f"put_buffer: length {len} outside the {data.nbytes}-byte buffer")
        job, key = pocket.resolve(jobid, dst_filename)
        job.put(key, data[:len], persist=bool(PERSIST_AFTER_JOB))
    return _run(pocket, f)


def get(pocket, src_filename, dst_filename, jobid, DELETE_AFTER_READ=False):
    """Downloads src_filename into the local file dst_filename; 0 or -1.
    With DELETE_AFTER_READ the value read is deleted once the file is
    written whole."""
    def f():
        job, key = pocket.resolve(jobid, src_filename)
        try:
            job.get_file(key, dst_filename, delete_after_read=bool(DELETE_AFTER_READ))
        except (errors.NotFound, errors.Lost) as e:
            _name_key(e, "get", key)  # the call the user made, not get_file
            raise
    return _run(pocket, f)


class LengthMismatch(errors.PocketError):
    """get_buffer's error when the value is not ``len`` bytes (Pocket's
    caller must know the length; DELETE_AFTER_READ then deletes nothing).
    Its text says which way the sizes differ, as the Go compat layer's
    "value is N bytes, want M" does, and names no wire code: before, every
    mismatch read "too large", a value shorter than len too. ``code`` is
    TOO_LARGE for a value longer than len, CONFLICT (the call's condition,
    the size, did not hold) for a shorter one."""

    def _text(self) -> str:
        return "pocket: " + self.message

    @classmethod
    def of(cls, name, size: int, want: int, str_dst: bool = False) -> "LengthMismatch":
        way = "longer" if size > want else "shorter"
        msg = (f"get_buffer {name!r}: value is {size} bytes, {way} than len {want} "
               "(len must be the value's exact size in bytes, as in Pocket")
        msg += ", not a str's characters)" if str_dst else ")"
        return cls(msg, errors.Code.TOO_LARGE if size > want else errors.Code.CONFLICT)


def get_buffer(pocket, src_filename, dst, len, jobid, DELETE_AFTER_READ=False):  # noqa: A002
    """Reads src_filename, which must be exactly len bytes, into dst[:len];
    0 or -1 (then DELETE_AFTER_READ deletes nothing). An immutable dst (str,
    bytes) cannot be filled: the bytes go to pocket.last_value instead."""
    def f():
        job, key = pocket.resolve(jobid, src_filename)
        try:
            fill(job, key)
        except (errors.NotFound, errors.Lost) as e:
            _name_key(e, "get_buffer", key)
            raise

    def fill(job, key):
        try:
            view = memoryview(dst).cast("B")
            writable = not view.readonly
        except TypeError:
            writable = False
        if writable:
            if not 0 <= len <= view.nbytes:
                raise ValueError(f"get_buffer: length {len} outside the {view.nbytes}-byte buffer")
            try:
                out, ver = job._get(key.encode(), view[:len], wire.FLAG_VERSION)
            except errors.TooLarge as e:
                # A chunked value longer than len: "value of N bytes does
                # not fit the len-byte buffer", said of this call.
                e.message = f"get_buffer {src_filename!r}: {e.message} (len must be the value's exact size in bytes)"
                e.args = (e._text(),)
                raise
            if out.__len__() != len:
                raise LengthMismatch.of(src_filename, out.__len__(), len)
            if len and not (isinstance(out, memoryview) and out.obj is view.obj):
                view[:len] = out
        else:
            data, ver = job._get(key.encode(), None, wire.FLAG_VERSION)
            if data.__len__() != len:
                raise LengthMismatch.of(src_filename, data.__len__(), len, isinstance(dst, str))
            pocket.last_value = bytes(data)
        if DELETE_AFTER_READ:
            job._delete_version(key.encode(), ver)  # raises when another reader took it first
    return _run(pocket, f)




def lookup(pocket, src_filename, jobid):
    """0 when src_filename exists as a value or a directory, else -1."""
    def f():
        job, key = pocket.resolve(jobid, src_filename)
        if not (job.exists(key) or job.exists(key.rstrip("/") + "/")):
            raise errors.NotFound(f"lookup {src_filename!r}: key not found")
    return _run(pocket, f)


def delete(pocket, src_filename, jobid):
    """Deletes src_filename recursively; 0 or -1. An empty name (or only
    slashes) under a jobid that is a directory of the default job (as in
    Pocket's examples) deletes that directory; under a job (or the
    default job) it would name the whole job, and fails (-1, BadKey)
    before anything is sent: Job.delete_all() of the Pythonic API deletes
    every value of a job. Before, it did, so an empty name variable wiped
    the job."""
    def f():
        job, key = pocket.resolve(jobid, src_filename)
        if not key.strip("/"):
            raise errors.BadKey(f"delete({src_filename!r}, {jobid!r}): {src_filename!r} names the whole job {job.id}: "
                                "delete names what it deletes (a value, or a directory with what is under it); "
                                "Job.delete_all() of pocket.Client's API deletes every value of the job")
        job.remove_all(key)
    return _run(pocket, f)


def create_dir(pocket, src_filename, jobid):
    """Makes a directory (an existing one is fine); 0 or -1."""
    def f():
        job, key = pocket.resolve(jobid, src_filename)
        job.create_dir(key)
    return _run(pocket, f)


def count_files(pocket, dirname, jobid):
    """The number of direct children of dirname, or -1."""
    out = [-1]

    def f():
        job, key = pocket.resolve(jobid, dirname)
        out[0] = job.count_files(key)
    return out[0] if _run(pocket, f) == 0 else -1


def close(pocket):
    """Closes the handle's connections; 0."""
    return _run(pocket, pocket.client.close)
