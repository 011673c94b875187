"""Test helpers shipped with curate: deterministic, download-free text generators.

See :mod:`curate.testing.textgen`.
"""

from curate.testing.textgen import (
    DOMAINS,
    NEAR_DUP_KINDS,
    boilerplate,
    domain_records,
    domain_texts,
    near_duplicate,
    prose_paragraphs,
    prose_records,
    shuffled,
    spam,
    wrap_with_boilerplate,
)

__all__ = [
    "DOMAINS",
    "NEAR_DUP_KINDS",
    "boilerplate",
    "domain_records",
    "domain_texts",
    "near_duplicate",
    "prose_paragraphs",
    "prose_records",
    "shuffled",
    "spam",
    "wrap_with_boilerplate",
]
