"""report.html / summary.json on a real job (every stage kind), rendered in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DOMAINS = {"web": 600, "code": 150, "books": 40}


def write_inputs(root: Path, seed: int = 0) -> None:
    """Three domains with score columns, dup-cluster sizes, short/null/empty texts and copies."""
    rng = np.random.default_rng(seed)
    for d, n in DOMAINS.items():
        for part in range(2):
            m = n // 2
            lens = rng.integers(3, 90, size=m)
            texts: list[str | None] = [
                " ".join(f"{d}{int(x)}" for x in rng.integers(0, 400, size=int(k))) for k in lens
            ]
            texts[0] = None
            texts[1] = ""
            texts[2] = texts[4]  # exact duplicate
            t = pa.table(
                {
                    "text": texts,
                    "quality": rng.random(m),
                    "perplexity": rng.lognormal(6, 0.6, size=m),
                    "dsir_logw": rng.normal(0, 2, size=m),
                    "dup_cluster_size": np.where(rng.random(m) < 0.85, 1, rng.integers(2, 200, size=m)),
                }
            )
            p = root / d / f"{d}-{part}.parquet"
            p.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(t, p)


def job_spec(root: Path) -> dict:
    return {
        "name": "report-fixture",
        "seed": 7,
        "settings": {"batch_size": 64},
        "inputs": {d: {"path": str(root / d / "*.parquet"), "domain": d} for d in DOMAINS},
        "nodes": [
            {"id": "u", "stage": "union", "inputs": list(DOMAINS)},
            {"id": "len", "stage": "length_filter", "inputs": ["u"], "params": {"min_words": 5}},
            {
                "id": "ppl",
                "stage": "threshold_filter",
                "inputs": ["len"],
                "params": {"column": "perplexity", "op": "<=", "value": 900},
            },
            {
                "id": "dsir",
                "stage": "threshold_filter",
                "inputs": ["ppl"],
                "params": {"column": "dsir_logw", "op": ">=", "value": -2.5},
            },
            {"id": "dd", "stage": "exact_dedup", "inputs": ["dsir"]},
            {
                "id": "top",
                "stage": "select_top",
                "inputs": ["dd"],
                "params": {"column": "quality", "fraction_docs": 0.8},
            },
            {
                "id": "mx",
                "stage": "mix",
                "inputs": ["top"],
                "params": {
                    "budget_tokens": 20000,
                    "weights": {"web": 0.5, "code": 0.3, "books": 0.2},
                    "rehydrate": True,
                },
            },
        ],
        "outputs": {"kept": {"node": "mx", "path": str(root / "out" / "kept")}},
    }


def run_job(tmp: Path, executor: str = "local"):
    from workers import run_pipeline

    write_inputs(tmp / "data")
    return run_pipeline(job_spec(tmp / "data"), executor=executor, job_dir=tmp / "job")


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return run_job(tmp_path_factory.mktemp("report"))


def test_summary_numbers_match_stats(job):
    from curate.report import write_report

    path = write_report(job.job_dir)
    assert path == Path(job.job_dir) / "report.html"
    s = json.loads((Path(job.job_dir) / "summary.json").read_text())
    stats = job.stats
    funnel = {r["node"]: r for r in s["funnel"]}
    for nid, ns in stats["nodes"].items():
        assert funnel[nid]["in"] == ns["in"] and funnel[nid]["kept"] == ns["kept"]
        assert funnel[nid]["rejected"] == ns["rejected"]
    assert (
        s["reject_totals"]["mix_not_sampled"] == stats["nodes"]["mx"]["rejects_by_reason"]["mix_not_sampled"]
    )
    assert s["seed"] == 7 and s["curate_version"]
    # every score column, with the applied thresholds / cutoffs
    assert set(s["scores"]) >= {"quality", "perplexity", "dsir_logw"}
    assert [t["value"] for t in s["scores"]["perplexity"]["thresholds"]] == [900.0]
    assert [t["value"] for t in s["scores"]["dsir_logw"]["thresholds"]] == [-2.5]
    top_thr = stats["nodes"]["top"]["fit_stats"]["threshold"]
    assert top_thr in [t["value"] for t in s["scores"]["quality"]["thresholds"]]
    # the histogram covers each scored document exactly once (rejects of every node, ingest
    # included, plus the final output without mixing copies); here the scores are input
    # columns, so that is every input document
    total_in = sum(stats["nodes"][d]["in"] for d in DOMAINS)
    h = s["scores"]["perplexity"]
    assert sum(sum(c) for c in h["counts"].values()) == total_in
    assert sum(h["counts"]["rejected at ppl"]) == stats["nodes"]["ppl"]["rejected"]
    assert sum(h["counts"]["kept"]) == stats["nodes"]["mx"]["kept"]
    # the stages' own sections: the dedup distribution and the mix manifest, per node
    assert set(s["sections"]) == {"dd", "mx"}
    dedup = s["sections"]["dd"]["dedup"]
    assert dedup["duplicates_removed"] == stats["nodes"]["dd"]["rejects_by_reason"]["exact_duplicate"]
    assert dedup["largest_cluster"] > 1 and dedup["source"] == "rejects"
    mix = s["sections"]["mx"]["mixing"]
    assert mix == stats["nodes"]["mx"]["fit_stats"]["mix"] and set(mix["domains"]) == set(DOMAINS)
    assert sum(e["realized_share"] for e in mix["domains"].values()) == pytest.approx(1.0)
    # document shares per domain, inputs vs outputs (generic, from the domain column)
    shares = s["domain_shares"]["domains"]
    assert set(shares) == set(DOMAINS)
    assert sum(e["available_docs"] for e in shares.values()) == total_in
    assert sum(e["realized_docs"] for e in shares.values()) == stats["nodes"]["mx"]["kept"]  # copies skipped
    assert {r["node"] for r in s["timings"]} == set(stats["nodes"])


SECTIONS = (
    "overview",
    "dag",
    "rejects",
    "scores",
    "dedup",
    "mixing",
    "domains",
    "fits",
    "timings",
    "provenance",
)
IMAGES = {
    "pipeline DAG",
    "funnel",
    "rejects by reason",
    "histogram of quality",
    "histogram of perplexity",
    "histogram of dsir_logw",
    "dedup cluster sizes",
    "domain shares before and after mixing",
    "domain shares at the inputs and in the outputs",
    "timings per stage",
}


def test_report_html_is_self_contained_with_every_section(job):
    """The page's structure, checked without a browser: every section in order, every
    figure embedded as a PNG that decodes, nothing fetched."""
    import base64
    import io

    from matplotlib.image import imread

    from curate.report import write_report

    html = write_report(job.job_dir).read_text()
    # one self-contained file: every image is embedded, nothing is fetched
    assert not re.search(r'(src|href)="(https?:|file:|//)', html)
    assert re.findall(r'<section id="([^"]+)">', html) == list(SECTIONS)
    assert re.findall(r'<a href="#([^"]+)">', html) == list(SECTIONS)
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    assert sorted(alt for alt, _ in imgs) == sorted(IMAGES)
    for alt, b64 in imgs:
        pixels = imread(io.BytesIO(base64.b64decode(b64)), format="png")
        assert pixels.shape[0] > 50 and pixels.shape[1] > 50 and pixels.std() > 0, alt  # not blank
    # the stage sections: a block per contributing node, with its numbers
    assert "<h3>dd (exact_dedup)</h3>" in html and "<h3>mx (mix)</h3>" in html
    assert "thresholds: ppl: perplexity &lt;= 900" in html and "dsir: dsir_logw &gt;= -2.5" in html


def test_report_renders_in_headless_chromium(job, tmp_path):
    from curate.report import write_report

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (make system-deps installs it); cannot take a screenshot")
    html = write_report(job.job_dir).read_text()

    shot = tmp_path / "report.png"
    base = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--user-data-dir=" + str(tmp_path / "profile"),
        "--allow-file-access-from-files",
    ]
    url = Path(job.job_dir, "report.html").as_uri()
    res = subprocess.run(
        base + ["--window-size=1280,2400", f"--screenshot={shot}", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000  # a real, non-blank page
    # the DOM chromium built: all sections and images present, every image decoded
    probe = (
        "<script>window.onload=()=>{const bad=[...document.images].filter(i=>!i.complete||i.naturalWidth==0);"
        "document.body.setAttribute('data-probe',`imgs=${document.images.length} broken=${bad.length} "
        "sections=${document.querySelectorAll('section').length}`)}</script>"
    )
    probed = tmp_path / "probe.html"
    probed.write_text(html.replace("</body>", probe + "</body>"))
    dom = subprocess.run(
        base + ["--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'data-probe="imgs=(\d+) broken=(\d+) sections=(\d+)"', dom.stdout)
    assert m, "the page did not finish loading"
    assert int(m.group(1)) == len(IMAGES) and m.group(2) == "0" and m.group(3) == str(len(SECTIONS))


def test_report_cli_and_missing_job(job, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    r = CliRunner().invoke(app, ["report", str(job.job_dir)])
    assert r.exit_code == 0 and r.output.strip().endswith("report.html")
    r = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 2


def test_report_on_a_job_without_scores_or_mix(tmp_path):
    """A minimal job: sections still render, saying there is nothing to show."""
    from curate.report import write_report
    from workers import run_pipeline

    p = tmp_path / "in" / "a.parquet"
    p.parent.mkdir()
    pq.write_table(pa.table({"text": ["one two three four five six", "x", "one two three four five six"]}), p)
    res = run_pipeline(
        {
            "name": "tiny",
            "seed": 1,
            "inputs": {"d": {"path": str(p)}},
            "nodes": [{"id": "len", "stage": "length_filter", "inputs": ["d"], "params": {"min_words": 2}}],
            "outputs": {"kept": {"node": "len", "path": str(tmp_path / "out")}},
        },
        job_dir=tmp_path / "job",
    )
    html = write_report(res.job_dir).read_text()
    assert "No score columns" in html and "no mixing" in html.lower()
    s = json.loads((Path(res.job_dir) / "summary.json").read_text())
    assert s["scores"] == {} and s["domain_shares"] is None and s["sections"] == {}
