"""curate stages on your own ``ray.data.Dataset`` (for ad hoc Ray scripts).

    from curate.stages import ExactDedup, LengthFilter
    from workers.ray_api import apply, read_corpus

    ds = read_corpus("s3://bucket/corpus/*.parquet")              # stable ids, quarantine
    ds = apply(LengthFilter(min_words=50), ds)
    ds = apply(ExactDedup(), ds, work_dir="/tmp/dd")              # barriers fit first
    ds.write_parquet("out/")

Map stages become ``map_batches(batch_format="pyarrow")`` (an actor pool for stages that
hold a model, so it loads once per actor). Barrier stages materialize the dataset to
``work_dir``, fit with Ray tasks, then apply as a map. Rejected rows are dropped from
the returned dataset unless ``rejects="keep"`` (then they stay, with ``stage``,
``reason`` and ``detail`` set), or written to Parquet with ``rejects_path=...``.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from curate import schema
from curate.fit import FitContext, ShardSet
from curate.stage import BarrierStage, MapResult, Stage


class _Apply:
    """map_batches UDF: runs one stage on a batch; annotate or drop rejects."""

    def __init__(self, stage: Stage, state: dict | None, keep_rejects: bool):
        self.stage, self.keep_rejects = stage, keep_rejects
        self.stage.ensure_setup()
        self.loaded = stage.load(state or {}) if isinstance(stage, BarrierStage) else None

    def __call__(self, batch: pa.Table) -> pa.Table:
        if isinstance(self.stage, BarrierStage):
            res: MapResult = self.stage.process(batch, self.loaded)
        else:
            res = self.stage.process(batch)
        if not self.keep_rejects:
            return res.kept
        kept = res.kept
        n = kept.num_rows
        kept = kept.append_column(schema.STAGE, pa.nulls(n, pa.string()))
        kept = kept.append_column(schema.REASON, pa.nulls(n, pa.string()))
        kept = kept.append_column(schema.DETAIL, pa.nulls(n, pa.string()))
        if res.rejected is None or res.rejected.num_rows == 0:
            return kept
        rej = res.rejected
        rej = rej.append_column(schema.STAGE, pa.array([self.stage.node_id] * rej.num_rows, pa.string()))
        rej = rej.select(kept.column_names) if set(kept.column_names) <= set(rej.column_names) else rej
        return pa.concat_tables([kept, rej], promote_options="permissive")


def apply(
    stage: Stage,
    ds: Any,
    *,
    rejects: str = "drop",
    rejects_path: str | None = None,
    work_dir: str | None = None,
    concurrency: int | None = None,
) -> Any:
    """Apply ``stage`` to a Ray dataset; see the module docstring."""
    import ray
    import ray.data

    from workers.ray_exec import RayTaskRunner, ensure_ray

    ensure_ray()
    if rejects not in ("drop", "keep"):
        raise ValueError("rejects must be 'drop' or 'keep'")
    if schema.ID not in ds.schema().names:
        raise ValueError("the dataset has no 'id' column: read it with workers.ray_api.read_corpus() or add "
                         "stable ids first")
    state = None
    if isinstance(stage, BarrierStage):
        if work_dir is None:  # a private one, removed when this driver exits (the dataset is lazy)
            work_dir = tempfile.mkdtemp(prefix=f"curate-{stage.name}-")
            atexit.register(shutil.rmtree, work_dir, True)
        wd = Path(work_dir)
        data_dir = wd / "input"
        ds.write_parquet(str(data_dir))
        ds = ray.data.read_parquet(str(data_dir))
        files = tuple(sorted(str(p) for p in data_dir.glob("*.parquet")))
        ctx = FitContext(
            runner=RayTaskRunner(), state_dir=wd / "state", scratch_dir=wd / "scratch",
            seed=stage.seed, node_id=stage.node_id, text_column=stage.text_column,
        )
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        state = stage.fit({"input": ShardSet(files=files, text_column=stage.text_column)}, ctx)
        (wd / "state" / "state.json").write_text(json.dumps(state, default=str))
    keep = rejects == "keep" or rejects_path is not None
    if stage.uses_model:
        out = ds.map_batches(
            _Apply, fn_constructor_args=(stage, state, keep), batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=concurrency or 2),
        )
    else:
        out = ds.map_batches(_Apply(stage, state, keep), batch_format="pyarrow")
    if rejects_path is not None:
        out = out.materialize()
        out.filter(lambda r: r[schema.REASON] is not None).write_parquet(rejects_path)
        out = out.filter(lambda r: r[schema.REASON] is None).drop_columns([schema.STAGE, schema.REASON, schema.DETAIL])
    return out


class _ReadShards:
    """map_batches UDF: reads shards (with stable ids) as a generator of tables."""

    def __init__(self, inputs: dict, batch_size: int, max_doc_bytes: int):
        self.inputs, self.batch_size, self.max_doc_bytes = inputs, batch_size, max_doc_bytes

    def __call__(self, batch: pa.Table):
        from curate.spec import InputSpec
        from workers.ingest import Shard, read_shard

        for s in batch.column("shard").to_pylist():
            sh = Shard(**json.loads(s))
            inp = InputSpec.model_validate(self.inputs[sh.input])
            for clean, _rej in read_shard(sh, inp, self.batch_size, self.max_doc_bytes):
                if clean.num_rows:
                    yield clean


def read_corpus(
    path: str | list[str], *, text_column: str = schema.TEXT, domain: str | None = None,
    batch_size: int = 4096, max_doc_bytes: int = 10_000_000, rows_per_shard: int = 200_000,
) -> Any:
    """Read Parquet as a Ray dataset with curate's stable ids; bad documents are dropped
    (null, empty, over ``max_doc_bytes``); bad files raise naming the file."""
    import ray.data

    from curate.spec import InputSpec
    from workers.ingest import ShardError, list_input_shards
    from workers.ray_exec import ensure_ray

    ensure_ray()
    inp = InputSpec(path=path, text_column=text_column, domain=domain)
    shards, bad = list_input_shards("input", inp, rows_per_shard)
    if bad:
        raise ShardError(bad[0]["path"], bad[0]["problem"])
    items = [{"shard": json.dumps(s.to_dict())} for s in shards]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    return ds.map_batches(
        _ReadShards({"input": inp.model_dump(mode="json")}, batch_size, max_doc_bytes),
        batch_size=1, batch_format="pyarrow",
    )
