"""Preflight: missing inputs, model files and unwritable outputs are found before a run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from curate.preflight import PreflightError, check_preflight, preflight
from curate.spec import validate_spec
from tests.corpus import write_corpus

REPO = Path(__file__).resolve().parents[1]


def _spec(inp: str, out: str, **extra_nodes) -> dict:
    return {
        "name": "pf",
        "inputs": {"web": {"path": inp}},
        "nodes": [{"id": "len", "stage": "length_filter", "inputs": ["web"], "params": {"min_words": 5}}],
        "outputs": {"kept": {"node": "len", "path": out}},
    }


def _problems(spec, **kw) -> list[tuple[str | None, str | None, str]]:
    return [(p.node, p.field, p.message) for p in preflight(validate_spec(spec), **kw).problems]


def test_good_spec_counts_input_files_and_has_no_problems(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "data/sample", n_files=3)
    rep = check_preflight(validate_spec(_spec("data/sample/*.parquet", "out/kept")), job_dir="runs/pf")
    assert rep.ok and rep.input_files == {"web": 3}
    # a directory input counts its parquet files; a list of paths sums them
    spec = _spec("data/sample", "out/kept")
    assert preflight(validate_spec(spec)).input_files == {"web": 3}
    spec["inputs"]["web"]["path"] = ["data/sample/part-0.parquet", "data/sample/part-[12].parquet"]
    assert preflight(validate_spec(spec)).input_files == {"web": 3}


def test_typo_in_input_glob_names_the_input_and_suggests_the_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "data/sample", n_files=1)
    spec = _spec("data/sampel/*.parquet", "out/kept")
    validate_spec(spec)  # the spec itself is fine
    [(node, field, msg)] = _problems(spec)
    assert (node, field) == ("web", "path")
    assert msg == ("no files match 'data/sampel/*.parquet'; directory 'data/sampel' does not exist "
                   "(did you mean 'data/sample'?)")
    with pytest.raises(PreflightError) as e:
        check_preflight(validate_spec(spec))
    assert "node 'web', path: no files match 'data/sampel/*.parquet'" in str(e.value)
    # an existing directory with no parquet files, and a glob that matches only directories
    (tmp_path / "empty/sub").mkdir(parents=True)
    assert _problems(_spec("empty", "out/kept")) == [("web", "path", "directory 'empty' holds no .parquet files")]
    assert _problems(_spec("empty/*", "out/kept"))[0][2] == "no files match 'empty/*'"


def test_missing_arpa_in_the_perplexity_pipeline_is_reported_on_its_node(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "data/sample/web", n_files=2)
    spec = yaml.safe_load((REPO / "pipelines/perplexity.yaml").read_text())
    assert _problems(spec) == [
        ("ppl", "params.model", ("file not found: 'data/sample/lm/prose.arpa'; directory 'data/sample/lm' "
         "does not exist"))
    ]
    (tmp_path / "data/sample/lm").mkdir()
    (tmp_path / "data/sample/lm/prose3.arpa").write_text("\\data\\\n")
    assert _problems(spec) == [
        ("ppl", "params.model", ("file not found: 'data/sample/lm/prose.arpa'; did you mean "
         "'data/sample/lm/prose3.arpa'?"))
    ]
    shutil.copy(tmp_path / "data/sample/lm/prose3.arpa", tmp_path / "data/sample/lm/prose.arpa")
    assert _problems(spec) == []


def test_output_under_a_file_cannot_be_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "in", n_files=1)
    (tmp_path / "out").write_text("a file where a directory should be\n")
    spec = _spec("in/*.parquet", "out/kept")
    assert _problems(spec) == [
        ("kept", "path", f"cannot create 'out/kept': '{tmp_path / 'out'}' is a file, not a directory")
    ]
    assert _problems(_spec("in/*.parquet", "out")) == [("kept", "path", "'out' exists and is not a directory")]
    # the job directory is checked too
    assert _problems(_spec("in/*.parquet", "ok"), job_dir="out/job")[0][:2] == (None, "job_dir")


def test_output_in_a_read_only_directory(tmp_path, monkeypatch):
    """Permissions are the kernel's (os.access); root may write anywhere, so as root the
    kernel's answer for the read-only directory is stood in for."""
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "in", n_files=1)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: not (Path(p) == ro and mode & os.W_OK)
                            and real(p, mode, **kw))
    try:
        assert _problems(_spec("in/*.parquet", "ro/deep/kept")) == [
            ("kept", "path", f"cannot create 'ro/deep/kept': directory '{ro}' is not writable (permissions)")
        ]
        assert _problems(_spec("in/*.parquet", "ro")) == [("kept", "path", "'ro' is not writable (permissions)")]
    finally:
        ro.chmod(0o755)


