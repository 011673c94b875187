"""The built-in core stages, in-process, on hand-checked batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from curate.fit import FitContext, LocalTaskRunner, ShardSet
from curate.registry import catalogue
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


class _Chunks:
    """Map function yielding a file in chunks (a streamed shuffle map)."""

    def __call__(self, path):
        t = pq.read_table(path)
        for i in range(0, t.num_rows, 7):
            yield t.slice(i, 7)


def _group_sum(t):
    k = t.column("k").to_numpy()
    v = t.column("v").to_numpy()
    keys = np.unique(k)
    return pa.table({"k": keys, "s": np.array([v[k == x].sum() for x in keys])})


def test_shuffle_streamed_map_and_threads(tmp_path):
    """A shuffle whose map yields chunks gives the same groups as one table per source,
    on threads and in order; the thread runner returns results in item order."""
    from workers.task_runners import ThreadTaskRunner

    rng = np.random.default_rng(0)
    files = []
    for i in range(3):
        f = tmp_path / f"in-{i}.parquet"
        pq.write_table(pa.table({"k": rng.integers(0, 20, 50), "v": rng.integers(0, 100, 50)}), f)
        files.append(str(f))
    whole = pa.concat_tables([pq.read_table(f) for f in files])
    expect = dict(zip(*_group_sum(whole).to_pydict().values()))
    for runner in (LocalTaskRunner(), ThreadTaskRunner(2)):
        ctx = FitContext(runner=runner, state_dir=tmp_path / "state", scratch_dir=tmp_path / "scratch", seed=1,
                         node_id="s")
        outs = ctx.shuffle(files, _Chunks(), "k", _group_sum, 4, name="chunked")
        got = pa.concat_tables([pq.read_table(o) for o in outs]).to_pydict()
        assert dict(zip(got["k"], got["s"])) == expect
    # one file per (source, partition), however many chunks the source yielded
    from curate.shuffle import _MapTask

    counts = _MapTask(_Chunks(), "k", 4, str(tmp_path / "m"))((0, files[0]))
    written = sorted((tmp_path / "m").glob("p*/*.parquet"))
    assert sum(counts) == 50 and len(written) == sum(1 for c in counts if c) == 4
    assert [pq.ParquetFile(f).metadata.num_rows for f in written] == [c for c in counts if c]
    assert max(pq.ParquetFile(f).metadata.num_row_groups for f in written) > 1
    r = ThreadTaskRunner(2)
    assert r.map(lambda x: x * x, range(50)) == [x * x for x in range(50)]
    with pytest.raises(ZeroDivisionError):
        r.map(lambda x: 1 // (x - 3), range(6))
    r.close()


def test_local_executor_fit_threads(monkeypatch):
    """The local executor runs fit tasks on CURATE_FIT_THREADS threads (default: the CPUs)."""
    import os

    from workers.local import LocalExecutor
    from workers.task_runners import ThreadTaskRunner

    monkeypatch.setenv("CURATE_FIT_THREADS", "3")
    r = LocalExecutor().task_runner()
    assert isinstance(r, ThreadTaskRunner) and r.parallelism == 3
    assert LocalExecutor(fit_threads=1).task_runner().parallelism == 1
    monkeypatch.delenv("CURATE_FIT_THREADS")
    assert LocalExecutor().task_runner().parallelism == (os.cpu_count() or 1)


RELEASE_PROBE = """
import json, numpy as np, psutil, pyarrow as pa
from workers.task_runners import release_memory
proc = psutil.Process()
rss = lambda: proc.memory_info().rss
base = rss()
parts = [pa.array(np.arange(1 << 16, dtype=np.int64) + i) for i in range(512)]
big = pa.concat_arrays(parts)      # 256 MiB written into Arrow's pool
del parts
touched = rss() - base
del big
freed = rss() - base
release_memory()
release_memory()                   # a second call is harmless
print(json.dumps({"backend": pa.default_memory_pool().backend_name, "touched": touched,
                  "freed": freed, "released": rss() - base}))
"""


def test_release_memory_hands_arrow_pages_back():
    """After a fit task frees 256 MiB of Arrow buffers, release_memory leaves the process
    within a few MiB of where it started (measured in a fresh process, so other tests'
    threads do not move its RSS). Whether the pool keeps freed pages until then depends on
    mimalloc's purge timing, so only the end state is asserted."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", RELEASE_PROBE], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    m = json.loads(out.stdout)
    mib = 1 << 20
    assert m["touched"] > 200 * mib
    assert m["released"] < m["touched"] - 200 * mib


def test_parquet_parts_commit_and_abort(tmp_path):
    """Files appear only on commit (all row groups in them); an error leaves nothing."""
    from curate.parquet_io import ParquetParts

    t = pa.table({"k": [1, 2], "sh": pa.array([b"\x00" * 8, b"\x01" * 16], pa.large_binary())})
    with ParquetParts() as parts:
        parts.write(tmp_path / "a" / "x.parquet", t)
        parts.write(tmp_path / "a" / "x.parquet", t)
        assert not (tmp_path / "a" / "x.parquet").exists()
    md = pq.ParquetFile(tmp_path / "a" / "x.parquet").metadata
    assert md.num_rows == 4 and md.num_row_groups == 2
    assert md.row_group(0).column(1).compression == "UNCOMPRESSED"  # hash column: plain
    with pytest.raises(RuntimeError), ParquetParts() as parts:
        parts.write(tmp_path / "b" / "y.parquet", t)
        raise RuntimeError("boom")
    assert list((tmp_path / "b").iterdir()) == []
