"""`mix`: token-budget domain mixing as a barrier stage.

Fit (distributed passes; nothing but per-domain totals and histograms reaches the driver):

1. ``map_files`` over the input parts: count tokens per document (whitespace words, or a
   count column), read the domain (and ``dup_cluster_size`` for rehydration), hash the
   seeded uniform ``u`` of every id, write a small sidecar (domain, id, tokens, weight, u)
   to scratch and return per-domain totals. Weights and caps give per-domain target
   tokens (:func:`curate.stages.mix_allocation.allocate`).
2. ``aggregate`` over the sidecars: per domain, the token mass of whole copies and a
   coarse histogram (2048 bins) of the fractional sample's token mass over the order key.
3. ``aggregate``: a fine histogram (2048 sub-bins) inside the bin where the residual is
   crossed.
4. ``aggregate``: the few documents of the crossing cell; sorting them by (key, id) fixes
   an exact, token-accurate cutoff.

Apply: per row, copies = ⌊rate × weight⌋ + (1 if the row's key is below its domain's
cutoff). Zero copies -> rejected with reason ``mix_not_sampled``. Copy 0 keeps the id;
copy k >= 1 gets id ``"<id>#r<k>"``. Every output row has ``source_id`` (the original
id), ``mix_copy`` (0 = the original row), ``mix_repeat`` (copies of that document) and
``mix_bucket`` (its domain). Copies are laid out copy-major inside a batch, so copies of
one document are never adjacent (unless the batch holds a single document).

Ledger convention: the kept table has ``sum(mix_repeat)`` rows; input documents kept are
the rows with ``mix_copy == 0``; ``copies_added`` = rows with ``mix_copy > 0``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from curate import jobfs, schema
from curate.fit import FitContext, ShardSet
from curate.parquet_io import iter_file_batches, write_json_atomic, write_parquet_atomic
from curate.stage import BarrierStage, MapResult, ReportSection, StageError, split_batch
from curate.stages import mix_hooks
from curate.stages.mix_allocation import (
    DEFAULT_MAX_EPOCHS,
    allocate,
    rehydration_weights,
    temperature_weights,
    unimax_weights,
)
from curate.stages.mix_order_sample import (
    KEY_BINS,
    Cutoff,
    choose_cutoff,
    doc_uniforms,
    expected_copies,
    find_bin,
    fine_bins,
    key_bins,
    order_keys,
)
from curate.stages.mix_params import (
    MIX_BUCKET,
    MIX_NOT_SAMPLED,
    MIX_REPEAT,
    NO_DOMAIN,
    MixParams,
)
from curate.text.normalize import word_counts

if TYPE_CHECKING:  # pragma: no cover
    from curate.jobdata import JobData

def _domains_of(t: pa.Table, default: str | None) -> list[str]:
    if schema.DOMAIN in t.column_names:
        col = pc.cast(t.column(schema.DOMAIN), pa.string())
        return [NO_DOMAIN if d is None else d for d in col.to_pylist()]
    return [default or NO_DOMAIN] * t.num_rows


def _tokens_of(t: pa.Table, text_column: str, token_column: str | None) -> np.ndarray:
    if token_column is None:
        return word_counts(t.column(text_column))
    if token_column not in t.column_names:
        raise StageError(f"mix: token_column '{token_column}' is missing from the input")
    col = t.column(token_column)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise StageError(f"mix: token_column '{token_column}' must be numeric, got {col.type}")
    return np.maximum(pc.fill_null(col, 0).to_numpy(zero_copy_only=False), 0).astype(np.int64)


def _weights_of(t: pa.Table, rehydrate: bool, table: dict[int, float] | None) -> np.ndarray:
    if not rehydrate or schema.DUP_CLUSTER_SIZE not in t.column_names:
        return np.ones(t.num_rows, dtype=np.float64)
    sizes = pc.fill_null(pc.cast(t.column(schema.DUP_CLUSTER_SIZE), pa.float64()), 1.0)
    return rehydration_weights(sizes.to_numpy(zero_copy_only=False), table)


class _Scan:
    """Pass 1: per part file, write (domain, id, tokens, weight, u) and return domain totals.

    ``u`` is the document's seeded uniform (xxh3 of seed, domain and id); later passes
    read it from the sidecar instead of hashing again.
    """

    def __init__(
        self,
        text_column: str,
        token_column: str | None,
        default_domain: str | None,
        rehydrate: bool,
        table: dict[int, float] | None,
        out_dir: str,
        batch_size: int,
        seed: int,
    ):
        self.text_column, self.token_column, self.default_domain = text_column, token_column, default_domain
        self.rehydrate, self.table, self.out_dir, self.batch_size = rehydrate, table, out_dir, batch_size
        self.seed = seed

    def __call__(self, path: str) -> dict[str, Any]:
        cols = [schema.ID, schema.DOMAIN, schema.DUP_CLUSTER_SIZE, self.token_column or self.text_column]
        parts, totals = [], {}
        for t in iter_file_batches(path, cols, self.batch_size):
            if schema.ID not in t.column_names:
                raise StageError(f"mix: input part {path} has no '{schema.ID}' column")
            doms = _domains_of(t, self.default_domain)
            tok = _tokens_of(t, self.text_column, self.token_column)
            w = _weights_of(t, self.rehydrate, self.table)
            ids = np.array(pc.cast(t.column(schema.ID), pa.string()).to_pylist(), dtype=object)
            u = np.zeros(t.num_rows, dtype=np.float64)
            darr = np.array(doms, dtype=object)
            for d in dict.fromkeys(doms):
                m = darr == d
                u[m] = doc_uniforms(ids[m], self.seed, d)
                acc = totals.setdefault(d, {"docs": 0, "tokens": 0, "weighted_tokens": 0.0})
                acc["docs"] += int(m.sum())
                acc["tokens"] += int(tok[m].sum())
                acc["weighted_tokens"] += float((tok[m] * w[m]).sum())
            parts.append(
                pa.table(
                    {
                        "domain": pa.array(doms, pa.string()),
                        "id": pa.array(ids.tolist(), pa.string()),
                        "tokens": pa.array(tok, pa.int64()),
                        "w": pa.array(w, pa.float64()),
                        "u": pa.array(u, pa.float64()),
                    }
                )
            )
        side = jobfs.path(self.out_dir) / f"side-{xxhash.xxh3_64_hexdigest(path.encode())}.parquet"
        if parts:
            write_parquet_atomic(side, pa.concat_tables(parts))
        return {"sidecar": str(side) if parts else None, "totals": totals}


def _merge_totals(a: dict, b: dict) -> dict:
    out = {k: dict(v) for k, v in a.items()}
    for d, v in b.items():
        acc = out.setdefault(d, {"docs": 0, "tokens": 0, "weighted_tokens": 0.0})
        for k in acc:
            acc[k] += v[k]
    return out


def _domain_keys(t: pa.Table, d: str, rate: float) -> tuple[np.ndarray, ...]:
    """(mask, whole copies, order keys, coarse bins, tokens) for domain ``d``'s sidecar rows."""
    m = t.column("domain").to_numpy(zero_copy_only=False) == d
    whole, frac = expected_copies(rate, t.column("w").to_numpy()[m])
    keys = order_keys(t.column("u").to_numpy()[m], frac)
    tok = t.column("tokens").to_numpy()[m].astype(np.float64)
    return m, whole, keys, key_bins(keys), tok


