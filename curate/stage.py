"""The stage contract: the two stage kinds every curate stage is built from.

A stage is pure logic over ``pyarrow.Table`` batches. It never imports Ray, HTTP or a
database; executors in ``workers/`` decide where and how often it runs.

* :class:`MapStage` works batch by batch: ``process(batch) -> MapResult``.
* :class:`BarrierStage` needs its whole input first. ``fit(inputs, ctx)`` runs a global
  computation through a :class:`curate.fit.FitContext` and returns a JSON-able *state*
  (files it references live in ``ctx.state_dir``). ``load(state)`` turns the state into
  what ``process(batch, loaded)`` needs; the executor calls ``load`` once per worker and
  caches the result by node and fit.

A stage owns every fact about itself, and generic code (the sandbox, the report, lineage,
the scheduler, the executors) asks the stage instead of guessing:

* ``Params`` (one pydantic model): spec keys, validation, catalogue and docs; path
  parameters are typed (:mod:`curate.params`);
* ``reject_reasons``: every reason its rejected rows may carry;
* ``required_columns`` / ``provided_columns``; ``MapResult.copies_added`` for rows it adds;
* optional hooks, each a no-op by default: ``score_columns`` and ``report_thresholds``
  (the report's score histograms), ``report_sections`` (a report section of its own),
  ``explain_row`` (what lineage says about a row at this node), ``refresh_params``
  (what a scheduled refresh passes it) and ``optional_read_paths`` (read paths the
  preflight must not require).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate import schema
from curate.params import StageParams

if TYPE_CHECKING:  # pragma: no cover
    from curate.fit import FitContext, ShardSet
    from curate.jobdata import JobData

__all__ = [
    "BarrierStage",
    "MapResult",
    "MapStage",
    "ReportSection",
    "Stage",
    "StageError",
    "StageParams",
    "split_batch",
]


class StageError(ValueError):
    """A stage cannot run on the data it was given (a clear, user-facing message)."""


@dataclass
class MapResult:
    """The outcome of a map over one batch.

    ``kept`` holds the surviving rows (with any new columns). ``rejected`` holds the
    rejected rows with the batch's columns plus ``reason`` and ``detail`` (strings).
    Every input row is in exactly one of them. A stage that adds rows (copies of kept
    documents, as mixing does) counts them in ``copies_added``: then
    ``len(kept) - copies_added + len(rejected)`` equals the batch length.

    ``counts`` are named tallies a stage keeps of this batch (e.g. documents per language
    that fell back to a default): the executors sum them over every batch and shard into
    the node's ``counts`` in ``stats.json``, so they hold for the whole corpus.
    """

    kept: pa.Table
    rejected: pa.Table | None = None
    copies_added: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def num_rejected(self) -> int:
        return 0 if self.rejected is None else self.rejected.num_rows


def split_batch(
    table: pa.Table,
    keep: Any,
    reason: str | Sequence[str] | pa.Array,
    detail: str | Sequence[str] | pa.Array | None = None,
) -> MapResult:
    """Split ``table`` by the boolean mask ``keep`` into kept and rejected rows.

    ``reason`` and ``detail`` may be scalars or per-row arrays (aligned with ``table``);
    only the rejected rows' values are used.
    """
    mask = pa.array(keep, type=pa.bool_()) if not isinstance(keep, (pa.Array, pa.ChunkedArray)) else keep
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    mask = pc.fill_null(mask, False)
    kept = table.filter(mask)
    if kept.num_rows == table.num_rows:
        return MapResult(kept, None)
    inv = pc.invert(mask)
    rej = table.filter(inv)
    n = rej.num_rows
    rej = rej.append_column(schema.REASON, _per_row(reason, inv, n))
    rej = rej.append_column(schema.DETAIL, _per_row(detail if detail is not None else "", inv, n))
    return MapResult(kept, rej)


def _per_row(value: Any, inv_mask: pa.Array, n: int) -> pa.Array:
    if isinstance(value, str):
        return pa.array([value] * n, type=pa.string())
    arr = value if isinstance(value, (pa.Array, pa.ChunkedArray)) else pa.array(list(value))
    arr = arr.filter(inv_mask)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.cast(arr, pa.string())


def finite_numbers(obj: Any) -> list[float]:
    """Every finite number in ``obj`` (a number, or nested lists / dict values), in order;
    booleans are not numbers here."""
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)] if math.isfinite(obj) else []
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [v for x in obj for v in finite_numbers(x)]
    return []


@dataclass
class ReportSection:
    """A section a stage adds to its job's report.

    ``key`` names it: ``summary.json`` has ``data`` under ``sections[node_id][key]``, and
    the page shows one section per key (anchor ``#key``, titled ``title``) with one block
    per node that contributed it. ``data`` holds its numbers (JSON-able), ``html`` its
    rendered body (figures embedded; :mod:`curate.report.plots` and
    :mod:`curate.report.html` have helpers); an empty ``html`` renders ``data`` as a table.
    """

    key: str
    title: str
    data: dict[str, Any]
    html: str = ""


class Stage:
    """Common behaviour of map and barrier stages.

    Subclasses set ``name`` (the spec's ``stage:`` key), ``Params``, ``reject_reasons``
    and a docstring (its first line is the catalogue summary). ``uses_model`` marks
    stages that hold a model: on Ray they run in an actor pool, so ``setup`` (model
    loading) happens once per worker.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    Params: ClassVar[type[StageParams]] = StageParams
    uses_model: ClassVar[bool] = False
    reject_reasons: ClassVar[dict[str, str]] = {}
    """Every reason this stage's rejected rows may carry -> what it means."""
    joins_inputs: ClassVar[bool] = False
    """A map stage that reads several inputs as one stream (its columns: those all share)."""

    def __init__(self, params: StageParams | dict | None = None, /, **kwargs: Any) -> None:
        if isinstance(params, StageParams):
            if kwargs:
                params = params.model_copy(update=kwargs)
            self.params = self.Params.model_validate(params.model_dump())
        else:
            self.params = self.Params.model_validate({**(params or {}), **kwargs})
        self.node_id: str = self.name
        self.seed: int = 0
        self.text_column: str = schema.TEXT
        self._ready = False

    # -- spec-time facts ---------------------------------------------------------------
    def required_columns(self) -> set[str]:
        """Columns this stage needs from upstream (besides id and text)."""
        return set()

    def provided_columns(self) -> set[str]:
        """Columns this stage adds."""
        return set()

    def extra_inputs(self) -> list[str]:
        """DAG node ids this stage reads besides its data inputs (e.g. a DSIR target)."""
        return []

    def reasons(self) -> dict[str, str]:
        """The reject reasons this configured stage may emit (default: ``reject_reasons``).
        The executor fails a batch whose rejects carry any other reason."""
        return dict(self.reject_reasons)

    # -- optional hooks (defaults do nothing) ------------------------------------------
    def score_columns(self) -> list[str]:
        """Numeric columns whose distribution the report plots (scores this stage adds
        or selects on)."""
        return []

    def report_thresholds(self, fit_stats: dict[str, Any] | None) -> dict[str, list[tuple[str, float]]]:
        """Thresholds to draw on score histograms: column -> [(label, value)].

        The default reads ``fit_stats["thresholds"] = {column: [values]}`` (finite numbers
        only, nested lists flattened). The report prefixes each label with the node id."""
        found = (fit_stats or {}).get("thresholds")
        if not isinstance(found, dict):
            return {}
        return {col: [(f"{v:.4g}", v) for v in finite_numbers(vals)] for col, vals in found.items()}

    def report_sections(self, job: JobData, node_id: str) -> list[ReportSection]:
        """Report sections of this node (read what the job wrote through ``job``)."""
        return []

    def explain_row(self, job: JobData, node_id: str, row: dict[str, Any], rejected: bool) -> dict[str, Any]:
        """What lineage adds about a document at this node: extra keys of the
        explanation (e.g. ``{"dedup": {...}}``).

        Called for every node on the document's path, upstream first (a later node's key
        replaces an earlier one). ``row`` is the document's final row (the rejected row, or
        its row in the outputs; text columns left out, JSON-safe values): read structured
        columns, not prose. ``rejected``: this node rejected the document."""
        return {}

    def optional_read_paths(self) -> set[str]:
        """Read-path parameter values that may legitimately not exist when the job starts
        (the preflight skips them); e.g. an index this very node creates on its first run.
        Paths written by upstream nodes are skipped without asking."""
        return set()

    def refresh_params(self, state_dir: str) -> dict[str, Any]:
        """Parameter overrides for a scheduled refresh run. ``state_dir`` is this node's
        directory that persists across the schedule's runs; a value of None removes
        the key from the node's params."""
        return {}

    # -- runtime -----------------------------------------------------------------------
    def bind(self, node_id: str, seed: int, text_column: str = schema.TEXT) -> Stage:
        """Attach the stage to a DAG node: its id names rejects, its seed is derived."""
        self.node_id = node_id
        self.seed = seed
        self.text_column = text_column
        return self

    def setup(self) -> None:
        """Load models or other heavy resources. Called once per worker, before batches."""

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def run_stats(self) -> dict[str, Any]:
        """Extra facts for stats.json (e.g. a model digest). Must be JSON-able."""
        return {}

    @classmethod
    def catalogue_entry(cls) -> dict[str, Any]:
        doc = (cls.__doc__ or "").strip()
        return {
            "name": cls.name,
            "kind": cls.kind,
            "uses_model": cls.uses_model,
            "summary": doc.splitlines()[0] if doc else "",
            "description": doc,
            "reject_reasons": dict(cls.reject_reasons),
            "params_schema": cls.Params.model_json_schema(),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


class MapStage(Stage):
    """A per-batch, streamable stage."""

    kind: ClassVar[str] = "map"

    def process(self, batch: pa.Table) -> MapResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, batch: pa.Table) -> MapResult:
        self.ensure_setup()
        return self.process(batch)


def state_fingerprint(state: Any) -> str:
    """A stable digest of a JSON-able fit state."""
    return xxhash.xxh3_64_hexdigest(json.dumps(state, sort_keys=True, default=str).encode())


class BarrierStage(Stage):
    """A stage with a global fit over its whole input, then a per-batch map.

    ``fit`` must not pull the corpus onto one process: use ``ctx.aggregate`` for
    associative reductions and ``ctx.shuffle`` for keyed, hash-partitioned work, and
    ``ctx.persist`` to keep shuffle outputs as state. ``load`` runs once per worker (the
    executor caches it by node and fit); ``process`` must not modify what it loaded.
    """

    kind: ClassVar[str] = "barrier"

    def fit(self, inputs: dict[str, ShardSet], ctx: FitContext) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - abstract

    def load(self, state: dict[str, Any]) -> Any:
        """Turn a fit's state into what ``process`` uses (default: the state itself)."""
        return state

    def process(self, batch: pa.Table, loaded: Any) -> MapResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, batch: pa.Table, state: dict[str, Any]) -> MapResult:
        """In-process convenience: ``process(batch, load(state))``, with the loaded state
        kept on this instance while ``state`` stays the same."""
        fp = state_fingerprint(state)
        memo = getattr(self, "_loaded_memo", None)
        if memo is None or memo[0] != fp:
            memo = (fp, self.load(state))
            self._loaded_memo = memo
        return self.process(batch, memo[1])

    def data_inputs(self, inputs: Sequence[str]) -> list[str]:
        """Which of the node's inputs flow through ``process`` (default: all)."""
        extra = set(self.extra_inputs())
        return [i for i in inputs if i not in extra]
