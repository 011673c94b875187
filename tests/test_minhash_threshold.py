"""minhash_dedup verification at its boundary: a pair whose exact Jaccard equals
``verify_jaccard`` clusters (the docs say ">= this"); just below it does not.

Written against the stage's public behaviour (a pipeline run, its rejects and ledger)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.text.minhash import exact_jaccard
from workers import run_pipeline

WORDS = ["amber", "basalt", "cedar", "dune", "ember", "fjord", "garnet", "heath", "inlet", "juniper", "kelp", "lagoon", "marsh", "nectar", "oasis", "prairie", "quartz", "ridge", "savanna", "tundra", "upland", "valley", "willow", "yarrow"]
OTHER_WORDS = ["anchor", "beacon", "canvas", "dagger", "easel", "falcon", "goblet", "harbor", "igloo", "jacket", "kettle", "lantern", "mortar", "needle", "orchard", "pebble", "quiver", "rudder", "saddle", "tether"]
UNRELATED = [
    "The committee will meet on Tuesday to review the annual budget and the new hiring plan for the lab.",
    "Bake the bread for forty minutes, then let it cool on a rack before slicing it into thick pieces.",
]


def _corpus(tmp_path) -> str:
    # Distinct words: a text of n words has n - 4 word 5-gram shingles, all different, so a
    # prefix of a longer text shares exactly its own shingles with it.
    texts = {
        "at_a": " ".join(WORDS[:20]),   # 16 shingles
        "at_b": " ".join(WORDS[:24]),   # 20 shingles: Jaccard 16/20 = 0.8 exactly
        "below_a": " ".join(OTHER_WORDS[:15]),  # 11 shingles ...
        "below_b": " ".join(OTHER_WORDS[:19]),  # 15 shingles: Jaccard 11/15 = 0.733...
        "other_0": UNRELATED[0],
        "other_1": UNRELATED[1],
    }
    assert exact_jaccard(texts["at_a"], texts["at_b"]) == 0.8
    assert exact_jaccard(texts["below_a"], texts["below_b"]) == 11 / 15
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": list(texts), "text": list(texts.values())}), tmp_path / "in/docs.parquet")
    return str(tmp_path / "in/*.parquet")


def _removed(tmp_path, inp: str, verify: float | None) -> dict[str, str]:
    """Removed id -> detail, from a one-node pipeline (``verify`` None: unverified; 20 bands
    of 2 rows: a pair at Jaccard 0.73 is an LSH candidate with probability 1 - 1e-7, so
    verification decides)."""
    params = {"bands": 20, "rows": 2, "num_perm": 40, "keep": "lowest_id", "verify_jaccard": verify}
    tag = "none" if verify is None else str(verify)
    spec = {
        "name": f"mh-{tag}",
        "inputs": {"docs": {"path": inp}},
        "nodes": [{"id": "near", "stage": "minhash_dedup", "inputs": ["docs"], "params": params}],
        "outputs": {"kept": {"node": "near", "path": str(tmp_path / f"out-{tag}")}},
    }
    res = run_pipeline(spec, job_dir=tmp_path / f"job-{tag}")
    assert res.ledger["near"]["in"] == 6
    files = sorted((tmp_path / f"job-{tag}/rejects").rglob("*.parquet"))
    rows = [r for f in files for r in pq.read_table(f).to_pylist() if r["reason"] == "near_duplicate"]
    assert res.ledger["near"]["rejected"] == len(rows)
    return {r["id"]: r["detail"] for r in rows}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mh_threshold")
    return tmp, _corpus(tmp)


def test_without_verification_both_pairs_are_candidates(corpus):
    tmp, inp = corpus
    assert set(_removed(tmp, inp, None)) == {"at_b", "below_b"}  # lowest id of each pair is kept


def test_a_pair_exactly_at_the_threshold_clusters(corpus):
    tmp, inp = corpus
    removed = _removed(tmp, inp, 0.8)
    assert set(removed) == {"at_b"}
    assert "at_a" in removed["at_b"]  # the detail names the kept document


def test_a_threshold_just_above_the_pair_keeps_both(corpus):
    tmp, inp = corpus
    assert _removed(tmp, inp, 0.8000001) == {}
    assert set(_removed(tmp, inp, 11 / 15)) == {"at_b", "below_b"}  # the other pair at its own exact value