def _refresh(against: str, write: str) -> dict:
    return {
        "name": "refresh",
        "inputs": {"snapshot": {"path": "snap/*.parquet"}},
        "nodes": [{"id": "near", "stage": "minhash_dedup", "inputs": ["snapshot"],
                   "params": {"verify_jaccard": 0.8, "against_index": against, "write_index": write}}],
        "outputs": {"deduped": {"node": "near", "path": "out/deduped"}},
    }


def test_missing_index_is_allowed_only_on_the_first_run_of_a_refresh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "snap", n_files=1)
    # first run of a refresh: against_index is write_index and does not exist yet
    assert _problems(_refresh("runs/index", "runs/index")) == []
    assert _problems(_refresh("runs/index", str(tmp_path / "runs/./index"))) == []
    # an index to dedup against that nobody writes must exist
    assert _problems(_refresh("runs/old_index", "runs/index")) == [
        ("near", "params.against_index", "file not found: 'runs/old_index'; directory 'runs' does not exist")
    ]
    (tmp_path / "runs/old_index").mkdir(parents=True)
    assert _problems(_refresh("runs/old_index", "runs/index")) == []


def test_a_read_path_written_by_an_upstream_node_may_be_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "snap", n_files=1)
    spec = _refresh("runs/a", "runs/a")
    spec["nodes"].append({"id": "again", "stage": "minhash_dedup", "inputs": ["near"],
                          "params": {"verify_jaccard": 0.8, "against_index": "runs/a"}})
    spec["outputs"]["deduped"]["node"] = "again"
    assert _problems(spec) == []
    # ... but not one written by a node that is not upstream
    spec["nodes"][1]["inputs"] = ["snapshot"]
    assert [p[:2] for p in _problems(spec)] == [("again", "params.against_index")]


def test_dsir_target_naming_a_node_is_not_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "in", n_files=1)
    spec = _spec("in/*.parquet", "out/kept")
    spec["nodes"].append({"id": "ds", "stage": "dsir_resample", "inputs": ["len"],
                          "params": {"target": "len", "budget": 0.5, "budget_unit": "fraction"}})
    spec["outputs"]["kept"]["node"] = "ds"
    assert _problems(spec) == []
    spec["nodes"][1]["params"]["target"] = "target/*.parquet"
    assert _problems(spec) == [("ds", "params.target", ("no files match 'target/*.parquet'; directory "
                                "'target' does not exist"))]


def test_object_store_inputs_are_listed_not_read(tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/pfbucket/web/a.parquet", b"not read by preflight")
    fs.pipe("/pfbucket/web/b.parquet", b"not read by preflight")
    try:
        rep = preflight(validate_spec(_spec("memory://pfbucket/web/*.parquet", "memory://pfbucket/out")))
        assert rep.ok and rep.input_files == {"web": 2}
        assert _problems(_spec("memory://pfbucket/wbe/*.parquet", "memory://pfbucket/out")) == [
            ("web", "path", "no objects match 'memory://pfbucket/wbe/*.parquet'")
        ]
    finally:
        fs.rm("/pfbucket", recursive=True)
