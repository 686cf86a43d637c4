"""Errors of the Pocket client.

Every error a node or the controller answers carries a wire code from the
project's one registry (wire/codes.go); :class:`PocketError` keeps it in
``code``, and each code has its own subclass, so callers write
``except pocket.NotFound`` or test ``err.code == pocket.Code.NOT_FOUND``.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """Wire error codes (wire/codes.go); the numbers are stable."""

    OK = 0
    MALFORMED = 1
    VERSION = 2
    TOO_LARGE = 3
    UNKNOWN_OP = 4
    NOT_FOUND = 5
    NO_SPACE = 6
    UNKNOWN_JOB = 7
    BAD_TOKEN = 8
    STALE_EPOCH = 9
    EXISTS = 10
    IO = 11
    INTERNAL = 12
    DRAINING = 13
    BUSY = 14
    BAD_NAME = 15  # an empty, over-long or ill-formed key, job id, job name or node address
    BAD_KEY = 15  # the same code's earlier name (an alias of BAD_NAME)
    UNSUPPORTED = 16
    CLOSED = 17
    NOT_DIRECTORY = 18
    UNAVAILABLE = 19
    REVOKED = 20
    LIMIT = 21
    LOST = 22
    CONFLICT = 23
    NOT_LEADER = 24
    FORBIDDEN = 25  # the credential verified, but its role or tenant does not allow the call


class PocketError(Exception):
    """An error with a wire code (``code``), a detail (``message``) and,
    for a stale map, the node's current epoch (``epoch``)."""

    default_code = Code.INTERNAL

    def __init__(self, message: str = "", code: int | None = None, epoch: int = 0):
        code = int(self.default_code if code is None else code)
        try:
            self.code: int = Code(code)  # a pocket.Code, equal to its number
        except ValueError:
            self.code = code  # a code of a newer peer: its number
        self.message = message
        self.epoch = epoch
        super().__init__(self._text())

    def _text(self) -> str:
        try:
            name = Code(self.code).name.lower().replace("_", " ")
        except ValueError:
            name = f"code {self.code}"
        s = f"pocket: {name}"
        if self.message:
            s += ": " + self.message
        if self.code == Code.STALE_EPOCH:
            s += f" (current epoch {self.epoch})"
        return s


def _sub(name: str, code: Code, doc: str) -> type[PocketError]:
    return type(name, (PocketError,), {"default_code": code, "__doc__": doc})


Malformed = _sub("Malformed", Code.MALFORMED, "A frame or flatbuffer is not well formed.")
TooLarge = _sub("TooLarge", Code.TOO_LARGE, "A length exceeds the receiver's limits.")
NotFound = _sub("NotFound", Code.NOT_FOUND, "No value under that name.")
NoSpace = _sub("NoSpace", Code.NO_SPACE, "The tier is full; nothing stored changed.")
UnknownJob = _sub("UnknownJob", Code.UNKNOWN_JOB, "The job is not registered.")
BadToken = _sub("BadToken", Code.BAD_TOKEN, "The job's token is missing or wrong.")
StaleEpoch = _sub("StaleEpoch", Code.STALE_EPOCH, "The client's placement map is older than the node's.")
Exists = _sub("Exists", Code.EXISTS, "The name already exists.")
Draining = _sub("Draining", Code.DRAINING, "The node is draining and takes no new data.")
Busy = _sub("Busy", Code.BUSY, "Too many requests in flight; retry later.")
BadKey = _sub("BadKey", Code.BAD_NAME, "An empty, over-long or ill-formed name: a key (empty, over-long, or with a 0x00 byte), "
               "a job id, or a job name (letters, digits, '.', '_' and '-' only).")
Unavailable = _sub("Unavailable", Code.UNAVAILABLE, "The node holding the data cannot be reached.")
Revoked = _sub("Revoked", Code.REVOKED, "The job's token was revoked or has expired.")
Limit = _sub("Limit", Code.LIMIT, "A per-client or per-cluster limit was reached.")
Conflict = _sub("Conflict", Code.CONFLICT, "A conditional operation's condition did not hold.")
Lost = _sub("Lost", Code.LOST, "The value's node left the job's map dead: the value is gone, recompute it.")
NotLeader = _sub("NotLeader", Code.NOT_LEADER,
                 "This controller is a standby: the message is the active one's address (empty during an election).")
Forbidden = _sub("Forbidden", Code.FORBIDDEN,
                 "The caller's certificate or token verified, but its role or tenant does not allow the call "
                 "(another tenant's profile, an operator's command from a job client).")
Corrupt = _sub("Corrupt", Code.MALFORMED, "A manifest or chunk does not match what was written.")
Closed = _sub("Closed", Code.CLOSED,
              "The Client was closed (Client.close, or its with block ended): it and every Job opened through it "
              "refuse every call, registration included; open a new Client. Also a node's or the controller's "
              "answer that it is closing.")


class OutcomeUnknown(Unavailable):
    """The connection to the controller failed after a request that is not
    idempotent (a job's registration or deregistration) was written: the
    controller may or may not have acted on it, so it is not sent again
    (check ``pocket status``). The Go client's metaclient.OutcomeUnknownError."""

class DropError(Unavailable):
    """Job.deregister's error when the controller deregistered the job (it
    is ended, its token revoked: the Job reads its persisted values as an
    ended job's from then on) but live nodes of its map did not drop its
    data. ``result`` is the deregistration's DropResult: other_failures()
    names those nodes, one entry a node (they may hold the data until the
    controller's orphan reconciliation has them drop it), dead_nodes() the
    dead ones (their copy went with them: not a failure), and it carries
    the credential and the persisted count as a returned one does. An
    Unavailable (code 19), as this error was before it had its own class.
    Any other error of deregister means the job was not deregistered. The
    Go SDK's pocket.DropError."""

    def __init__(self, message: str = "", code: int | None = None, epoch: int = 0, result=None):
        super().__init__(message, code, epoch)
        self.result = result


_BY_CODE: dict[int, type[PocketError]] = {
    c.default_code: c
    for c in (Malformed, TooLarge, NotFound, NoSpace, UnknownJob, BadToken, StaleEpoch, Exists,
              Draining, Busy, BadKey, Unavailable, Revoked, Limit, Conflict, Lost, NotLeader, Forbidden, Closed)
}


def error_for(code: int, message: str = "", epoch: int = 0) -> PocketError:
    """Returns the exception of a reply's code: the code's subclass when it
    has one, else a PocketError carrying the code."""
    cls = _BY_CODE.get(code, PocketError)
    return cls(message, code, epoch)
