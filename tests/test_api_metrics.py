"""/metrics: bounded labels, and a failed job that is retried counts its documents once."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.app import create_app
from tests.corpus import branch_join_spec, write_corpus
from tests.test_api_util import TOKEN, local_config, wait_state


def _samples(text: str, name: str) -> dict[str, float]:
    """label set -> value of every sample of metric ``name``."""
    out = {}
    for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE):
        out[m.group(1) or ""] = float(m.group(2))
    return out


def test_metrics_labels_are_stage_names_and_a_retry_does_not_double_count(tmp_path):
    write_corpus(tmp_path / "data" / "in")
    spec = branch_join_spec("in/*.parquet", "out/kept")
    spec["inputs"] = {"crawl_2024_06_web": spec["inputs"]["docs"]}  # an input name no label may carry
    spec["nodes"][0]["inputs"] = ["crawl_2024_06_web"]
    # the last node's model does not exist yet: the job fails late, after every other step
    spec["nodes"].append({"id": "ppl", "stage": "perplexity_score", "inputs": ["both"],
                          "params": {"model": "models/lm.arpa", "expected_order": 2}})
    spec["outputs"]["kept"]["node"] = "ppl"
    cfg = local_config(tmp_path, api_token=TOKEN)
    with TestClient(create_app(cfg), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = c.post("/v1/jobs", params={"preflight": "false"}, json=spec)  # preflight would refuse it
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        failed = wait_state(c.get, jid)
        assert failed["state"] == "failed", failed
        m = c.get("/metrics").text
        counted_at_failure = _samples(m, "curate_docs_processed_total")[""]
        assert counted_at_failure == failed["ledger"]["crawl_2024_06_web"]["in"] == 180
        for name in ("curate_docs_kept_total", "curate_docs_rejected_total"):
            assert 'stage="input"' in "".join(_samples(m, name))

        from curate.lm import iter_corpus, train_lm

        train_lm(iter_corpus(str(tmp_path / "data/in/*.parquet")), 2, tmp_path / "data/models/lm.arpa", backend="numpy")
        assert c.post(f"/v1/jobs/{jid}/retry").status_code == 202
        done = wait_state(c.get, jid, states=("succeeded", "failed"))
        assert done["state"] == "succeeded", done["error"]
        m = c.get("/metrics").text

    ledger = done["ledger"]
    assert ledger["crawl_2024_06_web"]["in"] == 180
    # the failed attempt and the resumed one together count the job once
    assert _samples(m, "curate_docs_processed_total") == {"": 180.0}
    kept = _samples(m, "curate_docs_kept_total")
    rejected = _samples(m, "curate_docs_rejected_total")
    assert kept == {
        '{stage="input"}': ledger["crawl_2024_06_web"]["kept"],
        '{stage="length_filter"}': ledger["len"]["kept"] + ledger["b"]["kept"],
        '{stage="exact_dedup"}': ledger["dd"]["kept"],
        '{stage="sample"}': ledger["a"]["kept"],
        '{stage="union"}': ledger["both"]["kept"],
        '{stage="perplexity_score"}': ledger["ppl"]["kept"],
    }
    assert rejected['{stage="exact_dedup"}'] == ledger["dd"]["rejected"] == 5
    assert rejected['{stage="input"}'] == ledger["crawl_2024_06_web"]["rejected"]
    # every stage label is a stage name or "input", in every stage-labelled metric
    labels = set(re.findall(r'stage="([^"]*)"', m))
    assert labels <= {"input", "length_filter", "exact_dedup", "sample", "union", "perplexity_score"}, labels
    assert "crawl_2024_06_web" not in m
