"""Stop-word lists per language, as the flat tables the signal kernel reads.

The shipped lists live in ``curate/data/stopwords/<lang>.txt`` (see the NOTICE there and
``scripts/make_stopwords.py``): English is Gopher's list, 40 other languages wordfreq's
most frequent words. A document's language selects its list by exact code, else by the
part before ``_`` (``de_Latn`` -> ``de``); a language with no list uses the default list
(``en`` unless configured) and is counted as a fallback.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from curate.text.heuristics.words import poly_hash


def _data_dir() -> Path:
    return Path(str(resources.files("curate") / "data" / "stopwords"))


@lru_cache(maxsize=1)
def shipped_lists() -> dict[str, tuple[str, ...]]:
    """Every shipped list: language -> words (file order)."""
    out = {}
    for f in sorted(_data_dir().glob("*.txt")):
        words = [w.strip() for w in f.read_text(encoding="utf-8").splitlines()]
        out[f.stem] = tuple(w for w in words if w and not w.startswith("#"))
    return out


class StopwordTables:
    """Stop-word lists flattened for the kernel: table ``t`` holds words
    ``offsets[t]:offsets[t+1]`` (sorted by ``hashes``), their code points in
    ``cps[cp_offsets[w]:cp_offsets[w+1]]``."""

    def __init__(self, lists: dict[str, list[str] | tuple[str, ...]], default: str = "en"):
        if default not in lists:
            raise ValueError(f"no stop-word list for the default language '{default}'")
        self.default = default
        self.names = sorted(lists)
        self._pos = {name: i for i, name in enumerate(self.names)}
        offsets, hashes, cp_offsets, cps = [0], [], [0], []
        for name in self.names:
            words = sorted({w for w in lists[name] if w}, key=lambda w: poly_hash([ord(c) for c in w]))
            for w in words:
                hashes.append(poly_hash([ord(c) for c in w]))
                cps.extend(ord(c) for c in w)
                cp_offsets.append(len(cps))
            offsets.append(len(hashes))
        self.offsets = np.array(offsets, dtype=np.int64)
        self.hashes = np.array(hashes, dtype=np.uint64)
        self.cp_offsets = np.array(cp_offsets, dtype=np.int64)
        self.cps = np.array(cps, dtype=np.int32)

    @classmethod
    def shipped(cls, extra: dict[str, list[str]] | None = None, default: str = "en") -> StopwordTables:
        """The shipped lists, with ``extra`` lists added or replacing shipped ones."""
        lists: dict[str, list[str] | tuple[str, ...]] = dict(shipped_lists())
        lists.update(extra or {})
        return cls(lists, default)

    def resolve(self, language: str | None) -> str | None:
        """The list a language uses (None: it has none and falls back to the default)."""
        if not language:
            return None
        if language in self._pos:
            return language
        base = language.split("_")[0]
        return base if base in self._pos else None

    def index(self, language: str | None) -> int:
        return self._pos[self.resolve(language) or self.default]

    def is_fallback(self, language: str | None) -> bool:
        return self.resolve(language) is None
