"""Buffers for values received from the nodes.

A large value read by ``Job.get`` is received straight into a fresh buffer
from ``alloc``: a private anonymous memory map, handed out as a writable
``memoryview`` (format "B", one byte per item). It differs from a
``bytearray`` in what it costs, not in what it holds:

- ``bytearray(n)`` is a malloc and a memset: for 64 MiB the memset takes
  every page fault of the region on the calling thread, holding the GIL
  (on the 2-core development VM 100-150 ms, 3-5 times the transfer).
- The map is not written before the data arrives: each page is faulted in
  by the kernel inside the ``recv_into`` that fills it, on the thread that
  receives that node's chunks, without the GIL; and a region of at least
  ``HUGE_PAGE`` bytes is advised for transparent huge pages
  (``MADV_HUGEPAGE``), one fault per 2 MiB instead of per 4 KiB (same VM,
  64 MiB allocated and written once: 30 ms against 140 ms for a
  bytearray).

Lifetime: the map lives as long as the view or any slice of it (the
view's ``obj`` is the ``mmap``); it is unmapped when the last one is
garbage collected. ``bytes(view)`` or ``view.tobytes()`` copies it out.
Where anonymous maps are missing (not POSIX), or for a buffer under
``MAP_MIN`` bytes, where a map's system calls would cost more than they
save, the view is over a ``bytearray``.
"""

from __future__ import annotations

import mmap

MAP_MIN = 64 << 10  # smaller buffers are bytearrays
HUGE_PAGE = 2 << 20  # the x86-64 and arm64 transparent huge page size
_FLAGS = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
_MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)


def alloc(n: int) -> memoryview:
    """A writable, zero-filled buffer of n bytes (n >= 0) as a memoryview
    of format "B": over an anonymous memory map for n >= MAP_MIN, else over
    a bytearray. Raises ValueError for a negative n and MemoryError (or
    OSError) when the memory cannot be had."""
    if n < 0:
        raise ValueError(f"buffer of {n} bytes")
    if n < MAP_MIN or not _FLAGS:
        return memoryview(bytearray(n))
    m = mmap.mmap(-1, n, flags=_FLAGS)
    if n >= HUGE_PAGE and _MADV_HUGEPAGE is not None:
        try:
            m.madvise(_MADV_HUGEPAGE)
        except OSError:
            pass  # a kernel without transparent huge pages: 4 KiB pages
    return memoryview(m)
