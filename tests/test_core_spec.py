"""Spec validation: every problem at once, each naming its node."""

from __future__ import annotations

import pytest

from curate.plan import make_plan
from curate.spec import SpecError, load_spec_text, validate_spec
from tests.corpus import branch_join_spec, write_corpus


def _problems(spec) -> list[str]:
    with pytest.raises(SpecError) as ei:
        validate_spec(spec)
    return [str(p) for p in ei.value.problems]


def test_reports_every_problem_by_node(tmp_path):
    write_corpus(tmp_path / "in", n_files=1)
    spec = {
        "inputs": {"docs": {"path": str(tmp_path / "in/*.parquet")}},
        "nodes": [
            {"id": "x", "stage": "lenght_filter", "inputs": ["docs"], "params": {}},
            {"id": "y", "stage": "length_filter", "inputs": ["nope"], "params": {"min_words": -1}},
            {"id": "s", "stage": "sample", "inputs": ["docs"], "params": {"fraction": 2, "bogus": 1}},
            {"id": "c1", "stage": "sample", "inputs": ["c2"], "params": {"fraction": 0.5}},
            {"id": "c2", "stage": "sample", "inputs": ["c1"], "params": {"fraction": 0.5}},
            {"id": "t", "stage": "threshold_filter", "inputs": ["docs"], "params": {"column": "quality", "value": 0.5}},
        ],
        "outputs": {"o": {"node": "ghost", "path": str(tmp_path / "out")}},
    }
    probs = _problems(spec)
    text = "\n".join(probs)
    assert "node 'x', stage: unknown stage 'lenght_filter'; did you mean length_filter" in text
    assert "node 'y', inputs: unknown input or node 'nope'" in text
    assert "node 'y', params.min_words" in text
    assert "node 's', params.fraction" in text and "node 's', params.bogus" in text
    assert any("cycle" in p and "c1" in p and "c2" in p for p in probs)
    assert "node 'o', node: output of unknown node 'ghost'" in text
    assert "node 't', inputs: requires column 'quality' that no upstream node provides" in text
    assert len(probs) >= 8


def test_required_column_satisfied_by_input_file(tmp_path):
    write_corpus(tmp_path / "in", n_files=1)
    spec = {
        "inputs": {"docs": {"path": str(tmp_path / "in/*.parquet")}},
        "nodes": [{"id": "t", "stage": "threshold_filter", "inputs": ["docs"], "params": {"column": "extra", "value": 3}}],
    }
    validate_spec(spec)


def test_bad_yaml_has_line_number():
    with pytest.raises(SpecError) as ei:
        load_spec_text("name: x\ninputs:\n  a: {path: [unclosed\nnodes: []\n")
    msg = str(ei.value)
    assert "invalid YAML" in msg and "line" in msg


def test_map_stage_with_two_inputs_is_rejected(tmp_path):
    spec = {
        "inputs": {"a": {"path": "x.parquet"}, "b": {"path": "y.parquet"}},
        "nodes": [{"id": "l", "stage": "length_filter", "inputs": ["a", "b"], "params": {"min_words": 1}}],
    }
    assert any("join branches with `union`" in p for p in _problems(spec))


def test_planner_fuses_maps_and_places_barriers(tmp_path):
    ps = validate_spec(branch_join_spec(str(tmp_path / "*.parquet"), str(tmp_path / "out")), check_inputs=False)
    plan = make_plan(ps)
    steps = {s.id: s for s in plan.steps}
    # len feeds a barrier -> materialized; the ingest of docs is fused into its step.
    assert steps["len"].source_kind == "input" and steps["len"].chain == ["len"]
    assert steps["dd"].barrier == "dd" and steps["dd"].chain == []
    assert steps["both"].sources == ["a", "b"] and steps["both"].chain == ["both"]
    order = [s.id for s in plan.steps]
    assert order.index("len") < order.index("dd") < order.index("a") < order.index("both")
