"""Weighted rendezvous hashing, as internal/placement does it in Go.

Each node i scores -w_i / ln(u_i), u_i in (0, 1) derived from the node id's
hash and the (key, chunk) hash; the highest score owns the key. The hashes
are part of the placement contract every client shares: FNV-1a 64 over the
key then the chunk number's 4 little-endian bytes; the node id hashed with
FNV-1a 64 and murmur3's 64-bit finalizer; u is the top 53 bits of
fmix64(id hash ^ key hash), offset by half a step. Shared test vectors
(internal/placement/testdata/vectors.json) prove Go and Python agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_M = 0xFFFFFFFFFFFFFFFF
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_FNV_PRIME4 = pow(_FNV_PRIME, 4, 1 << 64)  # FNV-1a over four zero bytes: xor is a no-op


def fmix64(h: int) -> int:
    """murmur3's 64-bit finalizer."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M
    h ^= h >> 33
    return h


def hash_id(node_id: str) -> int:
    """The stable hash of a node id (its data-plane address)."""
    h = _FNV_OFFSET
    for c in node_id.encode():
        h = ((h ^ c) * _FNV_PRIME) & _M
    return fmix64(h)


def hash_key(key: bytes, chunk: int) -> int:
    """The stable hash of a (key, chunk) pair."""
    h = _FNV_OFFSET
    for c in key:
        h = ((h ^ c) * _FNV_PRIME) & _M
    for c in (chunk & 0xFFFFFFFF).to_bytes(4, "little"):
        h = ((h ^ c) * _FNV_PRIME) & _M
    return h


def _score(w: float, id_hash: int, key_hash: int) -> float:
    h = fmix64(id_hash ^ key_hash)
    u = ((h >> 11) + 0.5) / 9007199254740992.0  # 2**53
    return -w / math.log(u)


class NodeSet:
    """A job's nodes (id, weight) with the ids' hashes computed once.
    Nodes whose weight is not a positive finite number never own keys."""

    __slots__ = ("ids", "weights", "_hashes", "_live", "_memo")

    # Owners of chunk 0 (one-record values and manifests) already computed,
    # by key: a get after a put, or of a key read before, skips the hashing
    # (a few microseconds of Python per request). Cleared when full.
    MEMO_MAX = 1 << 16

    def __init__(self, nodes: Sequence[tuple[str, float]]):
        self.ids = [n[0] for n in nodes]
        self.weights = [float(n[1]) for n in nodes]
        self._hashes = [hash_id(i) for i in self.ids]
        self._live = [(i, w, h) for i, (w, h) in enumerate(zip(self.weights, self._hashes))
                      if w > 0 and not math.isinf(w)]
        self._memo: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def pick(self, key: bytes, chunk: int = 0) -> int:
        """The index of the node that owns (key, chunk), or -1 when no node
        has a positive weight. (hash_key and _score inlined: this runs on
        every request.)"""
        if chunk == 0:
            i = self._memo.get(key)
            if i is not None:
                return i
            i = self._pick(key, 0)
            if len(self._memo) >= self.MEMO_MAX:
                self._memo.clear()
            self._memo[bytes(key)] = i
            return i
        return self._pick(key, chunk)

    def _pick(self, key: bytes, chunk: int) -> int:
        h = _FNV_OFFSET
        for c in key:
            h = ((h ^ c) * _FNV_PRIME) & _M
        if chunk == 0:
            kh = (h * _FNV_PRIME4) & _M  # four zero bytes
        else:
            kh = hash_key(key, chunk)
        best, best_score = -1, 0.0
        log = math.log
        for i, w, ih in self._live:
            h = ih ^ kh
            h ^= h >> 33
            h = (h * 0xFF51AFD7ED558CCD) & _M
            h ^= h >> 33
            h = (h * 0xC4CEB9FE1A85EC53) & _M
            h ^= h >> 33
            s = -w / log(((h >> 11) + 0.5) / 9007199254740992.0)
            if best < 0 or s > best_score:
                best, best_score = i, s
        return best


def pick(nodes: Sequence[tuple[str, float]], key: bytes, chunk: int = 0) -> int:
    """Pick over a node list: the index of (key, chunk)'s owner, or -1."""
    return NodeSet(nodes).pick(key, chunk)
