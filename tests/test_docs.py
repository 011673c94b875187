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


def test_sections_come_in_the_documented_order():
    heads = [h.strip() for h in re.findall(r"^## (.+)$", README.read_text(), re.M)]
    order = ["Two commands", "Command line", "Python API for Ray scripts", "REST API", "Pipeline specs", "Sizing"]
    assert [h for h in heads if h in order] == order


def test_every_command_is_in_the_command_table():
    from cli.main import app

    text = README.read_text()
    table = text[text.index("## Command line"):text.index("## Python API")]
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups}
    assert {"run", "validate", "stages", "serve", "submit", "lm", "fasttext", "preselect"} <= names
    assert sorted(n for n in names if f"curate {n}" not in table) == []


def test_library_example_runs_as_written():
    text = README.read_text()
    section = text[text.index("## Python API for Ray scripts"):text.index("## REST API")]
    block = re.findall(r"```python\n(.*?)```", section, re.S)[1]
    code, expected = block.rsplit("\n", 2)[0], block.strip().splitlines()[-1]
    ns: dict = {}
    exec(code, ns)  # noqa: S102 - the README's own example
    last = expected.split("#")[0].strip()
    assert repr(eval(last, ns)) == expected.split("#")[1].strip()  # noqa: S307