def _hists(bins: np.ndarray, tok: np.ndarray, new: np.ndarray, n: int) -> dict[str, np.ndarray]:
    return {
        "hist_tok": np.bincount(bins, weights=tok, minlength=n),
        "hist_docs": np.bincount(bins, minlength=n),
        "hist_new": np.bincount(bins, weights=new.astype(np.float64), minlength=n),
    }


class _Hist:
    """Pass 2 (aggregate partial): whole-copy mass and coarse key histograms per domain."""

    def __init__(self, rates: dict[str, float]):
        self.rates = rates

    def __call__(self, t: pa.Table) -> dict[str, dict]:
        out = {}
        for d, rate in self.rates.items():
            m, whole, _, bins, tok = _domain_keys(t, d, rate)
            if not m.any():
                continue
            out[d] = {
                "whole_tokens": float((whole * tok).sum()),
                "whole_rows": int(whole.sum()),
                "docs_whole": int((whole > 0).sum()),
                **_hists(bins, tok, whole == 0, KEY_BINS + 1),
            }
        return out


class _Fine:
    """Pass 3 (aggregate partial): fine histograms inside each domain's crossing coarse bin."""

    def __init__(self, rates: dict[str, float], coarse: dict[str, int]):
        self.rates, self.coarse = rates, coarse

    def __call__(self, t: pa.Table) -> dict[str, dict]:
        out = {}
        for d, b in self.coarse.items():
            m, whole, keys, bins, tok = _domain_keys(t, d, self.rates[d])
            sel = bins == b
            if sel.any():
                fb = fine_bins(keys[sel], b)
                out[d] = _hists(fb, tok[sel], whole[sel] == 0, KEY_BINS)
        return out


