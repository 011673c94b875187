"""Regenerate curate/data/stopwords/<lang>.txt: the stop-word lists of `quality_signals`.

Source: the `wordfreq` package (3.1.1, `pip install wordfreq==3.1.1`, maintenance only; its
word lists are CC-BY-SA 4.0, see curate/data/stopwords/NOTICE.md). Each list is the
language's TOP_N most frequent words (`wordfreq.top_n_list(lang, TOP_N)`) that contain a
letter, the way FineWeb2 takes stop words ("the language's most frequent words"). English
is the Gopher list (Rae et al. 2021), as datatrove's GopherQualityFilter uses it, so the
`gopher_quality` preset decides as datatrove does.

File names are the codes lid.176 emits (wordfreq's `nb` -> `no`, `fil` -> `tl`). Korean is
left out: wordfreq segments it into morphemes (`이`, `는`), which whitespace splitting
never produces, so Korean falls back to the default list (counted in the report).

    python scripts/make_stopwords.py
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

TOP_N = 20
GOPHER_EN = ["the", "be", "to", "of", "and", "that", "have", "with"]
RENAME = {"nb": "no", "fil": "tl"}
SKIP = {"en", "ko"}
OUT = Path(__file__).resolve().parents[1] / "curate" / "data" / "stopwords"


def main() -> None:
    from wordfreq import available_languages, top_n_list

    OUT.mkdir(parents=True, exist_ok=True)
    src = f"wordfreq {version('wordfreq')}"
    written = {"en": GOPHER_EN}
    for lang in sorted(available_languages()):
        if lang in SKIP:
            continue
        words = [w for w in top_n_list(lang, TOP_N) if any(c.isalpha() for c in w)]
        written[RENAME.get(lang, lang)] = words
    for lang, words in sorted(written.items()):
        origin = "Gopher (Rae et al. 2021), as datatrove uses it" if lang == "en" else f"{src}, top {TOP_N}"
        (OUT / f"{lang}.txt").write_text(f"# {lang}: {origin}\n" + "\n".join(words) + "\n")
    print(f"wrote {len(written)} lists to {OUT}: {' '.join(sorted(written))}")


if __name__ == "__main__":
    main()
