"""The parameters of ``minhash_dedup``, the keep-policy grammar and the fit configuration.

:class:`MinHashDedupParams` is what a spec sets. :func:`parse_keep` reads the keep
policy string; :func:`fit_config` flattens both into the plain dict the fit tasks carry
(picklable, and the index manifest records a part of it).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from curate import schema
from curate.params import ReadPath, StageParams, WritePath

_KEEP_RE = re.compile(r"^(lowest_id|longest|highest:(?P<h>.+)|newest:(?P<n>.+)|source_priority:(?P<s>.+))$")


def parse_keep(keep: str) -> tuple[str, str | None, list[str] | None]:
    """``(policy, column, source order)`` of a keep policy string (ValueError if unknown)."""
    m = _KEEP_RE.match(keep.strip())
    if not m:
        raise ValueError(
            f"unknown keep policy {keep!r}; expected lowest_id | longest | highest:<column> | "
            "newest:<column> | source_priority:[src1,src2,...]"
        )
    if m.group("h"):
        return "highest", m.group("h").strip(), None
    if m.group("n"):
        return "newest", m.group("n").strip(), None
    if m.group("s"):
        raw = m.group("s").strip()
        if raw.startswith("["):
            if not raw.endswith("]"):
                raise ValueError(f"keep policy {keep!r}: unbalanced brackets")
            raw = raw[1:-1]
        srcs = [s.strip().strip("'\"") for s in raw.split(",") if s.strip()]
        if not srcs:
            raise ValueError(f"keep policy {keep!r}: empty source list")
        return "source_priority", schema.SOURCE, srcs
    return keep.strip(), None, None


class MinHashDedupParams(StageParams):
    """Parameters of :class:`~curate.stages.minhash_dedup.MinHashDedup`."""

    bands: int = Field(14, ge=1, description="LSH bands b (FineWeb/datatrove default 14)")
    rows: int = Field(8, ge=1, description="Rows (hash values) per band r (default 8)")
    num_perm: int = Field(112, ge=1, description="Number of MinHash permutations; must equal bands*rows")
    ngram: int = Field(5, ge=1, description="Word n-gram size of the shingles (after NFKC + lowercase)")
    seed: int = Field(1, ge=0, description="MinHash seed (independent of the job seed, so indexes are "
                      "comparable across jobs)")
    hash_bits: Literal[32, 64] = Field(64, description="Bits kept per signature value (scheme fast); "
                                       "datasketch schemes have their own width")
    scheme: Literal["fast", "datasketch"] = Field(
        "fast", description="fast: numba 64-bit kernel; datasketch: bit-identical to datasketch 2.x MinHash")
    datasketch_scheme: Literal["affine32", "affine64", "legacy"] = Field(
        "affine32", description="datasketch permutation scheme when scheme=datasketch (2.x default affine32)")
    verify_jaccard: float | None = Field(
        0.8, gt=0.0, le=1.0,
        description="A candidate pair joins a cluster only if its exact shingle-set Jaccard >= this (default "
        "0.8: the best F1 on real near-duplicates). null: no verification, every LSH candidate pair is a "
        "duplicate (datatrove-style; faster, far less precise)")
    keep: str = Field("lowest_id", description="Which document of a cluster survives: lowest_id | longest | "
                      "highest:<column> | newest:<column> | source_priority:[src1,src2,...] (ties: lowest id)")
    mode: Literal["drop", "annotate"] = Field(
        "drop", description="drop: reject all but the kept document; annotate: drop nothing, add "
        "dup_cluster, dup_cluster_size, dup_kept")
    against_index: Annotated[str | None, ReadPath] = Field(
        None, description="Directory of a band index written earlier: new documents that collide with "
        "(and, if verifying, truly match) an indexed document are removed. A missing index is an error, "
        "except when it is also write_index (the first run of a refresh creates it)")
    write_index: Annotated[str | None, WritePath] = Field(
        None, description="Directory to write this run's survivors to as a new index version (appends "
        "if an index exists there)")
    verify_split: Literal["keep", "coverage"] = Field(
        "coverage", description="With verify_jaccard, how a component is split into clusters whose members all "
        "truly match their kept document: keep = keepers in keep-policy order; coverage = next keeper is "
        "the member with most unassigned true matches (default: removes the most at full precision; keep "
        "policy breaks ties)")
    bands_per_pass: int = Field(7, ge=1, description="Bands shuffled per LSH pass (bounds memory)")
    num_partitions: int | None = Field(None, ge=1, description="Shuffle partitions (default: one per 250k "
                                       "documents, between 1x and 4x the executor's parallelism)")

    partition_by: str | None = Field(
        None, description="Column whose value partitions the corpus: documents are compared only within "
        "one partition (e.g. language, as FineWeb2 deduplicates per language)")

    @field_validator("keep")
    @classmethod
    def _check_keep(cls, v: str) -> str:
        parse_keep(v)
        return v.strip()

    @model_validator(mode="after")
    def _check_perm(self) -> MinHashDedupParams:
        if self.bands * self.rows != self.num_perm:
            raise ValueError(
                f"num_perm ({self.num_perm}) must equal bands*rows ({self.bands}*{self.rows}="
                f"{self.bands * self.rows})")
        return self


def fit_config(p: MinHashDedupParams) -> dict[str, Any]:
    """Every parameter plus the parsed keep policy and whether set sizes count distinct
    shingles (verification's size filter and the index need them)."""
    pol, col, srcs = parse_keep(p.keep)
    d = p.model_dump()
    d.update(keep_policy=pol, keep_column=col, keep_sources=srcs,
             count_unique=p.verify_jaccard is not None or p.write_index is not None)
    return d