def _merge_hist(a: dict, b: dict) -> dict:
    out = dict(a)
    for d, v in b.items():
        out[d] = v if d not in out else {k: out[d][k] + v[k] for k in v}
    return out


class _Collect:
    """Pass 4 (aggregate partial): (key, id, tokens, is_new) of the rows in each final cell."""

    def __init__(self, rates: dict[str, float], cells: dict[str, tuple[int, int]]):
        self.rates, self.cells = rates, cells

    def __call__(self, t: pa.Table) -> dict[str, list]:
        out: dict[str, list] = {}
        for d, (b, f) in self.cells.items():
            m, whole, keys, bins, tok = _domain_keys(t, d, self.rates[d])
            ids = np.array(t.column("id").to_pylist(), dtype=object)[m]
            j = np.nonzero(bins == b)[0]
            j = j[fine_bins(keys[j], b) == f]
            out[d] = [(float(keys[i]), str(ids[i]), float(tok[i]), bool(whole[i] == 0)) for i in j]
        return out


def _merge_lists(a: dict, b: dict) -> dict:
    out = {k: list(v) for k, v in a.items()}
    for d, v in b.items():
        out.setdefault(d, []).extend(v)
    return out


# ----------------------------------------------------------------------------------------
# the stage
# ----------------------------------------------------------------------------------------


