"""``partition_by``: documents are compared only within one value of a column.

The partition value is folded into every band key (XOR with a 64-bit hash of the value), so
two documents of different partitions never share a bucket and never become candidates,
while keys inside one partition stay equal exactly when their bands are equal. Nothing else
changes: verification, keep policies and the index see only the edges LSH produced. An
index written with ``partition_by`` holds partition-folded keys: query it with the same
column. Nulls form one partition of their own.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import xxhash

_NULL = 0x9E3779B97F4A7C15  # the partition of null values


def partition_hashes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """uint64 hash of each partition value (as its string form; null: a fixed constant)."""
    table = {}
    out = np.empty(len(values), dtype=np.uint64)
    for i, v in enumerate(values.to_pylist()):
        if v not in table:
            table[v] = _NULL if v is None else xxhash.xxh3_64_intdigest(str(v).encode("utf-8"), seed=0x5EED)
        out[i] = table[v]
    return out


def fold_partition(keys: np.ndarray, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Band keys ``(n, bands)`` (int64 view) with each row's partition hash folded in."""
    h = partition_hashes(values)
    return (keys.view(np.uint64) ^ h[:, None]).view(np.int64)
