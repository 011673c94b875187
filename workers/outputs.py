"""Where a job's node parts live, and publishing its named outputs.

Every materialized node writes ``part-*.parquet`` under ``<job_dir>/nodes/<node>``, except
a node named by a local output, which writes straight into that output directory. A remote
output (``s3://...``) is written locally under ``nodes/`` and uploaded when the job succeeds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq

from curate import schema
from curate.plan import Plan
from curate.spec import PipelineSpec


def is_remote(path: str) -> bool:
    return "://" in str(path)


def node_dirs(spec: PipelineSpec, plan: Plan, job_dir: Path) -> dict[str, Path]:
    """The directory each materialized node's parts go to."""
    dirs = {x: job_dir / "nodes" / x for x in plan.materialized}
    for out in spec.outputs.values():
        if is_remote(out.path):
            continue
        dirs.setdefault(out.node, Path(out.path).resolve())
        if dirs[out.node] == job_dir / "nodes" / out.node:
            dirs[out.node] = Path(out.path).resolve()
    return dirs


def output_paths(spec: PipelineSpec) -> dict[str, str]:
    """Output name -> where it is published (absolute for local paths)."""
    return {name: o.path if is_remote(o.path) else str(Path(o.path).resolve()) for name, o in spec.outputs.items()}


def publish_outputs(spec: PipelineSpec, dirs: dict[str, Path]) -> None:
    """Copy each output's parts to its path when another output already holds the node, and
    upload remote outputs; stale parts of an earlier run at the destination go."""
    for o in spec.outputs.values():
        src = dirs[o.node]
        if is_remote(o.path):
            _upload(src, o.path)
            continue
        dst = Path(o.path).resolve()
        if dst != src:
            dst.mkdir(parents=True, exist_ok=True)
            names = {f.name for f in src.glob("part-*.parquet")}
            for f in dst.glob("part-*.parquet"):
                if f.name not in names:  # stale part from an earlier (resumed) run
                    f.unlink()
            for name in sorted(names):
                shutil.copyfile(src / name, dst / name)


def _upload(src: Path, dst: str) -> None:
    """Copy a node's part files to a remote prefix (s3://...); each object PUT is atomic."""
    import fsspec

    fs, _, (root,) = fsspec.get_fs_token_paths(dst)
    names = sorted(f.name for f in src.glob("part-*.parquet"))
    try:
        existing = [p for p in fs.ls(root, detail=False) if p.rsplit("/", 1)[-1].startswith("part-")]
    except FileNotFoundError:
        existing = []
    for p in existing:  # stale parts of an earlier run
        if p.rsplit("/", 1)[-1] not in names:
            fs.rm(p)
    for n in names:
        fs.put_file(str(src / n), f"{root.rstrip('/')}/{n}")


def output_files(path: str | Path) -> list[str]:
    """Part files of an output directory, sorted."""
    return sorted(str(p) for p in Path(path).glob("part-*.parquet"))


def read_output(path: str | Path, sort_by_id: bool = True):
    """Read an output directory into one table (small outputs; tests and examples)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    files = output_files(path)
    if not files:
        return pa.table({})
    t = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    if sort_by_id and schema.ID in t.column_names:
        t = t.take(pc.sort_indices(t, sort_keys=[(schema.ID, "ascending")]))
    return t
