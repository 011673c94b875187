"""The persisted MinHash index: the survivors of earlier runs, to dedup later snapshots against.

An index directory holds ``index.json`` (format, the parameters signatures depend on,
and one entry per version) and, per version ``vNNNNN/``, one band file and one shingle-set
file per signature file of the run that wrote it. Each run with ``write_index`` appends a
version. Files keep the column names of the first format (see
:data:`~curate.stages.minhash_dedup.layout.INDEX_STORED_NAMES`); format 1 stored sets as
``list<uint64>``, format 2 as binary. Both are read.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate import schema
from curate.fit import FitContext
from curate.parquet_io import ParquetParts, write_json_atomic, write_parquet_atomic
from curate.stage import StageError
from curate.stages.minhash_dedup import layout
from curate.stages.minhash_dedup.layout import INDEX_STORED_NAMES, N_SHINGLES, SHINGLES, band_column, int64s
from curate.stages.minhash_dedup.verification import take_sets
from curate.text.minhash import MinHasher

INDEX_FORMAT = "curate-minhash-index"
INDEX_FORMAT_VERSION = 2  # 2: shingle sets stored as binary (1: list<uint64>; still read)
READABLE_INDEX_VERSIONS = (1, 2)


def index_params(cfg: dict) -> dict:
    """The parameters an index's signatures depend on (must match to dedup against it)."""
    keys = ("scheme", "datasketch_scheme", "seed", "num_perm", "bands", "rows", "ngram", "hash_bits")
    out = {k: cfg[k] for k in keys}
    if out["scheme"] != "datasketch":
        out["datasketch_scheme"] = None
    out["normalization"] = "nfkc-lower-words-v1"
    out["band_hash"] = "fmix64-fold-v1"
    return out


def read_index_manifest(path: str | Path, cfg: dict | None = None) -> dict:
    """Load and validate an index manifest (clear StageError on any problem)."""
    p = Path(path)
    mf = p / "index.json"
    if not mf.exists():
        raise StageError(f"minhash index {p}: no index.json (not an index, or never written)")
    try:
        man = json.loads(mf.read_text())
    except (OSError, ValueError) as e:
        raise StageError(f"minhash index {p}: corrupt index.json ({e})") from e
    if not isinstance(man, dict) or man.get("format") != INDEX_FORMAT:
        raise StageError(f"minhash index {p}: index.json is not a {INDEX_FORMAT} manifest")
    if man.get("format_version") not in READABLE_INDEX_VERSIONS:
        raise StageError(
            f"minhash index {p}: format version {man.get('format_version')!r} is not supported "
            f"(this curate reads versions {', '.join(map(str, READABLE_INDEX_VERSIONS))}); rebuild the index")
    if cfg is not None:
        want = index_params(cfg)
        have = man.get("params", {})
        diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
        if diff:
            desc = ", ".join(f"{k}: index={a!r} stage={b!r}" for k, (a, b) in sorted(diff.items()))
            raise StageError(f"minhash index {p}: built with different parameters ({desc})")
    for v in man.get("versions", []):
        for f in v.get("bands", []) + v.get("sets", []):
            try:
                pq.ParquetFile(p / f)
            except Exception as e:
                raise StageError(f"minhash index {p}: file {f} of version {v.get('version')} is missing or "
                                 f"corrupt ({type(e).__name__}: {e})") from e
    return man


@dataclass
class IndexFiles:
    """The files of the index a run dedups against (none for a run without one)."""

    bands: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    docs: int | None = None  # documents in the index, None without an index


def open_index(ctx: FitContext, cfg: dict) -> IndexFiles:
    """The files of ``against_index``, validated against this run's parameters.

    The first run of a refresh (``against_index`` is ``write_index`` and does not exist
    yet) dedups within its own input only, with a warning."""
    against, write = cfg["against_index"], cfg["write_index"]
    if not against:
        return IndexFiles()
    if write and Path(against).resolve() == Path(write).resolve() and not (Path(against) / "index.json").exists():
        ctx.warnings.append(f"minhash_dedup: index {against} does not exist yet; this first run "
                            "dedups within its own input only and creates it")
        return IndexFiles()
    man = read_index_manifest(against, cfg)
    root = Path(against)
    out = IndexFiles(docs=sum(v.get("docs", 0) for v in man.get("versions", [])))
    for v in man.get("versions", []):
        out.bands += [str(root / f) for f in v.get("bands", [])]
        out.sets += [str(root / f) for f in v.get("sets", [])]
    if cfg["verify_jaccard"] is not None and len(out.sets) != len(out.bands):
        raise StageError(f"minhash index {root}: verify_jaccard needs shingle sets, which this index "
                         "does not store")
    return out


