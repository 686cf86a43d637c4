"""Pocket's client for Python: an elastic ephemeral store for serverless
analytics, spoken to directly over the project's wire protocol.

Two APIs over one implementation:

- Pocket's module API (pocket.py's names, arguments and 0 / -1 returns):
  register_job, deregister_job, connect, put, put_buffer, get, get_buffer,
  lookup, delete, create_dir, count_files, close; see pocket.compat. Beside
  them: last_error, job_token and job_credential (what a launcher hands
  its workers), credential_job (the job a credential opens).
- A Pythonic one: Client, Job (bytes-like values, get_into, file-like
  streams, context managers, exceptions carrying the wire code).

A registration whose reply carries the controller's note warns with
RegistrationNote (a UserWarning); Job.note and Job.allotment keep it.
Jobs this process registered and did not deregister are named at exit by
one LiveJobsAtExit warning (a UserWarning): they stay registered until
deregistered, their token expires, or an operator ends them (``pocket job
end``). Nothing is deregistered automatically.
"""

from .client import (DEFAULT_CHUNK_SIZE, Client, Entry, Info, Job, Listing, LiveJobsAtExit, RegistrationNote,
                     credential_job)
from .conn import NodeUnavailable
from .compat import (Handle, LengthMismatch, close, connect, count_files, create_dir, delete, deregister_job, get,
                     get_buffer, job_credential, job_token, last_error, lookup, put, put_buffer, register_job)
from .errors import (BadKey, BadToken, Busy, Closed, Code, Conflict, Corrupt, Draining, DropError, Exists, Forbidden, Limit, Lost,
                     Malformed, NoSpace, NotFound, NotLeader, OutcomeUnknown, PocketError, Revoked, StaleEpoch, TooLarge, Unavailable,
                     UnknownJob)
from .wire import Allotment, DropResult

__all__ = [
    "Client", "Job", "Info", "Entry", "Listing", "DEFAULT_CHUNK_SIZE",
    "register_job", "deregister_job", "connect", "put", "put_buffer", "get", "get_buffer", "lookup", "delete",
    "create_dir", "count_files", "close", "Handle", "LengthMismatch", "last_error", "job_token", "job_credential",
    "credential_job",
    "DropResult", "Allotment", "RegistrationNote", "LiveJobsAtExit",
    "PocketError", "Code", "BadKey", "BadToken", "Busy", "Closed", "Conflict", "Corrupt", "Draining", "DropError", "Exists", "Forbidden", "Limit",
    "Lost", "Malformed", "NoSpace", "NotFound", "NotLeader", "OutcomeUnknown", "Revoked", "StaleEpoch", "TooLarge",
    "Unavailable", "UnknownJob", "NodeUnavailable",
]
