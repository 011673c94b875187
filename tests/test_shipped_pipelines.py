"""Every shipped pipeline runs as its header says, and the README's command blocks that need
no server run as written, from a fresh working directory.

The commands are read from the files themselves (a pipeline's `#   <command>` header
lines; the README's bash blocks), so docs and code cannot drift apart. `curate sample-data
data/sample` (deterministic) runs once; later mentions reuse what it wrote."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NEEDS_A_SERVER = {"minio_example.yaml"}  # reads s3:// from the compose topology (its own test)
COMMAND = re.compile(r"^(curate|mkdir|cp|echo) ")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fresh")
    (d / "pipelines").symlink_to(REPO / "pipelines")
    bin_dir = d / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "curate"  # this checkout's command line, whatever is installed
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cli "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(REPO))
    run(d, env, "curate sample-data data/sample")
    return d, env


def run(cwd: Path, env: dict, command: str) -> str:
    if command.strip() == "curate sample-data data/sample" and (cwd / "data/sample").exists():
        return "already written"
    p = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"`{command}` failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def header_commands(spec_file: Path) -> list[str]:
    out = []
    for line in spec_file.read_text().splitlines():
        if not line.startswith("#"):
            break
        cmd = line[1:].strip()
        if line.startswith("#   ") and COMMAND.match(cmd):
            out += [c.strip() for c in cmd.split("&&")]
    return out


def check_outputs(cwd: Path, spec_file: Path) -> None:
    spec = yaml.safe_load(spec_file.read_text())
    for name, out in spec["outputs"].items():
        parts = sorted((cwd / out["path"]).glob("part-*.parquet"))
        assert parts, f"{spec_file.name}: output {name} has no parts"
        assert sum(pq.ParquetFile(f).metadata.num_rows for f in parts) > 0


PIPELINES = sorted(p.name for p in (REPO / "pipelines").glob("*.yaml") if p.name not in NEEDS_A_SERVER)


@pytest.mark.parametrize("name", PIPELINES)
def test_shipped_pipeline_runs_as_its_header_says(workdir, name):
    cwd, env = workdir
    spec_file = REPO / "pipelines" / name
    commands = header_commands(spec_file)
    assert commands and commands[-1].startswith(f"curate run pipelines/{name}"), commands
    if name == "quickstart.yaml":  # its header describes `make run`: the same steps
        assert commands[-1].endswith("--executor ray")
    for cmd in commands:
        run(cwd, env, cmd)
    check_outputs(cwd, spec_file)


def readme_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def test_readme_command_blocks_that_need_no_server_run_as_written(workdir):
    cwd, env = workdir
    ran = 0
    for block in readme_blocks():
        lines = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        joined = " ".join(lines)
        if not lines or "make " in joined or "curl " in joined or "docker " in joined or "curate serve" in joined:
            continue
        command = "\n".join(ln.split("  #")[0].rstrip() for ln in block.replace("\\\n", " ").splitlines()
                            if ln.strip() and not ln.lstrip().startswith("#"))
        command = command.replace("curate sample-data data/sample && ", "")  # written once, above
        command = "\n".join(ln for ln in command.splitlines() if ln.strip() != "curate sample-data data/sample")
        run(cwd, env, "set -e\n" + command)
        ran += 1
    assert ran >= 5  # PreSelect, report, mix, DSIR, perplexity
    assert (cwd / "models/preselect.bin.report.json").exists() and (cwd / "targets/prose.npz").exists()
