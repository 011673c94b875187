"""The PreSelect recipe end to end, offline: 3 KenLM models -> losses -> labels -> fastText
-> `fasttext_score` + `select_top` pipelines on both executors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli.main import app
from curate.preselect import ModelSpec, compute_losses
from curate.stage import StageError
from curate.testing import textgen as tg

SIZES = {"small": 40, "medium": 200, "large": 800}  # training documents per KenLM model
BENCH = {"small": 31.5, "medium": 36.0, "large": 41.2}  # bigger model = better "benchmark"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> dict:
    from curate.lm import train_lm

    d = tmp_path_factory.mktemp("recipe")
    lm_docs = tg.prose_paragraphs(SIZES["large"], 101)
    for name, n in SIZES.items():
        train_lm(lm_docs[:n], 3, d / f"{name}.arpa")
    prose = tg.prose_paragraphs(300, 102)
    junk = tg.boilerplate(100, 103) + tg.spam(100, 104) + tg.shuffled(100, 105)
    texts = prose + junk
    kinds = ["prose"] * 300 + ["junk"] * 300
    order = np.random.default_rng(0).permutation(len(texts))
    texts = [texts[i] for i in order] + ["", None]
    kinds = [kinds[i] for i in order] + ["empty", "empty"]
    (d / "corpus").mkdir()
    for f in range(3):
        sl = slice(f * 201, (f + 1) * 201)
        pq.write_table(pa.table({"text": texts[sl], "kind": kinds[sl]}), d / "corpus" / f"part-{f}.parquet")
    (d / "bench.json").write_text(json.dumps(BENCH))
    runner = CliRunner()

    def cli(*args: str):
        r = runner.invoke(app, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        return r

    models = [a for n in SIZES for a in ("--model", f"{n}={d / f'{n}.arpa'}")]
    cli(
        "preselect",
        "losses",
        str(d / "corpus" / "*.parquet"),
        *models,
        "--out",
        d / "losses.parquet",
        "--keep-column",
        "kind",
    )
    cli(
        "preselect", "label", d / "losses.parquet", "--bench", d / "bench.json", "--out", d / "labels.parquet"
    )
    cli(
        "preselect", "train", d / "labels.parquet", "--out", d / "preselect.bin",
        "--bucket", "20000", "--epoch", "10", "--lr", "0.5", "--valid-fraction", "0.2",
    )  # fmt: skip
    return {"dir": d, "cli": cli, "runner": runner}


def test_losses_matrix(recipe):
    d = recipe["dir"]
    t = pq.read_table(d / "losses.parquet")
    assert t.num_rows == 600  # the empty and null documents are skipped
    summary = json.loads((d / "losses.parquet.json").read_text())
    assert summary["empty_skipped"] == 2 and [m["name"] for m in summary["models"]] == list(SIZES)
    assert all(len(m["sha256"]) == 64 and m["order"] == 3 for m in summary["models"])
    # ids are the ones ingest assigns (relative path + row index)
    from workers.ingest import assign_ids

    assert t.column("id")[:3].to_pylist() == assign_ids("corpus", "part-0.parquet", 0, 3).to_pylist()
    # bits per character: positive, and lower for models trained on more prose
    prose = np.array(t.column("kind").to_pylist()) == "prose"
    means = {n: float(np.mean(np.array(t.column(f"bpc_{n}").to_pylist())[prose])) for n in SIZES}
    assert 0 < means["large"] < means["medium"] < means["small"]
    # bpc = -log2 P / chars with the perplexity stage's text preparation
    import kenlm

    from curate.text.ccnet import lines_log10, prepare_lines

    m = kenlm.Model(str(d / "small.arpa"))
    text = t.column("text")[0].as_py()
    log10, _ = lines_log10(m, prepare_lines(text))
    assert t.column("bpc_small")[0].as_py() == pytest.approx(-log10 * np.log2(10) / len(text), rel=1e-12)


def test_labels_pick_prose_as_positives(recipe):
    d = recipe["dir"]
    t = pq.read_table(d / "labels.parquet")
    kinds = np.array(t.column("kind").to_pylist())
    label = np.array(t.column("label").to_pylist())
    assert label.sum() == (label == 0).sum() > 50  # balanced
    assert (kinds[label == 1] == "prose").mean() >= 0.9
    assert (kinds[label == 0] == "junk").mean() >= 0.9
    assert set(np.array(t.column("ps").to_pylist())[label == 1]) == {1.0}


def test_trained_scorer_report(recipe):
    rep = json.loads((recipe["dir"] / "preselect.bin.report.json").read_text())
    assert rep["positive_label"] == "__label__1" and rep["params"]["epoch"] == 10
    assert rep["valid"]["roc_auc"] >= 0.8, rep["valid"]


def _spec(d: Path, out: str) -> dict:
    return {
        "name": "preselect",
        "seed": 1,
        "settings": {"batch_size": 64, "rows_per_shard": 100},
        "inputs": {"web": {"path": str(d / "corpus" / "*.parquet")}},
        "nodes": [
            {
                "id": "score",
                "stage": "fasttext_score",
                "inputs": ["web"],
                "params": {"model_path": str(d / "preselect.bin")},
            },
            {"id": "top", "stage": "select_top", "inputs": ["score"], "params": {"fraction_chars": 0.1}},
        ],
        "outputs": {"kept": {"node": "top", "path": out}},
    }


def _check(res, d: Path, out: Path) -> pa.Table:
    from workers import read_output

    nodes = res.stats["nodes"]
    rep = json.loads((d / "preselect.bin.report.json").read_text())
    assert nodes["score"]["run_stats"]["model_sha256"] == rep["model_sha256"]
    fs = nodes["top"]["fit_stats"]
    assert 0.1 <= fs["realized_fraction_chars"] < 0.2 and fs["threshold"] is not None
    kept = read_output(out)
    assert kept.num_rows == fs["kept_docs"] == nodes["top"]["kept"]
    assert min(kept.column("quality").to_pylist()) >= fs["threshold"]
    assert (np.array(kept.column("kind").to_pylist()) == "prose").mean() >= 0.7  # the pool is 50 % prose
    return kept


def test_scoring_and_top10_pipeline_local(recipe, tmp_path):
    from workers import run_pipeline

    d = recipe["dir"]
    res = run_pipeline(_spec(d, str(tmp_path / "out")), executor="local", job_dir=tmp_path / "job")
    _check(res, d, tmp_path / "out")


@pytest.mark.ray
def test_scoring_and_top10_pipeline_ray_matches_local(recipe, tmp_path, ray_local):
    from workers import run_pipeline

    d = recipe["dir"]
    r1 = run_pipeline(_spec(d, str(tmp_path / "ol")), executor="local", job_dir=tmp_path / "jl")
    r2 = run_pipeline(_spec(d, str(tmp_path / "or")), executor="ray", job_dir=tmp_path / "jr")
    a, b = _check(r1, d, tmp_path / "ol"), _check(r2, d, tmp_path / "or")
    assert a.equals(b)
    assert r1.stats["nodes"]["top"]["fit_stats"] == r2.stats["nodes"]["top"]["fit_stats"]


# ----------------------------------------------------------------------------- bad input


def test_cli_bad_inputs(recipe, tmp_path):
    d, runner = recipe["dir"], recipe["runner"]
    (tmp_path / "b.json").write_text(json.dumps({"small": 1, "medium": 2}))
    r = runner.invoke(
        app,
        [
            "preselect",
            "label",
            str(d / "losses.parquet"),
            "--bench",
            str(tmp_path / "b.json"),
            "-o",
            str(tmp_path / "x.parquet"),
        ],
    )
    assert r.exit_code == 2 and "no benchmark score for models ['large']" in " ".join(r.output.split())
    (tmp_path / "nan.json").write_text('{"small": 1, "medium": 2, "large": "high"}')
    r = runner.invoke(
        app,
        [
            "preselect",
            "label",
            str(d / "losses.parquet"),
            "--bench",
            str(tmp_path / "nan.json"),
            "-o",
            str(tmp_path / "x.parquet"),
        ],
    )
    assert r.exit_code == 2 and "benchmark score of model 'large' is not a finite number" in " ".join(
        r.output.split()
    )
    r = runner.invoke(
        app,
        [
            "preselect",
            "label",
            str(d / "losses.parquet"),
            "--bench",
            str(tmp_path / "none.json"),
            "-o",
            str(tmp_path / "x.parquet"),
        ],
    )
    assert r.exit_code == 2 and "benchmark scores file not found" in " ".join(r.output.split())
    r = runner.invoke(
        app,
        [
            "preselect",
            "losses",
            str(d / "corpus"),
            "-m",
            f"a={d / 'small.arpa'}",
            "-m",
            f"b={tmp_path / 'gone.arpa'}",
            "-o",
            str(tmp_path / "l.parquet"),
        ],
    )
    assert r.exit_code == 2 and "gone.arpa" in " ".join(r.output.split())
    (tmp_path / "corrupt.arpa").write_text("\\data\\\nngram 1=zz\n")
    r = runner.invoke(
        app,
        [
            "preselect",
            "losses",
            str(d / "corpus"),
            "-m",
            f"a={d / 'small.arpa'}",
            "-m",
            f"b={tmp_path / 'corrupt.arpa'}",
            "-o",
            str(tmp_path / "l.parquet"),
        ],
    )
    assert r.exit_code == 2 and "corrupt.arpa" in " ".join(r.output.split())
    r = runner.invoke(
        app,
        [
            "preselect",
            "losses",
            str(tmp_path / "nothing.parquet"),
            "-m",
            f"a={d / 'small.arpa'}",
            "-m",
            f"b={d / 'large.arpa'}",
            "-o",
            str(tmp_path / "l.parquet"),
        ],
    )
    assert r.exit_code == 2 and "nothing.parquet" in " ".join(r.output.split())


def test_losses_api_errors(recipe, tmp_path):
    d = recipe["dir"]
    small = ModelSpec.parse(f"small={d / 'small.arpa'}").load()
    with pytest.raises(StageError, match="at least 2 models"):
        compute_losses([str(d / "corpus")], [small], tmp_path / "x.parquet")
    with pytest.raises(StageError, match="unique"):
        compute_losses([str(d / "corpus")], [small, small], tmp_path / "x.parquet")
    with pytest.raises(StageError, match="text column 'body' not found"):
        compute_losses(
            [str(d / "corpus")],
            [small, ModelSpec.parse(f"l={d / 'large.arpa'}").load()],
            tmp_path / "x.parquet",
            text_column="body",
        )
    with pytest.raises(StageError, match="NAME=PATH"):
        ModelSpec.parse("just-a-path.arpa")


def test_hf_models_need_the_extra():
    pytest.importorskip("pytest")
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(StageError, match=r"transformers/torch are not installed .*curate\[hf\]"):
            ModelSpec.parse("llm=hf:/nonexistent/model").load()
    else:  # pragma: no cover - only with the hf extra: never downloads, so a missing path fails
        with pytest.raises(StageError, match="local path"):
            ModelSpec.parse("llm=hf:/nonexistent/model").load()


def test_shipped_pipeline_spec_runs(recipe, tmp_path):
    """pipelines/preselect.yaml as shipped (paths pointed at the test corpus and model)."""
    import yaml

    from workers import run_pipeline

    d = recipe["dir"]
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "pipelines" / "preselect.yaml").read_text())
    spec["inputs"]["web"]["path"] = str(d / "corpus" / "*.parquet")
    spec["nodes"][0]["params"]["model_path"] = str(d / "preselect.bin")
    spec["outputs"]["kept"]["path"] = str(tmp_path / "out")
    res = run_pipeline(spec, executor="local", job_dir=tmp_path / "job")
    fs = res.stats["nodes"]["top"]["fit_stats"]
    assert fs["mode"] == "fraction_chars" and fs["target"] == 0.1 and fs["column"] == "quality"
    assert res.stats["nodes"]["top"]["kept"] == fs["kept_docs"] > 0


@pytest.mark.parametrize(
    "params, message",
    [
        ({"label": "__label__hq"}, "label '__label__hq' is not in fastText model"),
        ({"model_path": "/nonexistent/model.bin"}, "fastText model file not found: /nonexistent/model.bin"),
    ],
)
def test_pipeline_with_bad_model_or_label_fails_clearly(recipe, tmp_path, params, message):
    from workers import JobFailed, run_pipeline

    spec = _spec(recipe["dir"], str(tmp_path / "out"))
    spec["nodes"][0]["params"].update(params)
    with pytest.raises(JobFailed, match=message):
        run_pipeline(spec, executor="local", job_dir=tmp_path / "job")


def test_losses_read_remote_corpus(recipe, tmp_path):
    import fsspec

    d = recipe["dir"]
    fs = fsspec.filesystem("memory")
    src = d / "corpus" / "part-0.parquet"
    fs.pipe("/preselect-corpus/part-0.parquet", src.read_bytes())
    models = [ModelSpec.parse(f"{n}={d / f'{n}.arpa'}").load() for n in ("small", "large")]
    s = compute_losses(["memory://preselect-corpus/*.parquet"], models, tmp_path / "remote.parquet")
    local = compute_losses([str(src)], models, tmp_path / "local.parquet")
    assert s["documents"] == local["documents"] > 0
    a, b = pq.read_table(tmp_path / "remote.parquet"), pq.read_table(tmp_path / "local.parquet")
    assert a.column("bpc_small").equals(b.column("bpc_small")) and a.column("id").equals(b.column("id"))
