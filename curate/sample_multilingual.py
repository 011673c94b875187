"""The multilingual sample corpus (``curate sample-data DIR --multilingual``), no download.

Web-like documents in six languages and three scripts (English, German, French, Spanish,
Russian, Japanese), built deterministically from sentences shipped in
``curate/data/multilingual/seed_sentences.json`` (written for curate). It is the input of
``pipelines/fineweb2.yaml``: language ID, heuristic filters per language, dedup per
language and a rehydrated mix. Per language it holds, on purpose:

* clean documents: 2-3 paragraphs of 3-5 sentences;
* exact copies and near-duplicates (a sentence dropped or replaced) of clean documents;
* repetitive documents (one sentence on every line: Gopher repetition fails them);
* list-like documents (short fragment lines without punctuation: FineWeb fails them);
* one-sentence documents (too few words for Gopher quality).

Columns as in the main sample corpus (``text``, ``source`` = ``multilingual:<lang>:<kind>``,
``domain`` = ``web``, ``url``); ``labels=True`` adds ``kind`` and ``dup_of``. The language is
not a column: ``language_id`` finds it. Same seed, same files (byte-identical).
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from curate.sample_data import Row, _nbytes, _write_shards

LANGUAGES = ("en", "de", "fr", "es", "ru", "ja")
KIND_SHARE = {"clean": 0.62, "exact_dup": 0.08, "near_dup_edit": 0.10, "repetitive": 0.07, "list": 0.07,
              "short": 0.06}
DOMAIN = "web"


def seed_sentences() -> dict[str, list[str]]:
    path = Path(str(resources.files("curate") / "data" / "multilingual" / "seed_sentences.json"))
    return json.loads(path.read_text(encoding="utf-8"))["sentences"]


def _join(lang: str, sentences: list[str]) -> str:
    return ("" if lang == "ja" else " ").join(sentences)


def _clean(lang: str, pool: list[str], rng: np.random.Generator) -> str:
    """2-3 paragraphs of 3-5 sentences, no sentence twice."""
    sizes = [int(rng.integers(3, 6)) for _ in range(int(rng.integers(2, 4)))]
    idx = [int(i) for i in rng.choice(len(pool), size=sum(sizes), replace=False)]
    paras, at = [], 0
    for k in sizes:
        paras.append(_join(lang, [pool[i] for i in idx[at : at + k]]))
        at += k
    return "\n\n".join(paras)


def _fragment(lang: str, sentence: str) -> str:
    if lang == "ja":
        return sentence[:6]
    return " ".join(sentence.rstrip(".").split()[:3])


def _language_rows(lang: str, pool: list[str], budget: int, rng: np.random.Generator) -> list[Row]:
    rows: list[Row] = []
    clean_idx: list[int] = []
    used = 0
    kinds, shares = list(KIND_SHARE), np.array(list(KIND_SHARE.values()))
    while used < budget or len(clean_idx) < 3:
        kind = "clean" if len(clean_idx) < 3 else kinds[int(rng.choice(len(kinds), p=shares / shares.sum()))]
        origin = -1
        if kind == "clean":
            text = _clean(lang, pool, rng)
        elif kind in ("exact_dup", "near_dup_edit"):
            origin = clean_idx[int(rng.integers(len(clean_idx)))]
            text = rows[origin].text or ""
            if kind == "near_dup_edit":
                paras = text.split("\n\n")
                p = int(rng.integers(len(paras)))
                sents = [s for s in pool if s in paras[p]]
                if sents:
                    old = sents[int(rng.integers(len(sents)))]
                    new = pool[int(rng.integers(len(pool)))]
                    paras[p] = paras[p].replace(old, new if new not in paras[p] else "", 1).strip()
                text = "\n\n".join(x for x in paras if x)
        elif kind == "repetitive":
            text = "\n".join([pool[int(rng.integers(len(pool)))]] * int(rng.integers(6, 10)))
        elif kind == "list":
            idx = rng.choice(len(pool), size=12, replace=False)
            text = "\n".join(_fragment(lang, pool[int(i)]) for i in idx)
        else:
            text = pool[int(rng.integers(len(pool)))]
        if kind == "clean":
            clean_idx.append(len(rows))
        rows.append(Row(text, f"multilingual:{lang}:{kind}", kind, origin))
        used += _nbytes(text)
    return rows


def write_multilingual_corpus(out_dir: str | Path, *, target_mb: float = 1.0, seed: int = 0,
                              labels: bool = False) -> dict[str, Any]:
    """Write the multilingual sample under ``out_dir/web/`` and return its manifest (also in
    ``out_dir/manifest.json``); ``target_mb`` is the approximate text size, split evenly over
    the languages."""
    if not target_mb > 0:
        raise ValueError(f"target_mb must be > 0, got {target_mb!r}")
    out = Path(out_dir)
    pools = seed_sentences()
    per_lang = max(5_000, int(target_mb * 1_000_000 / len(LANGUAGES)))
    rows: list[Row] = []
    per_language: dict[str, dict[str, int]] = {}
    for i, lang in enumerate(LANGUAGES):
        lang_rows = _language_rows(lang, pools[lang], per_lang, np.random.default_rng([seed, 100 + i]))
        base = len(rows)
        rows += [r._replace(origin=r.origin + base) if r.origin >= 0 else r for r in lang_rows]
        per_language[lang] = dict(sorted(Counter(r.kind for r in lang_rows).items()))
    files = _write_shards(out / DOMAIN, DOMAIN, rows, np.random.default_rng([seed, 99]), labels)
    manifest: dict[str, Any] = {
        "seed": seed,
        "target_mb": target_mb,
        "labels": labels,
        "languages": list(LANGUAGES),
        "kinds_per_language": per_language,
        "files": files,
        "total_rows": sum(f["rows"] for f in files),
        "total_text_bytes": sum(f["text_bytes"] for f in files),
        "total_bytes": sum(f["bytes"] for f in files),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return {"out_dir": str(out), **manifest}
