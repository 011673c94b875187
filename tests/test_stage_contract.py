"""The stage contract end to end: a new barrier stage, written here and registered at run
time without editing any generic module, gets the sandbox, the report and lineage right
from what it declares; and the executor holds every stage to its declarations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pydantic import Field

from api.security import PathNotAllowed, sandbox_spec
from curate import registry
from curate.fit import FitContext, ShardSet
from curate.lineage import explain
from curate.params import Annotated, ReadPath
from curate.stage import BarrierStage, MapResult, MapStage, ReportSection, StageParams, split_batch
from workers import JobFailed, LedgerError, read_output, run_pipeline


class BannedWordsParams(StageParams):
    words_file: Annotated[str, ReadPath] = Field(description="One banned word per line")


def _count_docs(t: pa.Table) -> int:
    return t.num_rows


def _add(a: int, b: int) -> int:
    return a + b


class BannedWords(BarrierStage):
    """Toy barrier: reject documents containing a banned word (fit: count the pool)."""

    name = "toy_banned_words"
    Params = BannedWordsParams
    reject_reasons = {"banned_word": "the text contains a word of words_file"}

    def fit(self, inputs: dict[str, ShardSet], ctx: FitContext) -> dict[str, Any]:
        pool = ctx.aggregate(next(iter(inputs.values())), _count_docs, _add) or 0
        words = [w.strip() for w in Path(self.params.words_file).read_text().splitlines() if w.strip()]
        return {"words": words, "stats": {"pool_docs": pool}}

    def load(self, state: dict[str, Any]) -> list[str]:
        return state["words"]

    def process(self, batch: pa.Table, words: list[str]) -> MapResult:
        text = batch.column(self.text_column)
        hit = pa.array([None] * batch.num_rows, pa.string())
        for w in reversed(words):  # the first listed word wins
            hit = pc.if_else(pc.match_substring(text, w), w, hit)
        return split_batch(batch, pc.is_null(hit), "banned_word", pc.fill_null(hit, ""))

    def report_sections(self, job, node_id: str) -> list[ReportSection]:
        by_reason = (job.nodes.get(node_id) or {}).get("rejects_by_reason") or {}
        return [ReportSection("banned", "Banned words", {"removed": by_reason.get("banned_word", 0)})]

    def explain_row(self, job, node_id: str, row: dict[str, Any], rejected: bool) -> dict[str, Any]:
        return {"banned": {"word": row.get("detail")}} if rejected else {}


@pytest.fixture
def toy_stage():
    registry.register_stage(BannedWords)
    yield BannedWords
    registry.unregister_stage(BannedWords.name)


def _corpus(tmp_path: Path) -> Path:
    d = tmp_path / "data" / "in"
    d.mkdir(parents=True)
    texts = ["the cat sat on the mat", "a spam offer for you", "hello world again", "more spam and eggs"]
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(4)], "text": texts}), d / "part-0.parquet")
    (tmp_path / "data" / "banned.txt").write_text("spam\neggs\n")
    return tmp_path / "data"


def _spec(data: Path, words_file: str) -> dict:
    return {
        "name": "toy",
        "inputs": {"docs": {"path": str(data / "in" / "*.parquet")}},
        "nodes": [{"id": "ban", "stage": "toy_banned_words", "inputs": ["docs"], "params": {"words_file": words_file}}],
        "outputs": {"out": {"node": "ban", "path": str(data / "out")}},
    }


def test_sandbox_refuses_the_toy_path_param_outside_the_roots(tmp_path, toy_stage):
    data = _corpus(tmp_path)
    outside = tmp_path / "elsewhere" / "banned.txt"
    with pytest.raises(PathNotAllowed, match=r"nodes\.ban\.params\.words_file"):
        sandbox_spec(_spec(data, str(outside)), [str(data)], str(data))
    ok = sandbox_spec(_spec(data, "banned.txt"), [str(data)], str(data))  # relative: resolved under the root
    assert ok["nodes"][0]["params"]["words_file"] == str(data / "banned.txt")


def test_report_and_explain_use_the_toy_hooks(tmp_path, toy_stage):
    data = _corpus(tmp_path)
    res = run_pipeline(_spec(data, str(data / "banned.txt")), executor="local", job_dir=tmp_path / "job")
    assert read_output(data / "out").column("id").to_pylist() == ["d0", "d2"]
    ns = res.stats["nodes"]["ban"]
    assert ns["rejects_by_reason"] == {"banned_word": 2} and ns["fit_stats"] == {"pool_docs": 4}
    summary = json.loads((tmp_path / "job" / "summary.json").read_text())
    assert summary["sections"]["ban"]["banned"] == {"removed": 2}
    page = (tmp_path / "job" / "report.html").read_text()
    assert "Banned words" in page
    e = explain(str(tmp_path / "job"), "d3")
    assert e["status"] == "rejected" and e["rejected"]["reason"] == "banned_word"
    assert e["banned"] == {"word": "spam"}  # the first listed word wins
    assert "banned" not in explain(str(tmp_path / "job"), "d0")


class UndeclaredReason(MapStage):
    """Toy map stage whose rejects carry a reason it does not declare."""

    name = "toy_undeclared_reason"
    reject_reasons = {"declared": "what it says it does"}

    def process(self, batch: pa.Table) -> MapResult:
        return split_batch(batch, [i % 2 == 0 for i in range(batch.num_rows)], "something_else")


class SilentDrop(MapStage):
    """Toy map stage that loses a row without rejecting it."""

    name = "toy_silent_drop"

    def process(self, batch: pa.Table) -> MapResult:
        return MapResult(batch.slice(1), None)


@pytest.mark.parametrize("cls, err, msg", [
    (UndeclaredReason, JobFailed, r"node 'x' rejected rows with reason 'something_else'"),
    (SilentDrop, LedgerError, r"node 'x': in 4 != kept 3 \+ rejected 0"),
])
def test_the_executor_holds_stages_to_their_declarations(tmp_path, cls, err, msg):
    data = _corpus(tmp_path)
    spec = {"name": "bad", "inputs": {"docs": {"path": str(data / "in" / "*.parquet")}},
            "nodes": [{"id": "x", "stage": cls.name, "inputs": ["docs"]}]}
    registry.register_stage(cls)
    try:
        with pytest.raises(err, match=msg):
            run_pipeline(spec, executor="local", job_dir=tmp_path / "job")
    finally:
        registry.unregister_stage(cls.name)
