"""The bundled sample corpus: a deterministic multi-domain Parquet corpus, no download.

:func:`write_sample_corpus` writes ``out_dir/<domain>/part-0000N.parquet`` for the domains in
:data:`CORPUS_DOMAINS`, built with :mod:`curate.testing.textgen` from text that every Python
installation carries (stdlib docstrings, license and README texts in ``site-packages``).

Columns: ``text`` (string, nullable), ``source`` (where the text came from, e.g.
``stdlib:json`` or ``site-packages:numpy/LICENSE.txt``; ``synthetic:<kind>`` for generated
junk), ``domain`` and ``url`` (made up, unique per row). There is no ``id`` column: ingest
assigns ids.

What is in it, on purpose:

* ``web``: web pages (prose, some with nav/footer boilerplate), exact copies, near-duplicates
  (small edits, re-wrapped lines, boilerplate header/footer added), low-quality documents
  (boilerplate only, keyword spam, word-shuffled prose) and a few null / empty /
  whitespace-only texts;
* ``code_docs``, ``prose``, ``readme``, ``legal``: clean single-domain text (API docs, plain
  prose, package READMEs, licenses) with natural duplicates (the same license in many
  packages) plus ~12 % near-duplicate copies.

Deterministic: the same installed files and the same seed give byte-identical Parquet files
(fixed zstd level, fixed row-group size, no timestamps).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.testing import textgen as tg

CORPUS_DOMAINS: tuple[str, ...] = ("web", "code_docs", "prose", "readme", "legal")
"""Domain directories written by :func:`write_sample_corpus`."""

DOMAIN_SHARE: dict[str, float] = {
    "web": 0.45,
    "code_docs": 0.15,
    "prose": 0.15,
    "readme": 0.13,
    "legal": 0.12,
}
"""Share of the text bytes per domain."""

SHARD_TEXT_BYTES = 1_000_000
"""Approximate uncompressed text bytes per shard (every domain gets at least 3 shards)."""

SCHEMA = pa.schema(
    [
        pa.field("text", pa.string()),
        pa.field("source", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("url", pa.string()),
    ]
)

_NEAR_DUP_SHARE = 0.12
_SLUG_RE = re.compile(r"[^a-z0-9]+")

LABEL_SCHEMA = pa.schema([pa.field("kind", pa.string()), pa.field("dup_of", pa.string())])
"""Extra columns written with ``labels=True``: ``kind`` (clean, exact_dup, near_dup_edit,
near_dup_rewrap, near_dup_boilerplate, boilerplate, spam, shuffled, null, empty, whitespace)
and ``dup_of`` (url of the original row for copies, else null)."""


class Row(NamedTuple):
    text: str | None
    source: str
    kind: str
    origin: int = -1  # index (in the domain's row list) of the original, for copies


def _subseed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31))


def _nbytes(text: str | None) -> int:
    return len(text.encode("utf-8")) if text else 0


def _clean_domain(domain: str, budget: int, rng: np.random.Generator) -> list[Row]:
    """Clean documents of one textgen domain until ~88 % of budget, then near-dup copies."""
    clean_budget = int(budget * (1 - _NEAR_DUP_SHARE))
    rows: list[Row] = []
    n = 64
    seed = _subseed(rng)
    while True:
        # draw() is prefix-stable for a fixed seed, so growing n only appends documents.
        recs = tg.domain_records(domain, n, seed)
        rows, size = [], 0
        for src, text in recs:
            if size >= clean_budget:
                break
            rows.append(Row(text, src, "clean"))
            size += _nbytes(text)
        if size >= clean_budget or n > 10_000_000:
            break
        n = int(n * max(2.0, 1.2 * clean_budget / max(size, 1)))
    return rows + _near_dups(rows, budget - size, rng)


def _near_dups(rows: list[Row], budget: int, rng: np.random.Generator) -> list[Row]:
    out: list[Row] = []
    size = 0
    while size < budget and rows:
        j = int(rng.integers(len(rows)))
        text, src = rows[j].text, rows[j].source
        assert text is not None
        kind = tg.NEAR_DUP_KINDS[int(rng.integers(len(tg.NEAR_DUP_KINDS)))]
        m = tg.near_duplicate(text, _subseed(rng), kind)
        out.append(Row(m, src, f"near_dup_{kind}", j))
        size += _nbytes(m)
    return out


def _web(budget: int, rng: np.random.Generator) -> list[Row]:
    """Web pages plus copies, near-dups, junk and empty texts."""
    page_budget = int(budget * 0.62)
    n_pars = page_budget // 350 + 64
    paras = tg.prose_records(n_pars, _subseed(rng))
    pages: list[Row] = []
    size = 0
    i = 0
    while size < page_budget and i < len(paras):
        k = int(rng.integers(1, 5))
        src = paras[i][0]
        body = "\n\n".join(t for _s, t in paras[i : i + k])
        i += k
        if rng.random() < 0.25:
            body = tg.wrap_with_boilerplate(body, _subseed(rng))
        pages.append(Row(body, src, "clean"))
        size += _nbytes(body)
    n = len(pages)
    rows = list(pages)
    # exact copies (same text, another url)
    for j in rng.choice(n, size=max(2, n // 25), replace=False):
        rows.append(pages[int(j)]._replace(kind="exact_dup", origin=int(j)))
    rows += _near_dups(pages, int(budget * 0.14), rng)
    n_junk = max(3, n // 10)
    rows += [Row(t, "synthetic:boilerplate", "boilerplate") for t in tg.boilerplate(n_junk, _subseed(rng))]
    rows += [Row(t, "synthetic:spam", "spam") for t in tg.spam(n_junk, _subseed(rng))]
    rows += [Row(t, "synthetic:shuffled", "shuffled") for t in tg.shuffled(n_junk, _subseed(rng))]
    n_empty = max(2, n // 400)
    rows += [Row(None, "synthetic:null", "null")] * n_empty
    rows += [Row("", "synthetic:empty", "empty")] * n_empty
    ws = ("   ", "\n\n", " \t \n ", "\u00a0\u00a0", "\n")
    rows += [Row(ws[j % len(ws)], "synthetic:whitespace", "whitespace") for j in range(n_empty)]
    return rows


def _host(domain: str, source: str, rng: np.random.Generator) -> str:
    kind, _, rest = source.partition(":")
    if kind == "stdlib" and domain == "code_docs":
        return f"docs.python.org/3/library/{rest.split('.')[0]}.html"
    if kind == "site-packages":
        return f"pypi.org/project/{rest.split('/')[0]}"
    names = tg._dist_names()
    name = names[int(rng.integers(len(names)))]
    if domain == "prose":
        return f"blog.{name}.org/posts"
    return f"www.{name}-{('news', 'hub', 'daily', 'online')[int(rng.integers(4))]}.com"


def _url(domain: str, source: str, text: str | None, idx: int, rng: np.random.Generator) -> str:
    words = _SLUG_RE.sub("-", (text or "").lower()[:48]).strip("-") or "page"
    return f"https://{_host(domain, source, rng)}/{words}-{idx:06d}"


def _write_shards(
    out: Path, domain: str, rows: list[Row], rng: np.random.Generator, labels: bool
) -> list[dict[str, Any]]:
    urls = [_url(domain, r.source, r.text, i, rng) for i, r in enumerate(rows)]
    order = [int(i) for i in rng.permutation(len(rows))]
    text_bytes = sum(_nbytes(r.text) for r in rows)
    n_shards = max(3, min(64, math.ceil(text_bytes / SHARD_TEXT_BYTES)))
    out.mkdir(parents=True, exist_ok=True)
    for stale in sorted(out.glob("part-*.parquet")):
        stale.unlink()
    schema = pa.schema(list(SCHEMA) + (list(LABEL_SCHEMA) if labels else []))
    bounds = np.linspace(0, len(rows), n_shards + 1).astype(int)
    files = []
    for s in range(n_shards):
        idx = order[int(bounds[s]) : int(bounds[s + 1])]
        part = [rows[i] for i in idx]
        cols: dict[str, list[Any]] = {
            "text": [r.text for r in part],
            "source": [r.source for r in part],
            "domain": [domain] * len(part),
            "url": [urls[i] for i in idx],
        }
        if labels:
            cols["kind"] = [r.kind for r in part]
            cols["dup_of"] = [urls[r.origin] if r.origin >= 0 else None for r in part]
        path = out / f"part-{s:05d}.parquet"
        pq.write_table(
            pa.table(cols, schema=schema),
            path,
            compression="zstd",
            compression_level=3,
            row_group_size=2048,
            use_dictionary=["source", "domain", "kind"],
            write_statistics=True,
        )
        files.append(
            {
                "path": f"{domain}/{path.name}",
                "domain": domain,
                "rows": len(part),
                "text_bytes": sum(_nbytes(r.text) for r in part),
                "bytes": path.stat().st_size,
            }
        )
    return files


def write_sample_corpus(
    out_dir: str | Path, *, target_mb: float = 20, seed: int = 0, labels: bool = False
) -> dict[str, Any]:
    """Write the sample corpus under ``out_dir`` and return its manifest.

    ``target_mb`` is the approximate total size of the *text* (UTF-8, uncompressed, in
    10**6 bytes); Parquet files are smaller (zstd). Existing ``part-*.parquet`` files in the
    domain directories are replaced. The manifest is also written to
    ``out_dir/manifest.json``. ``labels=True`` adds the ground-truth columns of
    :data:`LABEL_SCHEMA` (``kind``, ``dup_of``) for evaluating filters and dedup in tests; the
    texts are the same either way.

    Returns a dict with: ``out_dir``, ``seed``, ``target_mb``, ``files`` (list of
    ``{path (relative to out_dir), domain, rows, text_bytes, bytes}``), ``rows_per_domain``,
    ``text_bytes_per_domain``, ``kinds_per_domain`` (counts of clean / exact_dup /
    near_dup_* / boilerplate / spam / shuffled / null / empty / whitespace rows),
    ``total_rows``, ``total_text_bytes`` and ``total_bytes`` (Parquet file bytes).
    """
    if not target_mb > 0:
        raise ValueError(f"target_mb must be > 0, got {target_mb!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = int(target_mb * 1_000_000)
    files: list[dict[str, Any]] = []
    kinds: dict[str, dict[str, int]] = {}
    for d_idx, domain in enumerate(CORPUS_DOMAINS):
        rng = np.random.default_rng([seed, d_idx])
        budget = max(20_000, int(total * DOMAIN_SHARE[domain]))
        rows = _web(budget, rng) if domain == "web" else _clean_domain(domain, budget, rng)
        kinds[domain] = dict(sorted(Counter(r.kind for r in rows).items()))
        files += _write_shards(out / domain, domain, rows, rng, labels)
    manifest: dict[str, Any] = {
        "seed": seed,
        "target_mb": target_mb,
        "labels": labels,
        "files": files,
        "rows_per_domain": {d: sum(f["rows"] for f in files if f["domain"] == d) for d in CORPUS_DOMAINS},
        "text_bytes_per_domain": {
            d: sum(f["text_bytes"] for f in files if f["domain"] == d) for d in CORPUS_DOMAINS
        },
        "kinds_per_domain": kinds,
        "total_rows": sum(f["rows"] for f in files),
        "total_text_bytes": sum(f["text_bytes"] for f in files),
        "total_bytes": sum(f["bytes"] for f in files),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return {"out_dir": str(out), **manifest}
