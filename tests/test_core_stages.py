"""The built-in core stages, in-process, on hand-checked batches."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from curate.registry import catalogue
from curate.stage import FitContext, LocalTaskRunner, ShardSet
from curate.stages.basic import LengthFilter, Sample, ThresholdFilter, Union
from curate.stages.exact_dedup import ExactDedup


def _batch(texts, **cols):
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts, **cols})


def test_length_filter_words_and_chars():
    st = LengthFilter(min_words=3, max_chars=30).bind("len", 1)
    res = st(_batch(["one two", "one two three", "x " * 20, "a b c d"]))
    assert res.kept.column("id").to_pylist() == ["d1", "d3"]
    assert res.rejected.column("reason").to_pylist() == ["too_few_words", "too_long_chars"]
    assert res.rejected.column("detail").to_pylist() == ["2 words", "40 chars"]
    with pytest.raises(ValidationError, match="at least one"):
        LengthFilter()
    with pytest.raises(ValidationError, match="min_words must be"):
        LengthFilter(min_words=5, max_words=2)


def test_sample_is_seeded_per_id_not_per_position():
    b = _batch([f"doc {i}" for i in range(2000)])
    s1 = Sample(fraction=0.3).bind("s", 7)
    kept = s1(b).kept.column("id").to_pylist()
    assert 500 < len(kept) < 700
    # Same ids in another order and batch split -> same decisions.
    rev = b.take(pa.array(list(range(1999, -1, -1))))
    again = set(Sample(fraction=0.3).bind("s", 7)(rev.slice(0, 900)).kept.column("id").to_pylist()) | set(
        Sample(fraction=0.3).bind("s", 7)(rev.slice(900)).kept.column("id").to_pylist()
    )
    assert again == set(kept)
    assert set(Sample(fraction=0.3).bind("s", 8)(b).kept.column("id").to_pylist()) != set(kept)
    with pytest.raises(ValidationError):
        Sample(fraction=0)


def test_threshold_filter_ops_and_nulls():
    b = _batch(["a", "b", "c", "d"], quality=[0.9, 0.2, None, 0.5])
    res = ThresholdFilter(column="quality", op=">=", value=0.5).bind("t", 0)(b)
    assert res.kept.column("id").to_pylist() == ["d0", "d3"]
    assert res.rejected.column("reason").to_pylist() == ["threshold", "null_value"]
    assert res.rejected.column("detail").to_pylist()[0] == "0.2"
    res = ThresholdFilter(column="quality", op="<", value=0.5, keep_null=True).bind("t", 0)(b)
    assert res.kept.column("id").to_pylist() == ["d1", "d2"]


def test_union_passes_rows_through():
    b = _batch(["a", "b"])
    assert Union().bind("u", 0)(b).kept.equals(b)


def test_exact_dedup_keeps_lowest_id_across_files(tmp_path):
    pq.write_table(pa.table({"id": ["b", "c"], "text": ["Hello,  World!", "unique one"]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"id": ["a", "d"], "text": ["hello world", "HELLO world."]}), tmp_path / "2.parquet")
    st = ExactDedup().bind("dd", 0)
    ctx = FitContext(runner=LocalTaskRunner(), state_dir=tmp_path / "state", scratch_dir=tmp_path / "scratch",
                     seed=0, node_id="dd", num_partitions=3)
    ctx.state_dir.mkdir()
    state = st.fit({"up": ShardSet(files=(str(tmp_path / "1.parquet"), str(tmp_path / "2.parquet")))}, ctx)
    assert state["stats"]["duplicates"] == 2
    r1 = st.apply(pq.read_table(tmp_path / "1.parquet"), state)
    r2 = st.apply(pq.read_table(tmp_path / "2.parquet"), state)
    assert r1.kept.column("id").to_pylist() == ["c"] and r2.kept.column("id").to_pylist() == ["a"]
    assert r1.rejected.column("detail").to_pylist() == ["a"] and r2.rejected.column("reason").to_pylist() == ["exact_duplicate"]
    raw = ExactDedup(normalize=False).bind("dd2", 0)
    state2 = raw.fit({"up": ShardSet(files=(str(tmp_path / "2.parquet"),))}, ctx)
    assert state2["stats"]["duplicates"] == 0


def test_catalogue_lists_every_stage_with_schema():
    cat = {c["name"]: c for c in catalogue()}
    for name in ("length_filter", "sample", "threshold_filter", "union", "exact_dedup"):
        assert name in cat
        assert cat[name]["params_schema"]["type"] == "object"
        assert cat[name]["summary"]
    assert cat["exact_dedup"]["kind"] == "barrier" and cat["sample"]["kind"] == "map"
    assert "fraction" in cat["sample"]["params_schema"]["properties"]
