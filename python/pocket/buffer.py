"""Buffers for values received from the nodes.

A large value read by ``Job.get`` is received straight into a fresh buffer
from ``alloc``: a private anonymous memory map, populated when it is made
(``MAP_POPULATE``), handed out as a writable ``memoryview`` (format "B",
one byte per item). It differs from a ``bytearray`` in what it costs, not
in what it holds:

- ``bytearray(n)`` is a malloc and a memset: for 64 MiB the memset takes
  each of the region's 16384 page faults as a trap on the calling thread,
  holding the GIL, and then writes every byte once more.
- The map's pages are faulted in by the kernel in one pass inside the
  mmap call, zeroed once, and written next by the ``recv_into`` calls.

Client CPU per 64 MiB get over 3 nodes, each get after a put of the value
(one process, one cluster, 11 interleaved rounds, medians; the 2-core
Firecracker development VM at load 12-21): bytearray 51 ms, this map
37 ms, a map faulted in by the receives instead of populated 41 ms, a map
advised for transparent huge pages (MADV_HUGEPAGE) 69-132 ms, get_into a
reused buffer 17 ms. Huge pages won (31 ms) only while the process got
back the memory it had just freed; with memory changing hands, as between
a put and a get, their 2 MiB allocations came from blocks the VM had
handed back to its host (free page reporting) and cost the most. With
reuse (below), a get whose earlier value was dropped: 18 ms, as get_into.

Reuse: a fresh map's page faults and zeroing are most of what a get of a
large value costs beyond get_into (above). So the last ``POOL`` maps
handed out stay referenced here, and a map that nothing else refers to
any more (no view or slice of it is alive: on CPython, its reference
count says so) is handed out again for a value of its size or up to a
quarter smaller, its old bytes still in it: a buffer from alloc is for a
value received whole into it. So up to ``POOL`` maps of up to
``POOL_MAX_BYTES`` each stay mapped after their values are dropped, as a
Go program's heap keeps the memory it freed; ``trim()`` unmaps them.
POOL = 0 turns reuse off; it is off on interpreters without reference
counts.

Lifetime: a map lives as long as the view or any slice of it (the
view's ``obj`` is the ``mmap``), or the pool; it is unmapped when the last
one is gone. ``bytes(view)`` or ``view.tobytes()`` copies it out.
Where anonymous maps are missing (not POSIX), or for a buffer under
``MAP_MIN`` bytes, where a map's system calls would cost more than they
save, the view is over a (zero-filled) ``bytearray``.
"""

from __future__ import annotations

import mmap
import sys
import threading

MAP_MIN = 64 << 10  # smaller buffers are bytearrays
POOL = 2  # maps kept for reuse
POOL_MAX_BYTES = 256 << 20  # larger maps are not kept
_ANON = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
_FLAGS = _ANON | getattr(mmap, "MAP_POPULATE", 0) if _ANON else 0
_REFCOUNTED = sys.implementation.name == "cpython"
_pool: list[mmap.mmap] = []  # newest last
_lock = threading.Lock()


def alloc(n: int) -> memoryview:
    """A writable buffer of n bytes (n >= 0), a memoryview of format "B",
    for a value received whole into it: over an anonymous memory map for
    n >= MAP_MIN (a new one, zero-filled, or a reused one holding an older
    value's bytes), else over a new zero-filled bytearray. Raises
    ValueError for a negative n and MemoryError (or OSError) when the
    memory cannot be had."""
    if n < 0:
        raise ValueError(f"buffer of {n} bytes")
    if n < MAP_MIN or not _FLAGS:
        return memoryview(bytearray(n))
    m = _reuse(n)
    if m is None:
        m = mmap.mmap(-1, n, flags=_FLAGS)
        _keep(m)
    v = memoryview(m)
    return v if len(m) == n else v[:n]


def _reuse(n: int) -> mmap.mmap | None:
    """A pooled map of n to n*4/3 bytes that nothing outside the pool
    refers to, moved to the newest place; or None."""
    if not _REFCOUNTED:
        return None
    with _lock:
        for i in range(len(_pool)):
            m = _pool[i]
            # Nothing else: the pool's reference, m's and getrefcount's.
            if n <= len(m) <= n + n // 3 and sys.getrefcount(m) <= 3:
                del _pool[i]
                _pool.append(m)
                return m
    return None


def _keep(m: mmap.mmap) -> None:
    if not _REFCOUNTED or len(m) > POOL_MAX_BYTES:
        return
    with _lock:
        _pool.append(m)
        del _pool[:max(0, len(_pool) - POOL)]


def trim() -> None:
    """Lets go of the pooled maps: each is unmapped once no view of it is
    left."""
    with _lock:
        _pool.clear()
