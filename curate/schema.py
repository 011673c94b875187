"""Column names and the document contract.

Every document row has a text column (``text`` by default, configurable per input) and
an ``id``. When an input has no ``id`` column, curate assigns one at ingest: the
16-hex-digit xxh3-64 of ``"<input name>\\x00<file path relative to the input's
root>\\x00<row index in that file>"``. It is stable across runs, executors, batch sizes
and however files are grouped into tasks; it changes only if the input is renamed in the
spec or a file is renamed or rewritten. ``source`` and
``domain`` are carried when present; every other column passes through untouched.
"""

from __future__ import annotations

TEXT = "text"
ID = "id"
SOURCE = "source"
DOMAIN = "domain"

# Columns written on rejected rows (the rejects sink).
STAGE = "stage"
REASON = "reason"
DETAIL = "detail"

# Score columns produced by scoring stages ("score, then select").
QUALITY = "quality"
PERPLEXITY = "perplexity"
DSIR_LOGW = "dsir_logw"
DUP_CLUSTER = "dup_cluster"
DUP_CLUSTER_SIZE = "dup_cluster_size"
DUP_KEPT = "dup_kept"
CCNET_BUCKET = "ccnet_bucket"
LANGUAGE = "language"
LANGUAGE_SCORE = "language_score"
LANGUAGE_TOP_K = "language_top_k"

# Ingest reject reasons.
NULL_TEXT = "null_text"
EMPTY_TEXT = "empty_text"
TOO_LONG = "too_long"
INVALID_UTF8 = "invalid_utf8"
NULL_ID = "null_id"  # a user-supplied id column holds a null
INGEST_REASONS = {
    NULL_TEXT: "the text is null",
    EMPTY_TEXT: "the text is empty or only whitespace",
    TOO_LONG: "the text is longer than settings.max_doc_bytes",
    INVALID_UTF8: "the text is not valid UTF-8",
    NULL_ID: "a user-supplied id column holds a null",
}

# Rows a stage adds as copies of a kept document (upsampling) carry the original's id in
# SOURCE_ID and their copy number (>= 1) in COPY_INDEX; the original row has COPY_INDEX 0.
# Readers that count documents (the report) skip rows with COPY_INDEX > 0.
SOURCE_ID = "source_id"
COPY_INDEX = "mix_copy"

# Columns the ingest step guarantees downstream.
INGEST_COLUMNS = frozenset({ID})
