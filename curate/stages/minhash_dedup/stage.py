"""The ``minhash_dedup`` barrier stage: its contract, the fit that runs the phases, and the
per-batch decision lookup.

The phases live in sibling modules (signatures, lsh, keep with verification, index); the fit
only orders them, sizes the shuffles and collects the stats.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from curate import jobfs, schema
from curate.components import connected_components
from curate.fit import FitContext, ShardSet
from curate.stage import BarrierStage, MapResult, StageError, split_batch
from curate.stages.dedup_hooks import DedupHooks
from curate.stages.minhash_dedup.decisions import DecisionTable, decision_counts
from curate.stages.minhash_dedup.index import open_index, write_index
from curate.stages.minhash_dedup.keep import choose_keepers
from curate.stages.minhash_dedup.layout import SourceKind, count_rows, sources
from curate.stages.minhash_dedup.lsh import find_candidate_edges
from curate.stages.minhash_dedup.params import MinHashDedupParams, fit_config, parse_keep
from curate.stages.minhash_dedup.signatures import compute_signatures
from curate.text.lsh import candidate_probability, threshold

REASON = "near_duplicate"
DOCS_PER_PARTITION = 250_000


class MinHashDedup(DedupHooks, BarrierStage):
    """Remove near-duplicate documents (MinHash LSH, distributed connected components).

    Word 5-gram shingles after NFKC/lowercase/punctuation folding; 112 permutations as
    14 bands x 8 rows (FineWeb/datatrove defaults; P(candidate) 0.92 at Jaccard 0.8,
    0.99 at 0.85). Exact Jaccard verification of every candidate pair (default 0.8, coverage
    split; ``verify_jaccard: null`` turns it off), a keep
    policy (lowest_id, longest, highest:<col>, newest:<col>, source_priority:[...]),
    annotate mode (dup_cluster, dup_cluster_size, dup_kept) and a persisted, versioned
    band index to dedup later snapshots against (write_index / against_index).
    Documents without words are never duplicates. Rejected rows: reason
    `near_duplicate`, detail naming the kept document (or the index)."""

    name = "minhash_dedup"
    Params = MinHashDedupParams
    reject_reasons: ClassVar[dict[str, str]] = {REASON: "near-duplicate of the kept document in dup_cluster (or of an indexed one)"}

    def required_columns(self) -> set[str]:
        _policy, column, _sources = parse_keep(self.params.keep)
        part = self.params.partition_by
        return ({column} if column else set()) | ({part} if part else set())

    def provided_columns(self) -> set[str]:
        return {schema.DUP_CLUSTER, schema.DUP_CLUSTER_SIZE, schema.DUP_KEPT}

    # -- fit ---------------------------------------------------------------------------
    def fit(self, inputs: dict[str, ShardSet], ctx: FitContext) -> dict[str, Any]:
        p, cfg = self.params, fit_config(self.params)
        files: list[str] = []
        text_column = ctx.text_column
        for ss in inputs.values():
            files.extend(ss.files)
            text_column = ss.text_column or text_column
        self._check_columns(files, text_column, cfg)
        par = max(1, ctx.runner.parallelism)
        n_rows = count_rows(files)
        # one partition per DOCS_PER_PARTITION documents, at least one per worker, at most 4 per worker
        nparts = p.num_partitions or max(par, min(4 * par, -(-n_rows // DOCS_PER_PARTITION)))
        scratch = jobfs.path(ctx.scratch_dir) / "minhash"
        jobfs.rmtree(scratch)
        stats: dict[str, Any] = {"bands": p.bands, "rows": p.rows, "threshold": round(threshold(p.bands, p.rows), 4),
                                 "p_candidate_at_0.8": round(float(candidate_probability(0.8, p.bands, p.rows)), 4)}
        clock = PhaseClock()

        sig_inputs, stats["docs"], stats["docs_without_shingles"] = compute_signatures(
            ctx, cfg, files, text_column, str(scratch / "sig"))
        sig_files = [s for s, _ in sig_inputs]
        clock.mark("signatures")

        index = open_index(ctx, cfg)
        if index.docs is not None:
            stats["index_docs"] = index.docs
        own = sources(SourceKind.SIGNATURES, sig_files)
        index_bands = sources(SourceKind.INDEX_BANDS, index.bands)
        index_sets = sources(SourceKind.INDEX_SETS, index.sets)
        edges, stats["lsh_partitions"] = find_candidate_edges(
            ctx, p, own + index_bands, n_rows + count_rows(index.bands), nparts)
        stats["candidate_edges"] = count_rows(edges)
        clock.mark("lsh")

        # with verification these are candidate components: the keep phase verifies and splits them
        cc_files, cc_stats = connected_components(ctx, edges, nparts, name="minhash/cc")
        stats["cc_rounds"] = cc_stats["rounds"]
        stats["docs_in_candidate_clusters" if p.verify_jaccard is not None else "docs_in_clusters"] = \
            cc_stats.get("nodes", 0)
        clock.mark("components")

        index_meta = index_sets if p.verify_jaccard is not None else index_bands
        outs, mparts = choose_keepers(ctx, cfg, cc_files, edges, sig_inputs, text_column, index_meta, nparts,
                                      scratch)
        if p.verify_jaccard is not None:
            stats["verify_partitions"] = mparts
        decisions = ctx.persist(outs, "decisions")
        stats.update(decision_counts(decisions))
        clock.mark("verify_keep" if p.verify_jaccard is not None else "keep")

        if p.write_index:
            stats["index_version"] = write_index(ctx, cfg, sig_inputs, text_column, decisions)
            clock.mark("write_index")
        jobfs.rmtree(scratch)
        stats["phase_seconds"] = clock.marks
        return {"decisions": decisions, "mode": p.mode, "stats": stats}

    def _check_columns(self, files: list[str], text_column: str, cfg: dict) -> None:
        for f in files[:1]:
            names = set(pq.ParquetFile(str(f)).schema_arrow.names)
            if schema.ID not in names:
                raise StageError(f"minhash_dedup: input has no {schema.ID!r} column")
            if text_column not in names:
                raise StageError(f"minhash_dedup: input has no text column {text_column!r}")
            if cfg.get("partition_by") and cfg["partition_by"] not in names:
                raise StageError(f"minhash_dedup: partition_by column {cfg['partition_by']!r} is missing")
            col = cfg["keep_column"]
            if col and col not in names:
                raise StageError(f"minhash_dedup: parameter keep={self.params.keep!r} needs column {col!r}, which "
                                 f"the input does not have (columns: {sorted(names)})")

    def optional_read_paths(self) -> set[str]:
        """``against_index`` may be missing when it is also ``write_index``: the first run of
        a refresh creates it."""
        a, w = self.params.against_index, self.params.write_index
        same = bool(a and w) and (a == w or ("://" not in a and Path(a).resolve() == Path(w).resolve()))
        return {a} if same and a else set()

    def refresh_params(self, state_dir: str) -> dict[str, Any]:
        """A scheduled refresh dedups each run against the survivors of earlier runs: the
        band index lives in the node's schedule directory; each run appends a version."""
        has_index = (Path(state_dir) / "index.json").is_file()
        return {"against_index": state_dir if has_index else None, "write_index": state_dir}

    # -- apply -------------------------------------------------------------------------
    def load(self, state: dict[str, Any]) -> DecisionTable:
        return DecisionTable(tuple(state.get("decisions", [])))

    def process(self, batch: pa.Table, dec: DecisionTable) -> MapResult:
        out, kept, detail = dec.annotate(batch)
        if self.params.mode == "annotate":
            return MapResult(out, None)
        return split_batch(out, pa.array(kept), REASON, detail)


class PhaseClock:
    """Wall seconds of each fit phase, in order."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        t = time.perf_counter()
        self.marks[name] = round(t - self.t, 3)
        self.t = t
