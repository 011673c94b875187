"""Tests for the bundled sample corpus (curate.sample_data)."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from curate import sample_data
from curate.sample_data import CORPUS_DOMAINS, write_sample_corpus

SMALL_MB = 0.6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample") / "corpus"
    return out, write_sample_corpus(out, target_mb=SMALL_MB, seed=0)


def _shingles(text: str, k: int = 5) -> frozenset[tuple[str, ...]]:
    w = text.split()
    return frozenset(tuple(w[i : i + k]) for i in range(max(0, len(w) - k + 1)))


def test_layout_schema_and_manifest(corpus):
    out, m = corpus
    assert set(m["rows_per_domain"]) == set(CORPUS_DOMAINS)
    for d in CORPUS_DOMAINS:
        parts = sorted((out / d).glob("part-*.parquet"))
        assert len(parts) >= 3, d
        assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(len(parts))]
    paths = sorted(str(p.relative_to(out)) for p in out.glob("*/part-*.parquet"))
    assert sorted(f["path"] for f in m["files"]) == paths
    table = ds.dataset(str(out), format="parquet", exclude_invalid_files=True).to_table()
    assert table.schema.names == ["text", "source", "domain", "url"]
    assert table.num_rows == m["total_rows"] == sum(m["rows_per_domain"].values())
    for f in m["files"]:
        t = pq.read_table(out / f["path"])
        assert t.num_rows == f["rows"]
        assert set(t.column("domain").to_pylist()) == {f["domain"]}
        assert (out / f["path"]).stat().st_size == f["bytes"]
    assert m["total_bytes"] == sum(f["bytes"] for f in m["files"])
    # target is the text size, roughly respected
    assert 0.6 * SMALL_MB * 1e6 <= m["total_text_bytes"] <= 1.6 * SMALL_MB * 1e6
    assert json.loads((out / "manifest.json").read_text())["total_rows"] == m["total_rows"]
    # urls are unique, sources are filled in
    assert len(set(table.column("url").to_pylist())) == table.num_rows
    assert table.column("source").null_count == 0


def test_bad_rows_and_junk_present(corpus):
    out, m = corpus
    t = ds.dataset(str(out / "web"), format="parquet").to_table()
    texts = t.column("text").to_pylist()
    assert sum(x is None for x in texts) >= 2
    assert sum(x == "" for x in texts) >= 2
    assert sum(x is not None and x != "" and not x.strip() for x in texts) >= 2
    sources = set(t.column("source").to_pylist())
    assert {"synthetic:spam", "synthetic:boilerplate", "synthetic:shuffled"} <= sources
    kinds = m["kinds_per_domain"]["web"]
    assert kinds["null"] == sum(x is None for x in texts)
    # exact duplicates among non-empty texts
    nonempty = [x for x in texts if x and x.strip()]
    assert len(set(nonempty)) < len(nonempty)


def test_near_duplicates_present(corpus):
    out, _m = corpus
    for domain in ("web", "prose"):
        texts = [
            x
            for x in ds.dataset(str(out / domain), format="parquet").to_table().column("text").to_pylist()
            if x and len(x.split()) >= 30
        ]
        sh = [_shingles(x) for x in texts]
        near = 0
        for i, j in combinations(range(len(texts)), 2):
            if texts[i] == texts[j]:
                continue
            a, b = sh[i], sh[j]
            if len(a & b) >= 0.8 * len(a | b):
                near += 1
        assert near >= 5, (domain, near)


def test_legal_has_natural_duplicates(corpus):
    out, _m = corpus
    t = ds.dataset(str(out / "legal"), format="parquet").to_table()
    texts = t.column("text").to_pylist()
    # the same license text body (e.g. Apache-2.0) ships with many packages
    common = [x for x in texts if "Apache License" in x or "Permission is hereby granted" in x]
    assert len(common) >= 2
    assert pc.count_distinct(t.column("source")).as_py() >= 10


def test_deterministic_bytes(tmp_path, corpus):
    out, m = corpus
    again = write_sample_corpus(tmp_path / "b", target_mb=SMALL_MB, seed=0)
    assert again["files"] == m["files"]
    for f in m["files"]:
        assert (out / f["path"]).read_bytes() == (tmp_path / "b" / f["path"]).read_bytes(), f["path"]
    assert (out / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    other = write_sample_corpus(tmp_path / "c", target_mb=SMALL_MB, seed=1)
    first = "web/part-00000.parquet"
    assert (tmp_path / "c" / first).read_bytes() != (out / first).read_bytes()
    assert other["rows_per_domain"].keys() == m["rows_per_domain"].keys()


def test_rewrite_replaces_stale_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_data, "SHARD_TEXT_BYTES", 50_000)
    big = write_sample_corpus(tmp_path, target_mb=1.0, seed=0)
    small = write_sample_corpus(tmp_path, target_mb=0.2, seed=0)
    n_big = len([f for f in big["files"] if f["domain"] == "web"])
    n_small = len([f for f in small["files"] if f["domain"] == "web"])
    assert n_big > n_small
    assert len(list((tmp_path / "web").glob("part-*.parquet"))) == n_small


def test_bad_target():
    with pytest.raises(ValueError, match="target_mb"):
        write_sample_corpus("/nonexistent-never-created", target_mb=0)


FIXTURE = Path(__file__).parent / "fixtures" / "sample_corpus"


def test_committed_fixture_matches_its_manifest():
    m = json.loads((FIXTURE / "manifest.json").read_text())
    assert m["labels"] is True
    for f in m["files"]:
        t = pq.read_table(FIXTURE / f["path"])
        assert t.num_rows == f["rows"]
        assert t.schema.names == ["text", "source", "domain", "url", "kind", "dup_of"]
    web = ds.dataset(str(FIXTURE / "web"), format="parquet").to_table().to_pylist()
    by_url = {r["url"]: r for r in web}
    kinds = {r["kind"] for r in web}
    assert {"clean", "exact_dup", "spam", "boilerplate", "shuffled", "null", "empty"} <= kinds
    sims = []
    for r in web:
        if r["kind"] == "exact_dup":
            assert by_url[r["dup_of"]]["text"] == r["text"]
        elif r["kind"].startswith("near_dup_"):
            a, b = _shingles(r["text"]), _shingles(by_url[r["dup_of"]]["text"])
            sims.append(len(a & b) / len(a | b))
        else:
            assert r["dup_of"] is None
    # short pages with a boilerplate header/footer drop lowest; most copies are close
    assert len(sims) >= 20 and min(sims) >= 0.4
    assert sorted(sims)[len(sims) // 2] >= 0.8


def test_labels_do_not_change_texts(tmp_path, corpus):
    out, m = corpus
    lab = write_sample_corpus(tmp_path / "l", target_mb=SMALL_MB, seed=0, labels=True)
    assert lab["rows_per_domain"] == m["rows_per_domain"]
    a = ds.dataset(str(out / "web"), format="parquet").to_table()
    b = ds.dataset(str(tmp_path / "l" / "web"), format="parquet").to_table()
    assert a.column("text").to_pylist() == b.column("text").to_pylist()
    assert a.column("url").to_pylist() == b.column("url").to_pylist()
