"""Language codes: the ones fastText's lid.176 emits, what looks like a GlotLID code, and the
per-language tally of documents that fell back to a default."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# every label of the bundled lid.176.ftz, without `__label__` (a test checks this list)
LID176_CODES = frozenset({
    "af", "als", "am", "an", "ar", "arz", "as", "ast", "av", "az", "azb", "ba", "bar", "bcl", "be",
    "bg", "bh", "bn", "bo", "bpy", "br", "bs", "bxr", "ca", "cbk", "ce", "ceb", "ckb", "co", "cs", "cv",
    "cy", "da", "de", "diq", "dsb", "dty", "dv", "el", "eml", "en", "eo", "es", "et", "eu", "fa", "fi",
    "fr", "frr", "fy", "ga", "gd", "gl", "gn", "gom", "gu", "gv", "he", "hi", "hif", "hr", "hsb", "ht",
    "hu", "hy", "ia", "id", "ie", "ilo", "io", "is", "it", "ja", "jbo", "jv", "ka", "kk", "km", "kn",
    "ko", "krc", "ku", "kv", "kw", "ky", "la", "lb", "lez", "li", "lmo", "lo", "lrc", "lt", "lv", "mai",
    "mg", "mhr", "min", "mk", "ml", "mn", "mr", "mrj", "ms", "mt", "mwl", "my", "myv", "mzn", "nah",
    "nap", "nds", "ne", "new", "nl", "nn", "no", "oc", "or", "os", "pa", "pam", "pfl", "pl", "pms",
    "pnb", "ps", "pt", "qu", "rm", "ro", "ru", "rue", "sa", "sah", "sc", "scn", "sco", "sd", "sh", "si",
    "sk", "sl", "so", "sq", "sr", "su", "sv", "sw", "ta", "te", "tg", "th", "tk", "tl", "tr", "tt",
    "tyv", "ug", "uk", "ur", "uz", "vec", "vep", "vi", "vls", "vo", "wa", "war", "wuu", "xal", "xmf",
    "yi", "yo", "yue", "zh",
})

_GLOTLID = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")  # ISO 639-3 + ISO 15924 script: deu_Latn


def known_language(code: str) -> bool:
    """A code lid.176 emits, or one of GlotLID's ``xxx_Scrp`` form."""
    return code in LID176_CODES or bool(_GLOTLID.match(code))


def fallback_counts(languages: pa.ChunkedArray | pa.Array, fell_back: np.ndarray, prefix: str) -> dict[str, int]:
    """``{"<prefix>.<language>": n}`` for the documents that fell back to a default
    (null languages as ``(none)``): the per-language fallback tally in ``stats.json``."""
    if not fell_back.any():
        return {}
    langs = pc.filter(pc.cast(languages, pa.string()), pa.array(fell_back))
    vc = pc.value_counts(pc.fill_null(langs, "(none)"))
    return {f"{prefix}.{v}": int(c) for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist())}

