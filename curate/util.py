"""Small deterministic helpers (hashing ids to uniforms, digests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash


def id_hashes(ids: pa.Array | pa.ChunkedArray, seed: int = 0) -> np.ndarray:
    """uint64 xxh3 of each id's string form, seeded. Stable across runs and machines."""
    seed &= 0xFFFFFFFFFFFFFFFF
    vals = ids.to_pylist()
    return np.fromiter((xxhash.xxh3_64_intdigest(str(v).encode(), seed=seed) for v in vals), dtype=np.uint64, count=len(vals))


def uniform_from_ids(ids: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """A uniform [0, 1) number per id, from the seed and the id only."""
    h = id_hashes(ids, seed)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def file_digest(path: str | Path, algo: str = "sha256") -> str:
    """Hex digest of a file, streamed."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