class Mix(BarrierStage):
    """Mix domains to a token budget: explicit, temperature or UniMax weights with epoch caps.

    Input: several branches (one per domain; rows carry a `domain` column set at ingest)
    or one input with a `domain` column. Tokens are whitespace words unless
    `token_column` names a count column. Caps (`max_epochs`, default 4) bind by
    water-filling (`on_cap: redistribute`) or by shrinking the budget (`shrink`).
    Materialization is deterministic: whole repeats plus a seeded, token-accurate
    fractional sample keyed by document id. Repeated copies get ids `<id>#r<k>` with
    `source_id` pointing back; columns `mix_copy`, `mix_repeat`, `mix_bucket` are added.
    Documents left out are rejected with reason `mix_not_sampled`. A manifest (per domain:
    available, target and realized tokens, epochs used, cap bound) goes to the fit stats
    and `state/<node>/manifest.json`.
    """

    name = "mix"
    Params = MixParams
    reject_reasons = {MIX_NOT_SAMPLED: "drawn zero times by the token-budget mix"}

    def provided_columns(self) -> set[str]:
        return {schema.SOURCE_ID, schema.COPY_INDEX, MIX_REPEAT, MIX_BUCKET}

    def report_sections(self, job: JobData, node_id: str) -> list[ReportSection]:
        """The manifest: per domain available, target and realized tokens, epochs, caps."""
        return mix_hooks.report_sections(job, node_id)

    def explain_row(self, job: JobData, node_id: str, row: dict[str, Any], rejected: bool) -> dict[str, Any]:
        """Bucket, repeat count and the ids of the document's copies."""
        return mix_hooks.explain_row(job, node_id, row, rejected)

    def _seed(self) -> int:
        return int(self.params.seed if self.params.seed is not None else self.seed)

    def _epochs(self, domain: str) -> float:
        e = self.params.max_epochs
        return float(e.get(domain, DEFAULT_MAX_EPOCHS)) if isinstance(e, dict) else float(e)

    # -- fit ---------------------------------------------------------------------------
    def fit(self, inputs: dict[str, ShardSet], ctx: FitContext) -> dict[str, Any]:
        p = self.params
        names = self.data_inputs(list(inputs))
        default_domain = None
        lacking = [
            n
            for n in names
            if inputs[n].files and schema.DOMAIN not in pq.read_schema(inputs[n].files[0]).names
        ]
        if lacking:
            if len(names) > 1:
                raise StageError(
                    f"mix '{self.node_id}': inputs {lacking} have no '{schema.DOMAIN}' column; label each "
                    "input with `domain:` in the spec (or add a domain column) so rows can be attributed"
                )
            default_domain = names[0]
        scratch = jobfs.path(ctx.scratch_dir) / f"{self.node_id}-mix"
        scratch.mkdir(parents=True, exist_ok=True)
        files = [f for n in names for f in inputs[n].files]
        scan = _Scan(
            self.text_column,
            p.token_column,
            default_domain,
            p.rehydrate,
            p.rehydrate_table,
            str(scratch),
            ctx.batch_size,
            self._seed(),
        )
        results = ctx.map_files(scan, files)
        totals: dict[str, dict] = {}
        for r in results:
            totals = _merge_totals(totals, r["totals"])
        sidecars = ShardSet(files=tuple(r["sidecar"] for r in results if r["sidecar"]))

        domains = sorted(set(totals) | set(p.weights or {}))
        n = [totals.get(d, {}).get("tokens", 0) for d in domains]
        epochs = [self._epochs(d) for d in domains]
        warnings = list(self._weight_warnings(domains, totals))
        if not domains or sum(n) == 0:
            ctx.warnings.extend(warnings + ["mix: the input has no tokens; nothing to mix"])
            return self._finish(ctx, {}, {"domains": {}, "budget_tokens": p.budget_tokens}, default_domain)
        if p.method == "explicit":
            w = [float((p.weights or {}).get(d, 0.0)) for d in domains]
        elif p.method == "unimax":
            w = unimax_weights(n, p.budget_tokens, epochs)
        else:
            w = temperature_weights(n, 1.0 if p.temperature is None else p.temperature)
        alloc = allocate(w, n, p.budget_tokens, epochs, p.on_cap)
        warnings += alloc.warnings
        wsum = sum(w)
        # rate over the (possibly rehydrated) pool: copies of a doc = rate × its weight
        rates = {}
        for i, d in enumerate(domains):
            pool = totals.get(d, {}).get("weighted_tokens", 0.0)
            if alloc.targets[i] > 0 and pool > 0:
                rates[d] = alloc.targets[i] / pool

        # fractional sample: coarse histogram -> fine histogram in the crossing bin -> the
        # few rows of the crossing cell, sorted on the driver (token-accurate, any scale)
        hist = (ctx.aggregate(sidecars, _Hist(rates), _merge_hist) if rates else None) or {}
        residual = {d: alloc.targets[domains.index(d)] - h["whole_tokens"] for d, h in hist.items()}
        coarse = {d: find_bin(hist[d]["hist_tok"], residual[d]) for d in hist}
        todo = {d: b for d, (b, _) in coarse.items() if residual[d] > 0 and b < KEY_BINS}
        fine = (ctx.aggregate(sidecars, _Fine(rates, todo), _merge_hist) if todo else None) or {}
        cells, before = {}, {}
        for d, b in todo.items():
            f, mass_f = (
                find_bin(fine[d]["hist_tok"], residual[d] - coarse[d][1]) if d in fine else (0, 0)
            )
            if f < KEY_BINS:
                cells[d], before[d] = (b, f), coarse[d][1] + mass_f
        rows = (ctx.aggregate(sidecars, _Collect(rates, cells), _merge_lists) if cells else None) or {}

        cutoffs, manifest_domains = {}, {}
        total_avail = float(sum(n)) or 1.0
        for i, d in enumerate(domains):
            tot = totals.get(d, {"docs": 0, "tokens": 0, "weighted_tokens": 0.0})
            entry = {
                "available_docs": tot["docs"],
                "available_tokens": tot["tokens"],
                "available_share": tot["tokens"] / total_avail,
                "target_weight": (w[i] / wsum) if wsum > 0 else 0.0,
                "target_tokens": alloc.targets[i],
                "max_epochs": epochs[i],
                "cap_tokens": epochs[i] * tot["tokens"],
                "cap_bound": bool(alloc.capped[i]),
                "rate": rates.get(d, 0.0),
                "realized_tokens": 0,
                "realized_docs": 0,
                "output_rows": 0,
            }
            if d in hist:
                h = hist[d]
                cut_rows = rows.get(d, [])
                if d in cells:
                    cut, frac_mass = choose_cutoff(
                        *cells[d], before[d], residual[d], [r[:3] for r in cut_rows], not alloc.capped[i]
                    )
                elif d in todo:  # the fine histogram could not split the bin: take all of it
                    cut = Cutoff(todo[d] + 1)
                    frac_mass = coarse[d][1] + float(fine.get(d, {}).get("hist_tok", np.zeros(1)).sum())
                else:  # nothing needed (b = 0) or every candidate (b = KEY_BINS)
                    cut, frac_mass = choose_cutoff(coarse[d][0], None, coarse[d][1], residual[d], [])
                cutoffs[d] = {"bin": cut.bin, "fine": cut.fine, "key": cut.key, "id": cut.id}
                sel_rows = int(h["hist_docs"][: cut.bin].sum())
                sel_new = float(h["hist_new"][: cut.bin].sum())
                if cut.fine is not None and d in fine:
                    sel_rows += int(fine[d]["hist_docs"][: cut.fine].sum())
                    sel_new += float(fine[d]["hist_new"][: cut.fine].sum())
                if cut.key is not None:
                    picked = [r for r in cut_rows if (r[0], r[1]) <= (cut.key, cut.id)]
                    sel_rows += len(picked)
                    sel_new += sum(1 for r in picked if r[3])
                entry["realized_tokens"] = int(round(h["whole_tokens"] + frac_mass))
                entry["output_rows"] = h["whole_rows"] + sel_rows
                entry["realized_docs"] = h["docs_whole"] + int(round(sel_new))
            entry["epochs_used"] = entry["realized_tokens"] / tot["tokens"] if tot["tokens"] else 0.0
            manifest_domains[d] = entry
        realized_total = sum(e["realized_tokens"] for e in manifest_domains.values()) or 1
        for e in manifest_domains.values():
            e["realized_share"] = e["realized_tokens"] / realized_total
            e["target_share"] = e["target_tokens"] / (alloc.budget or 1.0)
        manifest = {
            "method": p.method,
            "temperature": p.temperature,
            "on_cap": p.on_cap,
            "budget_tokens": p.budget_tokens,
            "allocated_tokens": alloc.budget,
            "realized_tokens": int(sum(e["realized_tokens"] for e in manifest_domains.values())),
            "seed": self._seed(),
            "rehydrate": p.rehydrate,
            "token_unit": p.token_column or "whitespace_words",
            "domains": manifest_domains,
            "warnings": warnings,
        }
        ctx.warnings.extend(warnings)
        return self._finish(ctx, {"rates": rates, "cutoffs": cutoffs}, manifest, default_domain)

    def _weight_warnings(self, domains: list[str], totals: dict) -> list[str]:
        if self.params.weights is None:
            return []
        out = []
        missing = [d for d in domains if d in totals and d not in self.params.weights]
        if missing:
            out.append(f"mix: domains {missing} have no weight; their documents are not sampled")
        absent = [d for d in self.params.weights if d not in totals]
        if absent:
            out.append(f"mix: weighted domains {absent} have no documents in the input")
        return out

    def _finish(
        self, ctx: FitContext, plan: dict, manifest: dict, default_domain: str | None
    ) -> dict[str, Any]:
        write_json_atomic(jobfs.path(ctx.state_dir) / "manifest.json", manifest)
        return {
            **plan,
            "seed": self._seed(),
            "default_domain": default_domain,
            "rehydrate": self.params.rehydrate,
            "rehydrate_table": {str(k): v for k, v in (self.params.rehydrate_table or {}).items()} or None,
            "stats": {"mix": manifest},
        }

    # -- apply -------------------------------------------------------------------------
    def copies(self, batch: pa.Table, state: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
        """Number of output copies of every row of ``batch`` and each row's domain."""
        if (
            schema.DOMAIN not in batch.column_names
            and state.get("default_domain") is None
            and state.get("rates")
        ):
            raise StageError(f"mix '{self.node_id}': rows have no '{schema.DOMAIN}' column")
        doms = _domains_of(batch, state.get("default_domain"))
        table = (
            {int(k): v for k, v in state["rehydrate_table"].items()} if state.get("rehydrate_table") else None
        )
        w = _weights_of(batch, bool(state.get("rehydrate")), table)
        ids = np.array(pc.cast(batch.column(schema.ID), pa.string()).to_pylist(), dtype=object)
        out = np.zeros(batch.num_rows, dtype=np.int64)
        darr = np.array(doms, dtype=object)
        for d in dict.fromkeys(doms):
            rate = state.get("rates", {}).get(d)
            if rate is None:
                continue
            m = darr == d
            whole, frac = expected_copies(rate, w[m])
            keys = order_keys(doc_uniforms(ids[m], state["seed"], d), frac)
            c = state["cutoffs"][d]
            sel = Cutoff(c["bin"], c.get("fine"), c["key"], c["id"]).selects(keys, ids[m])
            out[m] = whole + sel.astype(np.int64)
        return out, doms

    def process(self, batch: pa.Table, state: dict[str, Any]) -> MapResult:
        n, doms = self.copies(batch, state)
        rates = state.get("rates", {})
        detail = pa.array(
            [
                f"domain={d} rate={rates[d]:.6g}" if d in rates else f"domain={d} has no share of the budget"
                for d in doms
            ],
            pa.string(),
        )
        res = split_batch(batch, n > 0, MIX_NOT_SAMPLED, detail)
        kept = res.kept
        keep_n = n[n > 0]
        kdoms = [d for d, k in zip(doms, n) if k > 0]
        for c in (schema.SOURCE_ID, schema.COPY_INDEX, MIX_REPEAT, MIX_BUCKET):
            if c in kept.column_names:
                kept = kept.drop_columns([c])
        ids = pc.cast(kept.column(schema.ID), pa.string())
        kept = kept.set_column(kept.column_names.index(schema.ID), schema.ID, ids)
        kept = kept.append_column(schema.SOURCE_ID, ids)
        kept = kept.append_column(MIX_REPEAT, pa.array(keep_n, pa.int32()))
        kept = kept.append_column(MIX_BUCKET, pa.array(kdoms, pa.string()))
        parts = [kept.append_column(schema.COPY_INDEX, pa.array(np.zeros(kept.num_rows), pa.int32()))]
        top = int(keep_n.max()) if keep_n.size else 0
        for k in range(1, top):
            idx = np.nonzero(keep_n > k)[0]
            t = kept.take(pa.array(idx))
            new_ids = pc.binary_join_element_wise(t.column(schema.SOURCE_ID), pa.scalar(f"#r{k}"), "")
            t = t.set_column(t.column_names.index(schema.ID), schema.ID, new_ids)
            parts.append(t.append_column(schema.COPY_INDEX, pa.array(np.full(len(idx), k), pa.int32())))
        out = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        return MapResult(out, res.rejected, copies_added=out.num_rows - kept.num_rows)