def write_index(ctx: FitContext, cfg: dict, sig_inputs: list[tuple[str, str]], text_column: str,
                decisions: list[str]) -> int:
    """Append this run's survivors to ``write_index`` as a new version; returns its number."""
    root = Path(cfg["write_index"])
    root.mkdir(parents=True, exist_ok=True)
    if (root / "index.json").exists():
        man = read_index_manifest(root, cfg)
    else:
        man = {"format": INDEX_FORMAT, "format_version": INDEX_FORMAT_VERSION, "params": index_params(cfg),
               "versions": []}
    version = max([v["version"] for v in man["versions"]], default=0) + 1
    vdir = root / f"v{version:05d}"
    if vdir.exists():
        shutil.rmtree(vdir)
    writer = IndexWriter(decisions, str(root), version, cfg["bands"], text_column, cfg["ngram"], cfg["seed"])
    res = ctx.runner.map(writer, list(sig_inputs))
    entry = {"version": version, "node": ctx.node_id, "docs": sum(r["docs"] for r in res),
             "bands": [r["bands"] for r in res], "sets": [r["sets"] for r in res if "sets" in r]}
    man["versions"].append(entry)
    man["format_version"] = INDEX_FORMAT_VERSION  # new files use the current layout
    write_json_atomic(root / "index.json", man)
    return version


def _stored(columns: dict[str, Any]) -> dict[str, Any]:
    return {INDEX_STORED_NAMES.get(c, c): v for c, v in columns.items()}


class IndexWriter:
    """Per (signature file, input file): write the survivors' band keys and shingle sets
    (recomputed from the input text) into an index version."""

    def __init__(self, decision_files: list[str], out_dir: str, version: int, bands: int,
                 text_column: str = schema.TEXT, ngram: int = 5, seed: int = 1):
        self.decision_files, self.out_dir, self.version, self.bands = decision_files, out_dir, version, bands
        self.text_column, self.ngram, self.seed = text_column, ngram, seed

    def _removed(self) -> np.ndarray:
        """Node ids of removed documents: 8 bytes each, sorted."""
        parts = []
        for f in self.decision_files:
            d = pq.read_table(f, columns=["uid", "kept"])
            parts.append(int64s(d, "uid")[~d.column("kept").to_numpy(zero_copy_only=False).astype(bool)])
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    @staticmethod
    def _survivors(uid: np.ndarray, removed: np.ndarray) -> np.ndarray:
        if not len(removed):
            return np.ones(len(uid), bool)
        pos = np.minimum(np.searchsorted(removed, uid), len(removed) - 1)
        return removed[pos] != uid

    def __call__(self, item: tuple[str, str]) -> dict:
        path, input_path = item
        removed = self._removed()
        name = Path(path).stem.replace("sig-", "")
        b_rel = f"v{self.version:05d}/bands-{name}.parquet"
        s_rel = f"v{self.version:05d}/sets-{name}.parquet"
        bands = [band_column(j) for j in range(self.bands)]
        root = Path(self.out_dir)
        docs = 0
        with ParquetParts(dictionary=False) as files:  # streamed: one chunk in memory at a time
            for t in layout.read_chunks(path, ["uid", "id", N_SHINGLES] + bands):
                t = t.filter(pa.array(self._survivors(int64s(t, "uid"), removed)))
                if t.num_rows == 0:
                    continue
                docs += t.num_rows
                uid = pa.array(layout.index_node_ids(t.column("id").to_pylist(), self.version), pa.int64())
                files.write(root / b_rel, pa.table(_stored({"uid": uid, "id": t.column("id"),
                                                            N_SHINGLES: t.column(N_SHINGLES),
                                                            **{b: t.column(b) for b in bands}})))
            hasher = MinHasher(1, self.ngram, self.seed)
            for t in layout.read_chunks(input_path, [schema.ID, self.text_column]):
                ids = [str(i) for i in t.column(schema.ID).to_pylist()]
                vals, offs = hasher.shingle_sets(t.column(self.text_column))
                keep = self._survivors(layout.node_ids(ids), removed) & (np.diff(offs) > 0)
                if not keep.any():
                    continue
                rows = np.flatnonzero(keep)
                kv, ko = take_sets(vals, offs, rows.astype(np.int64))
                kept_ids = [ids[i] for i in rows]
                uid = pa.array(layout.index_node_ids(kept_ids, self.version), pa.int64())
                files.write(root / s_rel, pa.table(_stored({"uid": uid, "id": pa.array(kept_ids, pa.string()),
                                                            SHINGLES: layout.sets_column(kv, ko)})))
            wrote = {"bands": root / b_rel in files, "sets": root / s_rel in files}
        out: dict[str, Any] = {"bands": b_rel, "sets": s_rel, "docs": docs}
        sig_schema = pq.read_schema(path)
        empty_types = {"uid": pa.int64(), "id": pa.string(), SHINGLES: pa.large_binary()}
        for key, rel, cols in (("bands", b_rel, ["uid", "id", N_SHINGLES] + bands), ("sets", s_rel, ["uid", "id", SHINGLES])):
            if not wrote[key]:
                # every document of this file was removed: an empty (valid) file
                write_parquet_atomic(root / rel, pa.table(_stored({
                    c: pa.array([], sig_schema.field(c).type if c in sig_schema.names else empty_types[c])
                    for c in cols})))
        return out
