"""Test helpers shipped with curate: deterministic, download-free text generators.

See :mod:`curate.testing.textgen`.
"""

from curate.testing.textgen import (
    DOMAINS,
    boilerplate,
    domain_texts,
    domain_records,
    near_duplicate,
    prose_paragraphs,
    shuffled,
    spam,
    wrap_with_boilerplate,
)

__all__ = [
    "DOMAINS",
    "boilerplate",
    "domain_texts",
    "domain_records",
    "near_duplicate",
    "prose_paragraphs",
    "shuffled",
    "spam",
    "wrap_with_boilerplate",
]
