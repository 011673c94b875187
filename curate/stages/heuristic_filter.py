"""`heuristic_filter`: keep documents whose heuristic signals pass rule sets, per language.

Selection only: the signals come from ``quality_signals``. Every reject names the first rule
it failed (reason ``<preset>:<rule>``, detail ``gopher_repetition:dup_line_frac 0.41 > 0.3``).
Parameters and threshold resolution: :mod:`curate.stages.heuristic_filter_params`.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.stage import MapResult, MapStage, ReportSection, StageError, split_batch
from curate.stages.heuristic_filter_params import (
    DEFAULT_KEY,
    ActiveRule,
    HeuristicFilterParams,
    describe_rules,
    load_preset_file,
    rule_sets,
)
from curate.text.heuristics.languages import fallback_counts
from curate.text.heuristics.presets import PRESETS

if TYPE_CHECKING:  # pragma: no cover
    from curate.jobdata import JobData

RULE_SET_COLUMN = "heuristic_rule_set"


class HeuristicFilter(MapStage):
    """Keep documents whose `qs_*` signals pass heuristic rule sets (Gopher, C4, FineWeb).

    Presets `gopher_quality`, `gopher_repetition`, `c4` and `fineweb` carry datatrove
    0.10.1's default thresholds, checked in datatrove's order; `overrides` changes any of
    them (`preset:rule: value`, null disables), `rules` adds your own. Thresholds can differ
    per language: `per_language: {de: {...}, default: {...}}` keyed on the `language`
    column, or a `preset_file` written by `curate calibrate`. A document whose language has
    no entry uses `default` (counted per language in the report). Adds
    `heuristic_rule_set` (the per_language key applied). Each reject carries the first
    failed rule as reason `<preset>:<rule>` and the comparison as detail.
    """

    name = "heuristic_filter"
    Params = HeuristicFilterParams
    reject_reasons: ClassVar[dict[str, str]] = {f"{p}:{r.name}": f"{r.signal} {'<' if r.direction == 'min' else '>'} {r.threshold:g}"
                      for p, rules in PRESETS.items() for r in rules}

    def __init__(self, params: Any = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._sets: dict[str, list[ActiveRule]] | None = None

    def rule_sets(self) -> dict[str, list[ActiveRule]]:
        if self._sets is None:
            p = self.params
            try:
                from_file = load_preset_file(p.preset_file) if p.preset_file else None
                self._sets = rule_sets(p, from_file)
            except ValueError as e:
                raise StageError(str(e)) from None
        return self._sets

    def reasons(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for rules in self.rule_sets().values():
            for a in rules:
                out.setdefault(a.reason, f"{a.rule.signal} fails the {a.rule.direction} rule ({a.rule.name})")
        return out

    def required_columns(self) -> set[str]:
        return {a.rule.signal for rules in self.rule_sets().values() for a in rules}

    def provided_columns(self) -> set[str]:
        return {RULE_SET_COLUMN}

    def score_columns(self) -> list[str]:
        return list(dict.fromkeys(a.rule.signal for a in self.rule_sets()[DEFAULT_KEY]))

    def report_thresholds(self, fit_stats: dict[str, Any] | None) -> dict[str, list[tuple[str, float]]]:
        out: dict[str, list[tuple[str, float]]] = {}
        for a in self.rule_sets()[DEFAULT_KEY]:
            out.setdefault(a.rule.signal, []).append((a.reason, float(a.rule.threshold)))
        return out

    def process(self, batch: pa.Table) -> MapResult:
        sets = self.rule_sets()
        n = batch.num_rows
        col = self.params.language_column
        if col in batch.column_names:
            langs = pc.cast(batch.column(col), pa.string())
            keys = pc.if_else(pc.is_in(langs, value_set=pa.array(list(sets), pa.string())), langs, DEFAULT_KEY)
            keys = pc.fill_null(keys, DEFAULT_KEY)
        else:
            keys = pa.array([DEFAULT_KEY] * n, pa.string())
        key_np = np.asarray(keys.to_pylist(), dtype=object)
        keep = np.ones(n, dtype=bool)
        failed = np.full(n, -1, dtype=np.int64)
        flat: list[ActiveRule] = []
        values: dict[str, np.ndarray] = {}
        for key, rules in sets.items():
            in_set = key_np == key
            if not in_set.any():
                continue
            for a in rules:
                v = values.get(a.rule.signal)
                if v is None:
                    v = values[a.rule.signal] = self._signal(batch, a.rule.signal)
                t = a.rule.threshold
                ok = v >= t if a.rule.direction == "min" else v <= t
                bad = in_set & keep & ~ok
                if bad.any():
                    failed[bad] = len(flat)
                    keep &= ~bad
                flat.append(a)
        reason = np.full(n, "", dtype=object)
        detail = np.full(n, "", dtype=object)
        for i in np.nonzero(~keep)[0]:
            a = flat[failed[i]]
            reason[i] = a.reason
            detail[i] = f"{a.preset}:{a.rule.describe(values[a.rule.signal][i])}"
        out = batch.append_column(RULE_SET_COLUMN, pa.array(key_np.tolist(), pa.string())) \
            if RULE_SET_COLUMN not in batch.column_names else batch
        res = split_batch(out, keep, pa.array(reason.tolist(), pa.string()), pa.array(detail.tolist(), pa.string()))
        if col in batch.column_names:
            res.counts = fallback_counts(batch.column(col), key_np == DEFAULT_KEY, "default_rule_set")
        return res

    def _signal(self, batch: pa.Table, name: str) -> np.ndarray:
        if name not in batch.column_names:
            raise StageError(f"heuristic_filter '{self.node_id}': signal column '{name}' is missing "
                             f"(run quality_signals with its family upstream)")
        return pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False)  # nulls: NaN, fail

    # -- report and lineage ------------------------------------------------------------
    def report_sections(self, job: JobData, node_id: str) -> list[ReportSection]:
        """Rejects per rule and per language, and which rule set each language used."""
        import pyarrow.parquet as pq

        from curate.report.html import table

        docs: Counter = Counter()
        used: dict[str, str] = {}
        rejected: dict[str, Counter] = {}
        for f in job.files_after(node_id) + job.reject_files(node_id):
            cols = job.columns(f)
            if RULE_SET_COLUMN not in cols:
                continue
            want = [c for c in (self.params.language_column, RULE_SET_COLUMN, "reason") if c in cols]
            t = pq.read_table(f, columns=want).to_pylist()
            own = f in job.reject_files(node_id)
            for r in t:
                lang = r.get(self.params.language_column) or "(none)"
                docs[lang] += 1
                used[lang] = r[RULE_SET_COLUMN]
                if own:
                    rejected.setdefault(lang, Counter())[r.get("reason") or ""] += 1
        if not docs:
            return []
        by_reason = (job.nodes.get(node_id) or {}).get("rejects_by_reason") or {}
        fallback = {lang: n for lang, n in docs.items() if used.get(lang) == DEFAULT_KEY}
        rows = []
        for lang, n in docs.most_common():
            rej = rejected.get(lang, Counter())
            top = ", ".join(f"{r} {c}" for r, c in rej.most_common(3))
            rows.append([lang, used.get(lang, ""), n, sum(rej.values()), top or "-"])
        data = {
            "rejects_by_rule": dict(by_reason),
            "by_language": {lang: {"rule_set": used.get(lang), "documents": n,
                                   "rejected": dict(rejected.get(lang, {}))} for lang, n in docs.items()},
            "default_fallback": fallback,
            "rule_sets": describe_rules(self.rule_sets()),
        }
        body = table(["language", "rule set", "documents", "rejected", "top rules"], rows)
        rule_rows = [[r, c] for r, c in sorted(by_reason.items(), key=lambda x: -x[1])]
        if rule_rows:
            body += table(["rule", "rejected"], rule_rows)
        return [ReportSection("heuristic_filter", "Heuristic filter: rejects per rule and language", data, body)]

    def explain_row(self, job: JobData, node_id: str, row: dict[str, Any], rejected: bool) -> dict[str, Any]:
        key = row.get(RULE_SET_COLUMN) or DEFAULT_KEY
        rules = self.rule_sets().get(key) or self.rule_sets()[DEFAULT_KEY]
        checks = []
        for a in rules:
            v = row.get(a.rule.signal)
            checks.append({"rule": a.reason, "signal": a.rule.signal, "value": v, "direction": a.rule.direction,
                           "threshold": a.rule.threshold, "passed": v is not None and a.rule.keeps(float(v))})
        return {"heuristic_filter": {"rule_set": key, "checks": checks}}

