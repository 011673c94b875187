"""The minhash_dedup barrier stage: quality on generated corpora, keep policies, modes,
bad input, determinism and the snapshot index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from curate.fit import FitContext, LocalTaskRunner, ShardSet
from curate.stage import StageError
from curate.stages.minhash_dedup import MinHashDedup
from curate.testing.neardup import make_corpus, score_removals
from tests.minhash_guarantees import check_run


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(1500, seed=11)


def _write(tmp: Path, table: pa.Table, nfiles: int, name: str = "in") -> list[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    files = []
    for k, idx in enumerate(np.array_split(np.arange(table.num_rows), nfiles)):
        f = tmp / f"{name}-{k}.parquet"
        pq.write_table(table.take(pa.array(idx, pa.int64())), f)
        files.append(str(f))
    return files


def _run(tmp: Path, files: list[str], params: dict, parts: int | None = None):
    st = MinHashDedup(params).bind("dd", seed=1)
    ctx = FitContext(runner=LocalTaskRunner(), state_dir=tmp / "state", scratch_dir=tmp / "scratch", seed=1,
                     node_id="dd")
    state = st.fit({"up": ShardSet(files=tuple(files))}, ctx)
    json.dumps(state)  # JSON-able
    kept, rejected = [], []
    for f in files:
        r = st.apply(pq.read_table(f), state)
        assert r.kept.num_rows + r.num_rejected == pq.ParquetFile(f).metadata.num_rows
        kept.append(r.kept)
        if r.rejected is not None:
            rejected.append(r.rejected)
    k = pa.concat_tables(kept)
    rj = pa.concat_tables(rejected) if rejected else None
    return state, k, rj


def _removed(rj) -> set[str]:
    return set() if rj is None else set(rj.column("id").to_pylist())


def test_recall_at_defaults(tmp_path, corpus):
    _, kept, rj = _run(tmp_path, _write(tmp_path, corpus.table(), 3), {})
    removed = _removed(rj)
    a, b = corpus.pairs_at(0.85)
    assert len(a) > 150
    rem = np.array([i in removed for i in corpus.ids])
    pair_recall = float((rem[a] | rem[b]).mean())
    assert pair_recall >= 0.98
    assert set(rj.column("reason").to_pylist()) == {"near_duplicate"}
    # exactly one kept per cluster, and the cluster size is on it
    clusters = {}
    for c, s, k in zip(kept.column("dup_cluster").to_pylist(), kept.column("dup_cluster_size").to_pylist(),
                       kept.column("dup_kept").to_pylist()):
        assert k
        assert c not in clusters
        clusters[c] = s
    dropped_by = {}
    for c in rj.column("dup_cluster").to_pylist():
        dropped_by[c] = dropped_by.get(c, 0) + 1
    for c, n in dropped_by.items():
        assert clusters[c] == n + 1


@pytest.mark.parametrize("split", ["keep", "coverage"])
def test_precision_with_verification(tmp_path, corpus, split):
    _, _, rj = _run(tmp_path, _write(tmp_path, corpus.table(), 2), {"verify_jaccard": 0.8, "verify_split": split})
    m = score_removals(corpus, _removed(rj), 0.8)
    assert m["precision"] >= 0.99
    assert m["recall"] >= 0.9
    assert m["f1"] >= (0.95 if split == "keep" else 0.96)


def test_deterministic_across_sharding(tmp_path, corpus):
    t = corpus.table()
    r1 = _run(tmp_path / "a", _write(tmp_path / "a", t, 1), {"verify_jaccard": 0.8, "num_partitions": 3})
    shuffled = t.take(pa.array(np.random.default_rng(3).permutation(t.num_rows)))
    r2 = _run(tmp_path / "b", _write(tmp_path / "b", shuffled, 5), {"verify_jaccard": 0.8, "num_partitions": 7})

    def canon(k):
        return sorted(zip(k.column("id").to_pylist(), k.column("dup_cluster").to_pylist(),
                          k.column("dup_cluster_size").to_pylist()))

    assert canon(r1[1]) == canon(r2[1])
    assert _removed(r1[2]) == _removed(r2[2])


def _policy_corpus() -> pa.Table:
    base = ("the committee reviewed every proposal submitted during the spring session and "
            "selected three projects for funding after a long discussion about budgets and goals")
    return pa.table({
        "id": ["c", "a", "b", "z"],
        "text": [base + " extra words appended here", base, base + " more", ("completely different text about "
                 "rivers and mountains and the weather in the northern provinces this year")],
        "source": ["web", "books", "wiki", "web"],
        "quality": [0.2, 0.9, 0.5, 0.1],
        "ts": [3, 1, 2, 9],
    })


@pytest.mark.parametrize("keep,expect", [("lowest_id", "a"), ("longest", "c"), ("highest:quality", "a"),
                                         ("newest:ts", "c"), ("source_priority:[wiki,books]", "b"),
                                         ("source_priority:books", "a")])
def test_keep_policies(tmp_path, keep, expect):
    files = _write(tmp_path, _policy_corpus(), 2)
    _, kept, rj = _run(tmp_path, files, {"keep": keep, "ngram": 3})
    assert sorted(kept.column("id").to_pylist()) == sorted([expect, "z"])
    row = {i: (c, s) for i, c, s in zip(kept.column("id").to_pylist(), kept.column("dup_cluster").to_pylist(),
                                        kept.column("dup_cluster_size").to_pylist())}
    assert row[expect] == (expect, 3) and row["z"] == ("z", 1)
    assert set(rj.column("dup_cluster").to_pylist()) == {expect}
    assert all(expect in d for d in rj.column("detail").to_pylist())


def test_annotate_mode(tmp_path):
    files = _write(tmp_path, _policy_corpus(), 1)
    _, kept, rj = _run(tmp_path, files, {"mode": "annotate", "ngram": 3})
    assert rj is None and kept.num_rows == 4
    ann = {i: (c, s, k) for i, c, s, k in zip(*(kept.column(n).to_pylist()
                                                for n in ("id", "dup_cluster", "dup_cluster_size", "dup_kept")))}
    assert ann == {"a": ("a", 3, True), "b": ("a", 3, False), "c": ("a", 3, False), "z": ("z", 1, True)}


def test_bad_parameters():
    with pytest.raises(ValidationError, match="num_perm"):
        MinHashDedup({"bands": 10, "rows": 8, "num_perm": 112})
    with pytest.raises(ValidationError, match="ngram"):
        MinHashDedup({"ngram": 0})
    with pytest.raises(ValidationError, match="keep"):
        MinHashDedup({"keep": "shortest"})
    with pytest.raises(ValidationError, match="verify_jaccard"):
        MinHashDedup({"verify_jaccard": 1.5})
    with pytest.raises(ValidationError, match="extra|forbid|unknown"):
        MinHashDedup({"bandz": 3})
    assert MinHashDedup({"keep": "highest:quality"}).required_columns() == {"quality"}


def test_missing_keep_column(tmp_path):
    files = _write(tmp_path, pa.table({"id": ["a", "b"], "text": ["x y z", "x y z"]}), 1)
    with pytest.raises(StageError, match="keep.*quality"):
        _run(tmp_path, files, {"keep": "highest:quality"})


def test_empty_short_and_long_documents(tmp_path):
    long_doc = " ".join(f"w{i % 5000}" for i in range(300_000))
    t = pa.table({"id": [f"d{i}" for i in range(8)],
                  "text": ["", "", "   ...  ", None, "hello", "Hello!", "word", long_doc]})
    _, kept, rj = _run(tmp_path, _write(tmp_path, t, 2), {"verify_jaccard": 0.8})
    # empty/no-word docs are never duplicates; identical one-word docs are
    assert sorted(kept.column("id").to_pylist()) == ["d0", "d1", "d2", "d3", "d4", "d6", "d7"]
    assert _removed(rj) == {"d5"}


def test_duplicate_ids_are_a_clear_error(tmp_path):
    t = pa.table({"id": ["x", "x", "y"], "text": ["same words here again", "same words here again", "other"]})
    with pytest.raises(StageError, match="more than once"):
        _run(tmp_path, _write(tmp_path, t, 1), {})


def test_snapshot_index_no_cross_duplicates(tmp_path):
    c = make_corpus(900, seed=21)
    t = c.table()
    idx = tmp_path / "index"
    # snapshot 1: the first 600 docs; snapshot 2: docs 300..900 (overlap 300..600)
    s1 = _write(tmp_path / "s1", t.slice(0, 600), 2)
    # first run of a refresh: against_index == write_index and no index yet -> created
    _, k1, rj1 = _run(tmp_path / "s1", s1, {"verify_jaccard": 0.8, "write_index": str(idx),
                                            "against_index": str(idx)})
    s2 = _write(tmp_path / "s2", t.slice(300, 600), 3)
    st2, k2, rj2 = _run(tmp_path / "s2", s2, {"verify_jaccard": 0.8, "against_index": str(idx),
                                             "write_index": str(idx)})
    assert st2["stats"]["removed_as_dup_of_index"] >= 300  # every overlapping doc is a dup of the index
    assert st2["stats"]["index_version"] == 2
    man = json.loads((idx / "index.json").read_text())
    assert [v["version"] for v in man["versions"]] == [1, 2]
    # every removed doc truly matches (J >= 0.8) its kept doc (a survivor, or one of snapshot 1 in
    # the index), and every truly matching candidate pair, within snapshot 2 or between snapshot 2
    # and the index, lost one end. (LSH recall itself is probabilistic: see minhash_guarantees.)
    assert check_run(t.slice(0, 600), k1, rj1) >= 100
    indexed = dict(zip(k1.column("id").to_pylist(), k1.column("text").to_pylist()))
    assert check_run(t.slice(300, 600), k2, rj2, idx, (1,), indexed) >= 300
    # a third run against the index finds everything already indexed
    s3 = _write(tmp_path / "s3", t.slice(0, 900), 3)
    _, k3, _ = _run(tmp_path / "s3", s3, {"verify_jaccard": 0.8, "against_index": str(idx)})
    assert k3.num_rows < 40


def test_index_errors(tmp_path):
    t = pa.table({"id": ["a", "b"], "text": ["one two three four five six", "seven eight nine ten eleven"]})
    files = _write(tmp_path, t, 1)
    idx = tmp_path / "idx"
    _run(tmp_path / "r1", files, {"write_index": str(idx)})
    # parameter mismatch
    with pytest.raises(StageError, match="different parameters.*seed"):
        _run(tmp_path / "r2", files, {"against_index": str(idx), "seed": 2})
    # version mismatch
    man = json.loads((idx / "index.json").read_text())
    (idx / "index.json").write_text(json.dumps({**man, "format_version": 99}))
    with pytest.raises(StageError, match="version 99"):
        _run(tmp_path / "r3", files, {"against_index": str(idx)})
    # corrupt manifest
    (idx / "index.json").write_text("{not json")
    with pytest.raises(StageError, match="corrupt"):
        _run(tmp_path / "r4", files, {"against_index": str(idx)})
    # corrupt band file
    (idx / "index.json").write_text(json.dumps(man))
    bf = idx / man["versions"][0]["bands"][0]
    bf.write_bytes(b"garbage")
    with pytest.raises(StageError, match="corrupt"):
        _run(tmp_path / "r5", files, {"against_index": str(idx)})
    with pytest.raises(StageError, match="no index.json"):
        _run(tmp_path / "r6", files, {"against_index": str(tmp_path / "nowhere")})


def test_datasketch_scheme_stage(tmp_path, corpus):
    files = _write(tmp_path, corpus.table().slice(0, 600), 2)
    common = {"bands": 16, "rows": 8, "num_perm": 128, "verify_jaccard": 0.8}
    _, _, rj = _run(tmp_path / "d", files, {"scheme": "datasketch", "datasketch_scheme": "legacy", **common})
    _, _, rf = _run(tmp_path / "f", files, common)
    a, b = _removed(rj), _removed(rf)
    assert len(a) >= 20 and len(a ^ b) <= 0.1 * len(a)


def test_hash_bits_32(tmp_path):
    files = _write(tmp_path, _policy_corpus(), 1)
    _, kept, _ = _run(tmp_path, files, {"ngram": 3, "hash_bits": 32})
    assert sorted(kept.column("id").to_pylist()) == ["a", "z"]


def test_batches_are_split_by_bytes(tmp_path, corpus, monkeypatch):
    """Huge batches are cut into bounded chunks; the decisions do not change."""
    from curate.stages.minhash_dedup import layout
    from curate.stages.minhash_dedup.signatures import byte_chunks

    files = _write(tmp_path, corpus.table().slice(0, 400), 1)
    _, k1, _ = _run(tmp_path / "a", files, {"verify_jaccard": 0.8})
    chunks = list(byte_chunks(pq.read_table(files[0]), "text"))
    assert len(chunks) == 1
    monkeypatch.setattr(layout, "MAX_CHUNK_BYTES", 20_000)
    chunks = list(byte_chunks(pq.read_table(files[0]), "text"))
    assert len(chunks) > 10 and sum(c.num_rows for c in chunks) == 400
    assert max(pa.compute.sum(pa.compute.binary_length(c.column("text"))).as_py() for c in chunks
               if c.num_rows > 1) <= 20_000
    _, k2, _ = _run(tmp_path / "b", files, {"verify_jaccard": 0.8})
    assert k1.column("id").to_pylist() == k2.column("id").to_pylist()


def test_threaded_fit_and_small_partitions_give_the_same_decisions(tmp_path, corpus, monkeypatch):
    """Fit tasks on threads, and set-carrying shuffles split into many small partitions
    (bounded reducer memory), change nothing in the result."""
    from curate.stages.minhash_dedup import layout
    from workers.task_runners import ThreadTaskRunner

    files = _write(tmp_path, corpus.table().slice(0, 600), 3)
    params = {"verify_jaccard": 0.8, "verify_split": "coverage"}
    s1, k1, _ = _run(tmp_path / "a", files, params)
    assert s1["stats"]["verify_partitions"] == 1  # a small corpus: one partition
    monkeypatch.setattr(layout, "PART_BYTES", 64 * 1024)
    monkeypatch.setattr(layout, "MAX_CHUNK_BYTES", 50_000)  # streamed in many chunks too
    st = MinHashDedup(params).bind("dd", seed=1)
    runner = ThreadTaskRunner(2)
    ctx = FitContext(runner=runner, state_dir=tmp_path / "b" / "state", scratch_dir=tmp_path / "b" / "scratch",
                     seed=1, node_id="dd")
    s2 = st.fit({"up": ShardSet(files=tuple(files))}, ctx)
    runner.close()
    assert s2["stats"]["verify_partitions"] > 4
    k2 = pa.concat_tables([st.apply(pq.read_table(f), s2).kept for f in files])
    assert k1.column("id").to_pylist() == k2.column("id").to_pylist()
    # (raw candidate edges are deduplicated per partition, so only their count may differ)
    skip = ("phase_seconds", "verify_partitions", "lsh_partitions", "candidate_edges")
    assert {k: v for k, v in s1["stats"].items() if k not in skip} == \
        {k: v for k, v in s2["stats"].items() if k not in skip}


@pytest.mark.parametrize("split", ["keep", "coverage"])
def test_indexed_documents_never_absorb_each_other(tmp_path, split):
    """Two indexed documents that truly match each other (from different versions here; an
    LSH miss can do the same within one) are both keepers: a new document that truly
    matches only the second one is removed as its duplicate, not kept because the first
    one absorbed it."""
    words = [f"tok{i}x" for i in range(200)]  # 196 word 5-grams; one edited word changes 5 of them

    def edit(ws: list[str], positions: list[int]) -> list[str]:
        return [f"new{p}q" if p in positions else w for p, w in enumerate(ws)]

    x = words
    e, y = edit(x, [30, 60]), edit(x, [100, 130, 160])
    d = edit(e, [100, 130, 160])  # J(x,e)=J(y,d)=0.90, J(x,y)=J(e,d)=0.86, J(x,d)=J(e,y)=0.77

    def table(ids, docs):
        return pa.table({"id": ids, "text": [" ".join(w) for w in docs]})

    idx = tmp_path / "idx"
    params = {"verify_jaccard": 0.8, "verify_split": split}
    _run(tmp_path / "r1", _write(tmp_path / "r1", table(["a-x"], [x]), 1), {**params, "write_index": str(idx)})
    _run(tmp_path / "r2", _write(tmp_path / "r2", table(["b-y"], [y]), 1), {**params, "write_index": str(idx)})
    _, kept, rj = _run(tmp_path / "r3", _write(tmp_path / "r3", table(["e", "d"], [e, d]), 1),
                       {**params, "against_index": str(idx)})
    assert kept.num_rows == 0
    assert sorted(zip(rj.column("id").to_pylist(), rj.column("detail").to_pylist())) == [
        ("d", "near-duplicate of an indexed document b-y (cluster size 2)"),
        ("e", "near-duplicate of an indexed document a-x (cluster size 2)")]


def test_a_later_fit_in_the_same_scratch_directory_uses_its_own_node_filters(tmp_path):
    """The verification node filters are cached per process: a second fit that reuses the
    scratch directory (a rerun, a script fitting twice) must not be served the first
    fit's filter, which would hide its documents' shingle sets."""
    first = _write(tmp_path / "c1", make_corpus(300, seed=3).table(), 2)
    second = _write(tmp_path / "c2", make_corpus(300, seed=4).table(), 2)
    params = {"verify_jaccard": 0.8}
    s_fresh, k_fresh, _ = _run(tmp_path / "fresh", second, params)
    _run(tmp_path / "shared", first, params)
    s_again, k_again, _ = _run(tmp_path / "shared", second, params)
    assert s_fresh["stats"]["removed"] > 20
    assert s_again["stats"]["removed"] == s_fresh["stats"]["removed"]
    assert k_again.column("id").to_pylist() == k_fresh.column("id").to_pylist()


def test_version_1_index_with_list_sets_is_still_read(tmp_path):
    """Indexes written before sets were stored as binary (format 1, list<uint64>) still
    dedup correctly, and appending to one upgrades its manifest."""
    c = make_corpus(300, seed=5)
    t = c.table()
    idx = tmp_path / "index"
    s1 = _write(tmp_path / "s1", t.slice(0, 200), 2)
    _run(tmp_path / "s1", s1, {"verify_jaccard": 0.8, "write_index": str(idx)})
    s2 = _write(tmp_path / "s2", t.slice(100, 200), 2)
    st_new, k_new, _ = _run(tmp_path / "n", s2, {"verify_jaccard": 0.8, "against_index": str(idx)})
    # rewrite the index in the version-1 layout
    man = json.loads((idx / "index.json").read_text())
    assert man["format_version"] == 2
    for v in man["versions"]:
        for f in v["sets"]:
            tb = pq.read_table(idx / f)
            assert pa.types.is_large_binary(tb.schema.field("sh").type)
            vals = np.frombuffer(b"".join(x or b"" for x in tb.column("sh").to_pylist()), "<u8")
            lens = [len(x) // 8 for x in tb.column("sh").to_pylist()]
            offs = np.r_[0, np.cumsum(lens)].astype(np.int64)
            old = pa.LargeListArray.from_arrays(pa.array(offs), pa.array(vals.astype(np.uint64)))
            pq.write_table(tb.set_column(2, "sh", old), idx / f)
    (idx / "index.json").write_text(json.dumps({**man, "format_version": 1}))
    st_old, k_old, _ = _run(tmp_path / "o", s2, {"verify_jaccard": 0.8, "against_index": str(idx),
                                                 "write_index": str(idx)})
    assert st_old["stats"]["removed_as_dup_of_index"] == st_new["stats"]["removed_as_dup_of_index"] >= 90
    assert k_old.column("id").to_pylist() == k_new.column("id").to_pylist()
    assert json.loads((idx / "index.json").read_text())["format_version"] == 2


def test_index_of_a_file_whose_documents_were_all_removed(tmp_path):
    """A signature file with no survivor still gets (empty) band and set files, so the
    index stays usable with verification."""
    t = pa.table({"id": ["a", "b", "c"], "text": ["one two three four five six seven"] * 3})
    files = _write(tmp_path, t, 3)  # b and c, alone in their files, are both removed
    idx = tmp_path / "idx"
    _run(tmp_path / "r1", files, {"verify_jaccard": 0.8, "write_index": str(idx)})
    man = json.loads((idx / "index.json").read_text())
    v = man["versions"][0]
    assert len(v["bands"]) == len(v["sets"]) == 3 and v["docs"] == 1
    assert sorted(pq.read_table(idx / f).num_rows for f in v["sets"]) == [0, 0, 1]
    _, kept, rj = _run(tmp_path / "r2", files, {"verify_jaccard": 0.8, "against_index": str(idx)})
    assert kept.num_rows == 0 and rj.num_rows == 3
