"""The project's wire protocol, as package wire (Go) defines it.

A frame is a 24-byte little-endian header, a flatbuffer of ``meta_len``
bytes (the tables of wire/data.fbs and wire/control.fbs, whose generated
Python is in ``pocket.fb``) and ``payload_len`` raw payload bytes::

    offset size field
    0      2    magic 'P','K'
    2      1    version 1
    3      1    opcode; a reply's is the request's | 0x80
    4      2    flags (FLAG_*); in a get reply, the value's stored flags
    6      2    code: 0 in requests; a reply's error code (errors.Code)
    8      8    request id, echoed in the reply
    16     4    meta length
    20     4    payload length

Objects larger than one chunk (wire/objects.go): chunk i (1..n) of version v
of key k is stored under ``k 0x00 <v as 16 hex digits> 0x00 <i>``, and the
manifest under k is 28 bytes: ``"PKM2"``, version (u64), object size (u64),
chunk size (u32), chunk count (u32).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import flatbuffers

from . import errors
from .fb import DropResult as _fbDropResult
from .fb import JobRef as _fbJobRef
from .fb import JobRegister as _fbJobRegister
from .fb import PlacementMap as _fbPlacementMap
from .fb import Response as _fbResponse

HEADER_LEN = 24
MAGIC = b"PK"
VERSION = 1
REPLY_BIT = 0x80

# Data-plane opcodes (wire/header.go).
OP_PING = 0x01
OP_PUT = 0x02
OP_GET = 0x03
OP_DELETE = 0x04
OP_STAT = 0x05
OP_LIST = 0x06
OP_USAGE = 0x08
OP_CONFIRM = 0x09
OP_DROP_VERSION = 0x0A

# Control-plane opcodes (wire/control.go).
OP_REGISTER_JOB = 0x42
OP_DEREGISTER_JOB = 0x43
OP_GET_MAP = 0x44
OP_CHALLENGE = 0x48  # any controller answers it at once (its stall probe)
OP_GO_AWAY = 0x49

# Header flags (wire/header.go).
FLAG_PERSIST = 1 << 0
FLAG_DELETE_AFTER_READ = 1 << 1
FLAG_TIER_NVME = 1 << 2
FLAG_MANIFEST = 1 << 3
FLAG_PREFIX = 1 << 4
FLAG_CHUNK = 1 << 5
FLAG_LEASE = 1 << 6
FLAG_IF_ABSENT = 1 << 7
FLAG_IF_VERSION = 1 << 8
FLAG_VERSION = 1 << 9

TIER_DRAM = 1
TIER_NVME = 2

NODE_ACTIVE = 1
NODE_DRAINING = 2
NODE_DEAD = 3
# In one job's map only: the node is in the job's placement (it owns its
# share of keys), but values it now owns may still be at their owner under
# the map without the joining nodes, which is moving them to it.
NODE_JOINING = 4

# Limits (wire/limits.go, wire/control.go).
MAX_META = 64 << 10
MAX_PAYLOAD = 64 << 20
CONTROL_MAX_META = 4 << 20
MAX_KEY_LEN = 1024

_HEADER = struct.Struct("<2sBBHHQII")


def pack_header(op: int, flags: int, req_id: int, meta_len: int, payload_len: int, code: int = 0) -> bytes:
    """Returns the 24-byte header of a frame."""
    return _HEADER.pack(MAGIC, VERSION, op, flags, code, req_id, meta_len, payload_len)


@dataclass(slots=True)
class Header:
    """A decoded frame header."""

    op: int
    flags: int
    code: int
    id: int
    meta_len: int
    payload_len: int


def parse_header(b, max_meta: int = MAX_META, max_payload: int = MAX_PAYLOAD) -> Header:
    """Decodes a reply header from the first 24 bytes of b, checking magic,
    version, that it is a reply, and both lengths against the limits before
    anything is allocated. Raises Malformed or TooLarge."""
    magic, ver, op, flags, code, rid, mlen, plen = _HEADER.unpack_from(b)
    if magic != MAGIC:
        raise errors.Malformed("bad magic")
    if ver != VERSION:
        raise errors.PocketError("want version 1", errors.Code.VERSION)
    if not op & REPLY_BIT:
        raise errors.Malformed(f"expected a reply, got opcode {op:#x}")
    if mlen > max_meta:
        raise errors.TooLarge(f"metadata length {mlen} over the limit of {max_meta}")
    if plen > max_payload:
        raise errors.TooLarge(f"payload length {plen} over the limit of {max_payload}")
    return Header(op, flags, code, rid, mlen, plen)


# ---- Request: laid out by hand ----
#
# Every data-plane request pays for its metadata, and the flatbuffers
# Builder of the Python runtime costs tens of microseconds per table, a
# large part of a small get. Request's shape is fixed, so encode_request
# writes it front to back in one pass, as wire.Encoder.Request does in Go:
#
#   0   root uoffset T
#   4   vtable: u16 size, u16 table size, one u16 per field id up to the
#       highest present (offset from T, 0 when absent)
#   T   table (T % 8 == 4): i32 soffset T-4, then epoch, version,
#       object_size (8-byte, aligned), the uoffsets of the vectors, then
#       limit (u32), delimiter (u8)
#   ... job, token, after, key: each 4-aligned, u32 length, bytes, and a
#       NUL for the strings; the key last, so that RequestCodec can keep
#       everything before it for a job's requests
#
# Absent means empty or zero, as the builder omits defaults. The tests check
# the result against the generated fb.Request reader.

_ID_JOB, _ID_KEY, _ID_TOKEN, _ID_EPOCH, _ID_AFTER, _ID_LIMIT, _ID_DELIM, _ID_VERSION, _ID_SIZE = range(9)
_PAD = b"\x00\x00\x00\x00\x00\x00\x00\x00"


def encode_request(job: bytes, key: bytes = b"", token: bytes = b"", epoch: int = 0, *, after: bytes = b"",
                   limit: int = 0, delimiter: int = 0, version: int = 0, object_size: int = 0) -> bytes:
    """Returns the fb.Request flatbuffer of one data-plane request."""
    scalars = []  # (id, struct format, value)
    if epoch:
        scalars.append((_ID_EPOCH, "Q", epoch))
    if version:
        scalars.append((_ID_VERSION, "Q", version))
    if object_size:
        scalars.append((_ID_SIZE, "q", object_size))
    vecs = []  # (id, bytes, is_string); the key last (see RequestCodec)
    if job:
        vecs.append((_ID_JOB, job, True))
    if token:
        vecs.append((_ID_TOKEN, token, False))
    if after:
        vecs.append((_ID_AFTER, after, True))
    if key:
        vecs.append((_ID_KEY, key, True))
    top = -1
    for s in scalars:
        top = max(top, s[0])
    for v in vecs:
        top = max(top, v[0])
    if limit:
        top = max(top, _ID_LIMIT)
    if delimiter:
        top = max(top, _ID_DELIM)
    nf = top + 1
    vtlen = 4 + 2 * nf
    t = (4 + vtlen + 3) & ~3
    if t % 8 != 4:
        t += 4
    offs = [0] * nf
    pos = 4  # offset from T
    tail = []
    for fid, fmt, val in scalars:
        offs[fid] = pos
        tail.append(struct.pack("<" + fmt, val))
        pos += 8
    vec_fields = []
    for fid, data, is_str in vecs:
        offs[fid] = pos
        vec_fields.append(pos)
        pos += 4
    if limit:
        offs[_ID_LIMIT] = pos
        pos += 4
    if delimiter:
        offs[_ID_DELIM] = pos
        pos += 1
    tsize = pos
    # Vectors after the table, each 4-aligned; their uoffsets point forward.
    end = t + tsize
    p = (end + 3) & ~3
    body = []
    uoffs = []
    gap = p - end
    for i, (fid, data, is_str) in enumerate(vecs):
        uoffs.append(p - (t + vec_fields[i]))
        n = len(data) + (1 if is_str else 0)
        body.append(struct.pack("<I", len(data)))
        body.append(data)
        q = p + 4 + n
        pad = ((q + 3) & ~3) - q
        body.append(_PAD[: pad + (1 if is_str else 0)])
        p = q + pad
    parts = [struct.pack("<IHH%dH" % nf, t, vtlen, tsize, *offs), _PAD[: t - 4 - vtlen],
             struct.pack("<i", t - 4)]
    parts += tail
    if uoffs:
        parts.append(struct.pack("<%dI" % len(uoffs), *uoffs))
    if limit:
        parts.append(struct.pack("<I", limit))
    if delimiter:
        parts.append(bytes((delimiter,)))
    parts.append(_PAD[:gap])
    parts += body
    return b"".join(parts)


class RequestCodec:
    """Encodes the requests of one job (job id, token and map epoch fixed)
    as encode_request does, byte for byte, but faster: everything before
    the key is computed once per shape (version and object size present or
    not) and reused."""

    __slots__ = ("job", "token", "epoch", "_shapes")

    def __init__(self, job: bytes, token: bytes, epoch: int):
        self.job, self.token, self.epoch = job, token, epoch
        self._shapes: dict = {}

    def _shape(self, has_version: bool, has_size: bool):
        b = encode_request(self.job, b"x", self.token, self.epoch, version=1 if has_version else 0,
                           object_size=1 if has_size else 0)
        t = struct.unpack_from("<I", b)[0]
        lo = t + 4 + (8 if self.epoch else 0)
        hi = lo + 8 * (has_version + has_size)
        fmt = struct.Struct("<" + "Q" * has_version + "q" * has_size)
        shape = (b[:lo], fmt, b[hi:len(b) - 8])
        self._shapes[(has_version, has_size)] = shape
        return shape

    def encode(self, key: bytes, version: int = 0, object_size: int = 0) -> bytes:
        """The Request of key with the job's fields (key must not be empty)."""
        hv, hs = version != 0, object_size != 0
        shape = self._shapes.get((hv, hs)) or self._shape(hv, hs)
        head, fmt, mid = shape
        n = len(key)
        vals = (version, object_size) if hv and hs else (version,) if hv else (object_size,) if hs else ()
        return b"".join((head, fmt.pack(*vals), mid, n.to_bytes(4, "little"), key, _PAD[:4 - (n & 3)]))


