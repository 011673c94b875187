"""The README's spec example is valid and runs (docs and code in lockstep)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from curate.sample_data import write_sample_corpus
from curate.spec import validate_spec
from workers import run_pipeline

README = Path(__file__).parents[1] / "README.md"


def _spec_example() -> dict:
    text = README.read_text()
    section = text[text.index("## Pipeline specs"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    return yaml.safe_load(block)


def test_readme_spec_example_validates_and_runs(tmp_path):
    spec = _spec_example()
    validate_spec(spec, check_inputs=False)
    write_sample_corpus(tmp_path / "data/sample", target_mb=1, seed=0)
    for inp in spec["inputs"].values():
        inp["path"] = str(tmp_path / inp["path"])
    for out in spec["outputs"].values():
        out["path"] = str(tmp_path / out["path"])
    spec["job_dir"] = str(tmp_path / "runs/example")
    res = run_pipeline(spec, job_dir=tmp_path / "runs/example")
    n = res.stats["nodes"]
    assert n["both"]["in"] == n["long"]["kept"] + n["docs2"]["kept"] > 0
    assert set(res.outputs) == {"curated", "sampled"}


def test_two_commands_come_first():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    assert first_block.strip().splitlines()[0].startswith("make run")
    assert first_block.strip().splitlines()[1].startswith("make test")
    assert "make test" in (Path(__file__).parents[1] / ".ci/run").read_text()
