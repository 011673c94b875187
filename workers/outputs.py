"""Where a job's node parts live, and publishing its named outputs atomically.

Every materialized node writes ``part-*.parquet`` under ``<job_dir>/nodes/<node>``, except
a node named by a local output: it writes into that output's **staging directory**,
``<parent>/.<name>.staging-<tag>`` beside the output (``tag`` derives from the job
directory, so a resumed run finds its staging again). Nothing is written to the output
path itself until the job has succeeded and its ledger balances; then each staging
directory replaces its output by renames on one filesystem (the old output is renamed
aside, the staging directory renamed into place, the old one removed). A reader sees the
previous output or the new one, never a mixture. A failed or cancelled run leaves the
previous output as it was; only its own staging directory is marked ``INCOMPLETE``.

A remote output (``s3://...``) is written under ``nodes/`` and uploaded when the job
succeeds: its ``_SUCCESS`` marker is deleted first, stale parts removed, the parts put,
then ``_SUCCESS`` written last with the manifest of the parts (name and size). S3 has no
rename: readers must honour ``_SUCCESS``.

A job directory on an object store (``job_dir: s3://...``) has no staging directories:
every node writes under ``nodes/`` there (workers on any host can reach it), and a local
output is staged at publish time by copying its parts down, then swapped into place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import xxhash

from curate import jobfs, schema
from curate.plan import Plan
from curate.spec import PipelineSpec

is_remote = jobfs.is_remote


SUCCESS_MARKER = "_SUCCESS"
INCOMPLETE_MARKER = "INCOMPLETE"
PUBLISHED_BY = ".curate-published.json"  # in a published output: which job directory published it


def _tag(job_dir: jobfs.JobPath) -> str:
    return xxhash.xxh3_64_hexdigest(str(jobfs.resolve(job_dir)).encode())[:12]


def staging_dir(output_path: str | Path, job_dir: Path) -> Path:
    """Where ``job_dir``'s run stages the output published at ``output_path``."""
    out = Path(output_path).resolve()
    return out.parent / f".{out.name}.staging-{_tag(job_dir)}"


def local_outputs(spec: PipelineSpec) -> list[Path]:
    return [Path(o.path).resolve() for o in spec.outputs.values() if not is_remote(o.path)]


def node_dirs(spec: PipelineSpec, plan: Plan, job_dir: Path) -> dict[str, Path]:
    """The directory each materialized node's parts go to (a staging directory for a node
    named by a local output)."""
    dirs = {x: job_dir / "nodes" / x for x in plan.materialized}
    if is_remote(job_dir):
        return dirs
    for out in spec.outputs.values():
        if is_remote(out.path):
            continue
        stage_at = staging_dir(out.path, job_dir)
        dirs.setdefault(out.node, stage_at)
        if dirs[out.node] == job_dir / "nodes" / out.node:
            dirs[out.node] = stage_at
    return dirs


def mark_staging_incomplete(spec: PipelineSpec, job_dir: Path, why: str) -> None:
    """Mark this run's own staging directories (never a published output) as partial."""
    for out in spec.outputs.values():
        if is_remote(out.path):
            continue
        d = staging_dir(out.path, job_dir)
        if d.exists():
            (d / INCOMPLETE_MARKER).write_text(f"{why}\nThese parts are partial and must not be used.\n")


def output_paths(spec: PipelineSpec) -> dict[str, str]:
    """Output name -> where it is published (absolute for local paths)."""
    return {name: o.path if is_remote(o.path) else str(Path(o.path).resolve()) for name, o in spec.outputs.items()}


def publish_outputs(spec: PipelineSpec, dirs: dict[str, Path], job_dir: Path) -> None:
    """Publish every output of a succeeded job (see the module docstring)."""
    for o in spec.outputs.values():
        src = dirs[o.node]
        if is_remote(o.path):
            _upload(src, o.path)
            continue
        stage_at = staging_dir(o.path, job_dir)
        if stage_at != src:  # a second output of one node, or a remote job dir: stage a copy of its parts
            shutil.rmtree(stage_at, ignore_errors=True)
            stage_at.mkdir(parents=True)
            for f in sorted(src.glob("part-*.parquet")):
                jobfs.copy_file(f, stage_at / f.name)
        stage_at.mkdir(parents=True, exist_ok=True)  # an output with no parts is an empty directory
        for f in stage_at.iterdir():  # only the parts are published
            if not f.name.startswith("part-") or not f.name.endswith(".parquet"):
                f.unlink()
        (stage_at / PUBLISHED_BY).write_text(json.dumps({"job_dir": str(jobfs.resolve(job_dir))}))
        _swap_into_place(stage_at, Path(o.path).resolve(), _tag(job_dir))


def restage_published(spec: PipelineSpec, job_dir: Path) -> None:
    """On resume after a published run: an output this job directory published becomes its
    staging directory again (hard links, so nothing is copied), so completed shards are
    reused and the published output stays untouched until the next publish. (A remote job
    directory keeps its parts under ``nodes/``: nothing to restage.)"""
    if is_remote(job_dir):
        return
    for o in spec.outputs.values():
        if is_remote(o.path):
            continue
        out, stage_at = Path(o.path).resolve(), staging_dir(o.path, job_dir)
        try:
            owner = json.loads((out / PUBLISHED_BY).read_text()).get("job_dir")
        except (OSError, ValueError):
            continue
        if stage_at.exists() or owner != str(Path(job_dir).resolve()):
            continue
        tmp = stage_at.with_name(stage_at.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in out.glob("part-*.parquet"):
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copyfile(f, tmp / f.name)
        os.replace(tmp, stage_at)


def _swap_into_place(stage_at: Path, dst: Path, tag: str) -> None:
    aside = dst.parent / f".{dst.name}.replaced-{tag}"
    shutil.rmtree(aside, ignore_errors=True)
    if dst.exists() or dst.is_symlink():
        os.replace(dst, aside)
    os.replace(stage_at, dst)
    shutil.rmtree(aside, ignore_errors=True)


def _upload(src: jobfs.JobPath, dst: str) -> None:
    """Copy a node's part files to a remote prefix (s3://...); each object PUT is atomic."""
    root = jobfs.RemotePath(dst)
    parts = sorted(src.glob("part-*.parquet"))
    names = {f.name for f in parts}
    (root / SUCCESS_MARKER).unlink(missing_ok=True)  # readers stop trusting the prefix first
    for p in root.glob("part-*"):  # stale parts of an earlier run
        if p.name not in names:
            p.unlink(missing_ok=True)
    for f in parts:
        jobfs.copy_file(f, root / f.name)
    manifest = {"parts": [{"name": f.name, "bytes": jobfs.size(f)} for f in parts]}
    (root / SUCCESS_MARKER).write_text(json.dumps(manifest, indent=1))


def output_files(path: str | Path) -> list[str]:
    """Part files of an output directory, sorted; of a remote output, the parts its
    ``_SUCCESS`` manifest lists (none without it)."""
    root = jobfs.path(path)
    if isinstance(root, jobfs.RemotePath):
        try:
            manifest = json.loads((root / SUCCESS_MARKER).read_text())
        except FileNotFoundError:
            return []
        return sorted(str(root / p["name"]) for p in manifest["parts"])
    return sorted(str(p) for p in root.glob("part-*.parquet"))


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
