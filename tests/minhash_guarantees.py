"""What ``minhash_dedup`` with verification guarantees, checked from outside the stage.

LSH recall is probabilistic: two documents that share no band key are never compared, so
two survivors (of one run, or of a run and the index) can still truly match; with 14x8
bands a pair at Jaccard 0.8 is missed with probability (1 - 0.8^8)^14 = 7.7%. What holds
for every run, whatever the hashes:

* **precision**: every removed document truly matches (J >= thr) the document named as
  kept for it: a survivor of the run, or an indexed document;
* **every candidate is resolved**: the candidates are the edges the stage builds, from
  the minimum node of each LSH bucket (indexed documents first) to each other member,
  except between two indexed documents. For every candidate whose ends truly match, at
  least one end was removed. (Two members of a bucket whose minimum matches neither are
  not a candidate pair: the stars keep the edge count linear.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.stages.minhash_dedup.layout import band_column, node_ids
from curate.text.lsh import band_keys
from curate.text.minhash import MinHasher

BANDS, ROWS, NUM_PERM, NGRAM, SEED = 14, 8, 112, 5, 1


def _sets_and_keys(texts: list[str]) -> tuple[list[frozenset], np.ndarray, np.ndarray]:
    bs = MinHasher(NUM_PERM, NGRAM, SEED).signatures(pa.array(texts, pa.string()), with_sets=True)
    so = bs.set_offsets
    sets = [frozenset(bs.set_values[so[i]:so[i + 1]].tolist()) for i in range(len(texts))]
    return sets, band_keys(bs.sig, BANDS, ROWS, seed=SEED), bs.has_shingles


def _jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def check_run(docs: pa.Table, kept: pa.Table, rejected: pa.Table | None, index_dir: Path | None = None,
              index_versions: tuple[int, ...] = (), index_texts: dict[str, str] | None = None,
              thr: float = 0.8) -> int:
    """Assert both guarantees for one run (default parameters, 14x8) and return the number of
    truly matching candidates (callers check it is not vacuous).

    ``docs`` is the run's input (``id``, ``text``); ``index_versions`` are the versions of
    ``index_dir`` the run deduplicated against, ``index_texts`` the texts of their documents."""
    index_texts = index_texts or {}
    text_of = dict(zip(docs.column("id").to_pylist(), docs.column("text").to_pylist()))
    survivors = set(kept.column("id").to_pylist())
    # precision
    if rejected is not None:
        for rid, cluster, detail in zip(rejected.column("id").to_pylist(), rejected.column("dup_cluster").to_pylist(),
                                        rejected.column("detail").to_pylist()):
            if "an indexed document" in detail:
                kept_text = index_texts[cluster]
            else:
                assert cluster in survivors, (rid, cluster)
                kept_text = text_of[cluster]
            (a, b), _keys, _has = _sets_and_keys([text_of[rid], kept_text])
            assert _jaccard(a, b) >= thr - 1e-12, (rid, cluster, _jaccard(a, b))
    # the members of the buckets: this run's documents with shingles, then the indexed ones
    ids = list(text_of)
    sets, keys, has = _sets_and_keys([text_of[i] for i in ids])
    rows = np.flatnonzero(has)
    sets, keys = [sets[i] for i in rows], keys[rows]
    uid = node_ids(ids)[rows]
    alive = np.array([ids[i] in survivors for i in rows], bool)
    indexed = np.zeros(len(rows), bool)
    if index_dir is not None:
        man = json.loads((Path(index_dir) / "index.json").read_text())
        files = [f for v in man["versions"] if v["version"] in index_versions for f in v["bands"]]
        t = pa.concat_tables([pq.read_table(Path(index_dir) / f) for f in files])
        isets, _keys, _has = _sets_and_keys([index_texts[i] for i in t.column("id").to_pylist()])
        sets += isets
        keys = np.vstack([keys, np.stack([t.column(band_column(j)).to_numpy() for j in range(BANDS)], 1)])
        uid = np.r_[uid, t.column("uid").to_numpy()]
        alive = np.r_[alive, np.ones(t.num_rows, bool)]  # indexed documents are never removed
        indexed = np.r_[indexed, np.ones(t.num_rows, bool)]
    matches = 0
    for j in range(BANDS):
        order = np.lexsort((uid, keys[:, j]))
        k = keys[order, j]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        ends = np.r_[starts[1:], len(k)]
        for s, e in zip(starts, ends):
            m = order[s]
            for x in order[s + 1:e]:
                if indexed[m] and indexed[x]:
                    continue
                if _jaccard(sets[m], sets[x]) >= thr - 1e-12:
                    matches += 1
                    assert not (alive[m] and alive[x]), "a truly matching candidate pair survived"
    return matches