# ---- Response: decoded with the generated reader ----

@dataclass(slots=True)
class Entry:
    """One list result: a key, or with a delimiter a directory prefix."""

    key: bytes
    size: int
    dir: bool


@dataclass(slots=True)
class Response:
    """A reply's metadata (fb.Response)."""

    message: str = ""
    epoch: int = 0
    size: int = 0
    flags: int = 0
    entries: list = field(default_factory=list)
    more: bool = False
    count: int = 0
    capacity: int = 0
    version: int = 0
    versions: list = field(default_factory=list)


def _vector_bytes(tab, vt_off: int) -> bytes:
    o = tab.Offset(vt_off)
    if o == 0:
        return b""
    start = tab.Vector(o)
    n = tab.VectorLen(o)
    if start + n > len(tab.Bytes):
        raise errors.Malformed("vector past the end of the buffer")
    return bytes(tab.Bytes[start:start + n])


def _root(meta, cls):
    if len(meta) < 8:
        raise errors.Malformed(f"metadata of {len(meta)} bytes")
    return cls.GetRootAs(meta, 0)


def decode_response(meta) -> Response:
    """Decodes a reply's Response table; empty meta is an empty response.
    Raises Malformed on a buffer the reader cannot walk."""
    r = Response()
    if not meta:
        return r
    try:
        t = _root(bytes(meta), _fbResponse.Response)
        r.message = (t.Message() or b"").decode("utf-8", "replace")
        r.epoch, r.size, r.flags = t.Epoch(), t.Size(), t.Flags()
        r.more, r.count, r.capacity, r.version = t.More(), t.Count(), t.Capacity(), t.Version()
        for i in range(t.EntriesLength()):
            e = t.Entries(i)
            r.entries.append(Entry(e.Key() or b"", e.Size(), e.Dir()))
        vs = _vector_bytes(t._tab, 22)
        if len(vs) % 8:
            raise errors.Malformed("versions not a whole number of uint64s")
        r.versions = list(struct.unpack("<%dQ" % (len(vs) // 8), vs))
    except (struct.error, IndexError, ValueError, TypeError, OverflowError) as e:
        raise errors.Malformed(f"response: {e}") from None
    return r


def reply_error(code: int, meta) -> errors.PocketError:
    """The exception of an error reply: its code, message and epoch."""
    try:
        r = decode_response(meta)
    except errors.PocketError as e:
        return e
    return errors.error_for(code, r.message, r.epoch)


# ---- Control messages ----

MAX_LAMBDAS = 1 << 31
"""The largest lambdas hint taken (pocket job register --lambdas's)."""


def encode_job_register(name: str, lambdas: int = 0, capacity_bytes: int = 0, peak_mbps: float = 0.0,
                        latency_sensitive: bool = False, ttl_ms: int = 0) -> bytes:
    """The JobRegister table (OpRegisterJob). Raises Malformed for a
    lambdas hint that is not a whole number from 0 to MAX_LAMBDAS, or a
    capacity that is not a whole number of bytes from 0 to 2**63-1 (the
    controller judges the rest; before, a raw TypeError)."""
    if isinstance(lambdas, bool) or not isinstance(lambdas, int) or not 0 <= lambdas <= MAX_LAMBDAS:
        raise errors.Malformed(f"lambdas {lambdas!r}: want a whole number from 0 to {MAX_LAMBDAS} (0: not given)")
    if isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int) or not 0 <= capacity_bytes < 2 ** 63:
        raise errors.Malformed(f"capacity_bytes {capacity_bytes!r}: want a whole number of bytes from 0 to 2**63-1 (0: not given)")
    b = flatbuffers.Builder(128)
    n = b.CreateString(name)
    _fbJobRegister.JobRegisterStart(b)
    _fbJobRegister.JobRegisterAddName(b, n)
    _fbJobRegister.JobRegisterAddLambdas(b, lambdas)
    _fbJobRegister.JobRegisterAddCapacityBytes(b, capacity_bytes)
    _fbJobRegister.JobRegisterAddPeakMbps(b, float(peak_mbps))
    _fbJobRegister.JobRegisterAddLatencySensitive(b, bool(latency_sensitive))
    _fbJobRegister.JobRegisterAddTtlMs(b, ttl_ms)
    b.Finish(_fbJobRegister.JobRegisterEnd(b))
    return bytes(b.Output())


def encode_job_ref(job: str, token: bytes, ended_ok: bool = False) -> bytes:
    """The JobRef table (OpDeregisterJob, OpGetMap). ended_ok (OpGetMap):
    the caller takes an ended job's final map (PlacementMap.ended)."""
    b = flatbuffers.Builder(128)
    j = b.CreateString(job)
    t = b.CreateByteVector(token)
    _fbJobRef.JobRefStart(b)
    _fbJobRef.JobRefAddJob(b, j)
    _fbJobRef.JobRefAddToken(b, t)
    if ended_ok:
        _fbJobRef.JobRefAddEndedOk(b, True)
    b.Finish(_fbJobRef.JobRefEnd(b))
    return bytes(b.Output())


@dataclass(slots=True)
class MapNode:
    """One node of a placement map. since is the first map epoch at which
    the node holds its whole share: 0 from the start, SINCE_NOT_YET while
    values still move to it (wire.MapNode.Since in Go)."""

    addr: str
    weight: float
    state: int = NODE_ACTIVE
    since: int = 0


SINCE_NOT_YET = (1 << 64) - 1  # wire.SinceNotYet


@dataclass(slots=True)
class LostNode:
    """A node that left a job's map dead past the controller's grace: its
    values are gone. weight is on the scale of the map's node weights;
    epoch is the first map epoch without it."""

    addr: str
    weight: float
    epoch: int


MAX_LOST_NODES = 64  # wire.MaxLostNodes
MAX_MAP_NODES = 4096  # wire.MaxMapNodes


@dataclass(slots=True)
class PlacementMap:
    """A job's placement map: its nodes and weights, tier, epoch and token,
    and the nodes it lost (oldest first). ended marks an ended job's final
    map (deregistered, or its token expired), which the controller kept
    because nodes keep the job's persisted values. The token is left out
    of the repr (a secret: whoever holds it reads and writes the job's
    values), so a map printed or logged leaks no token."""

    job: str
    tier: int
    epoch: int
    nodes: list
    token: bytes = field(repr=False)  # a secret: kept out of logs and tracebacks
    expires_ms: int = 0
    lost: list = field(default_factory=list)
    ended: bool = False
    # What the controller's reply says of the job's allotment (the Go
    # SDK's Allotment): a registration's all of it, a map fetch its
    # bandwidth and bytes; None when it says nothing.
    allotment: "Allotment | None" = None


_SIZED_FROM = {1: "hints", 2: "profile", 3: "default"}


@dataclass(frozen=True, slots=True)
class Allotment:
    """What the controller allotted a job at its registration, as ``pocket
    job register`` prints it: bandwidth over its nodes (mbps, 0: none) and
    capacity of its tier (bytes, 0: none); where its size came from
    (sized_from: "hints", "profile" of earlier jobs of its name, "default",
    "" not said); the registering client's quotas and what is left of them
    (0: no quota); and note, what the job should know of its placement
    ("": nothing)."""
    mbps: float = 0.0
    bytes: int = 0
    sized_from: str = ""
    note: str = ""
    quota_bytes: int = 0
    quota_left_bytes: int = 0
    quota_mbps: float = 0.0
    quota_left_mbps: float = 0.0


def _allotment(t) -> Allotment | None:
    """The allotment of a decoded PlacementMap table, None when it gives
    none (not a registration's reply)."""
    a = Allotment(t.AllocMbps(), t.AllocBytes(), _SIZED_FROM.get(t.Sized(), ""), (t.Note() or b"").decode(),
                  t.QuotaBytes(), t.QuotaLeftBytes(), t.QuotaMbps(), t.QuotaLeftMbps())
    return None if a == Allotment() else a


def decode_placement_map(meta) -> PlacementMap:
    """Decodes a PlacementMap table. Raises Malformed."""
    try:
        t = _root(bytes(meta), _fbPlacementMap.PlacementMap)
        if t.NodesLength() > MAX_MAP_NODES:
            raise errors.TooLarge(f"placement map: {t.NodesLength()} nodes over limit {MAX_MAP_NODES}")
        nodes = []
        seen = set()
        for i in range(t.NodesLength()):
            n = t.Nodes(i)
            addr, w = (n.Addr() or b"").decode(), n.Weight()
            if not (0 <= w < float("inf")):
                raise errors.Malformed(f"placement map: node {addr} weight {w}")
            if addr in seen:
                # Rendezvous hashing would give a node listed twice two
                # draws: a broken or hostile controller's map.
                raise errors.Malformed(f"placement map: node {addr!r} listed twice")
            seen.add(addr)
            nodes.append(MapNode(addr, w, n.State(), n.Since()))
        if t.LostLength() > MAX_LOST_NODES:
            raise errors.TooLarge(f"placement map: {t.LostLength()} lost nodes over limit {MAX_LOST_NODES}")
        lost = []
        for i in range(t.LostLength()):
            n = t.Lost(i)
            w = n.Weight()
            if not (0 <= w < float("inf")):
                raise errors.Malformed(f"placement map: lost node weight {w}")
            lost.append(LostNode((n.Addr() or b"").decode(), w, n.Epoch()))
        return PlacementMap((t.Job() or b"").decode(), t.Tier(), t.Epoch(), nodes,
                            _vector_bytes(t._tab, 12), t.ExpiresMs(), lost, bool(t.Ended()), _allotment(t))
    except (struct.error, IndexError, ValueError, TypeError, OverflowError) as e:
        raise errors.Malformed(f"placement map: {e}") from None


# The end of the controller's failure entry for a dead node of the job's
# map (wire.DropDeadSuffix: "ADDR: node dead").
_DEAD_SUFFIX = ": node dead"


@dataclass(slots=True)
class DropResult:
    """The answer to a deregistration (wire/control.fbs's DropResult):
    ``nodes`` that dropped the job's data, ``failed`` nodes that could not
    (their entries in ``message``, joined by "; "), stored records
    (``values``: values and the chunks of large ones) and ``bytes`` freed.

    Job.deregister adds what ``pocket job deregister`` reports beside it:
    ``persisted_bytes``, the bytes of the job's persisted values its nodes
    still hold, counted after the drop over the deregistration's map
    (Job.usage of the ended job, within 3 s); None when not counted (a
    node could not be asked: ``count_error`` says why); and ``credential``,
    the string that reads and deletes those values (Job.credential; left
    out of the repr, as it is a secret).

    ``unreported``: the reply of the request that ended the job was lost
    (the connection failed after it was sent) and the request sent again
    found the job ended (Job.deregister): what its nodes dropped is not
    known, and the figures are zero (the Go SDK's DropResult.Unreported)."""

    nodes: int
    failed: int
    values: int
    bytes: int
    message: str
    unreported: bool = False
    persisted_bytes: int | None = None
    count_error: str = ""
    credential: str = field(default="", repr=False)  # a secret: kept out of logs and tracebacks

    def dead_nodes(self) -> list[str]:
        """The nodes among the failed ones that are dead: their copy of the
        job's values, persisted ones too, went with them (as Go's
        wire.DropResult.Split, which the CLI and the Go SDK use, splits).
        None is named when the entries do not add up to ``failed`` (an
        error text holding "; "), so a failure is never taken for a dead
        node by mistake."""
        return self._split()[0]

    def other_failures(self) -> list[str]:
        """The failed nodes' entries but those of dead nodes: nodes that may
        still hold the job's data (the whole message when its entries do not
        add up to ``failed``)."""
        return self._split()[1]

    def _split(self) -> tuple[list[str], list[str]]:
        if not self.failed:
            return [], []
        entries = self.message.split("; ")
        if len(entries) != self.failed:
            return [], [self.message]
        dead, others = [], []
        for e in entries:
            a = e.removesuffix(_DEAD_SUFFIX)
            if a != e and _is_addr(a):
                dead.append(a)
            else:
                others.append(e)
        return dead, others


def _is_addr(s: str) -> bool:
    """Whether s is a host:port address and nothing more, as Go's
    net.SplitHostPort splits one (the CLI's isAddr)."""
    if any(c in s for c in " ;"):
        return False
    host, sep, port = s.rpartition(":")
    if not sep or ":" in port:
        return False
    if host.startswith("["):
        return host.endswith("]") and "[" not in host[1:] and "]" not in host[:-1]
    return ":" not in host and "[" not in host and "]" not in host


def decode_drop_result(meta) -> DropResult:
    """Decodes a DropResult table. Raises Malformed."""
    try:
        t = _root(bytes(meta), _fbDropResult.DropResult)
        return DropResult(t.Nodes(), t.Failed(), t.Values(), t.Bytes(), (t.Message() or b"").decode("utf-8", "replace"))
    except (struct.error, IndexError, ValueError, TypeError, OverflowError) as e:
        raise errors.Malformed(f"drop result: {e}") from None


# ---- Objects (wire/objects.go) ----

MANIFEST_LEN = 28
_MANIFEST = struct.Struct("<4sQQII")


@dataclass(frozen=True, slots=True)
class Manifest:
    """One version of a chunked object: size and chunk size in bytes,
    chunks numbered 1..count."""

    version: int
    size: int
    chunk: int
    count: int

    def encode(self) -> bytes:
        return _MANIFEST.pack(b"PKM2", self.version, self.size, self.chunk, self.count)

    def bounds(self, i: int) -> tuple[int, int]:
        """The byte range [lo, hi) of chunk i (1..count)."""
        lo = (i - 1) * self.chunk
        return lo, min(lo + self.chunk, self.size)


def decode_manifest(b) -> Manifest:
    """Parses a manifest and checks it is self-consistent. Raises Corrupt."""
    if len(b) != MANIFEST_LEN or bytes(b[:4]) != b"PKM2":
        raise errors.Corrupt(f"not a manifest ({len(b)} bytes)")
    _, v, size, chunk, count = _MANIFEST.unpack(bytes(b))
    if v == 0 or size >= 1 << 63 or chunk <= 0 or chunk > MAX_PAYLOAD or count != (size + chunk - 1) // chunk:
        raise errors.Corrupt(f"inconsistent manifest: version {v:#x} size {size} chunk {chunk} count {count}")
    return Manifest(v, size, chunk, count)


def chunk_key(key: bytes, version: int, i: int) -> bytes:
    """The key of chunk i of version `version` of key."""
    return b"%s\x00%016x\x00%d" % (key, version, i)


def is_chunk_key(k: bytes) -> bool:
    """Whether k is an internal (chunk) key: listings hide them."""
    return b"\x00" in k
