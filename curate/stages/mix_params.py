"""`mix`'s parameters, output column names and manifest reader (shared by the stage and its hooks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from curate import jobfs
from curate.params import StageParams
from curate.stages.mix_allocation import DEFAULT_MAX_EPOCHS, normalize_weights

MIX_NOT_SAMPLED = "mix_not_sampled"
MIX_REPEAT = "mix_repeat"
MIX_BUCKET = "mix_bucket"
NO_DOMAIN = "(none)"


class MixParams(StageParams):
    budget_tokens: int = Field(gt=0, description="Total tokens to materialize across all domains")
    weights: dict[str, float] | None = Field(
        None, description="Explicit per-domain weights (normalized to sum 1); domains not listed get 0"
    )
    temperature: float | None = Field(
        None,
        ge=0,
        description="Temperature sampling exponent α: q_i ∝ p_i^α over token shares p_i (1 = natural)",
    )
    unimax: bool = Field(
        False, description="UniMax: spread the budget uniformly, each domain capped at max_epochs"
    )
    max_epochs: float | dict[str, float] = Field(
        DEFAULT_MAX_EPOCHS,
        description="Repetition cap in epochs over a domain's unique tokens; a number or per-domain map "
        "(unlisted domains get 4)",
    )
    on_cap: Literal["redistribute", "shrink"] = Field(
        "redistribute",
        description="When a cap binds: `redistribute` the excess to uncapped domains (water-filling) "
        "or `shrink` the budget to keep the proportions",
    )
    token_column: str | None = Field(
        None, description="Integer column with each document's token count (default: count whitespace words)"
    )
    rehydrate: bool = Field(
        False, description="FineWeb2 rehydration: upweight kept documents by their `dup_cluster_size`"
    )
    rehydrate_table: dict[int, float] | None = Field(
        None, description="Cluster-size lower bound -> weight (default {1:1, 2:2, 3:3, 5:5, 100:8, 1000:1})"
    )
    seed: int | None = Field(
        None, description="Sampling seed (default: derived from the job seed and node id)"
    )

    @model_validator(mode="after")
    def _one_method(self) -> "MixParams":
        chosen = [
            k for k, v in (("weights", self.weights), ("temperature", self.temperature)) if v is not None
        ]
        if self.unimax:
            chosen.append("unimax")
        if len(chosen) > 1:
            raise ValueError(f"choose one weighting method, got {', '.join(chosen)}")
        if self.weights is not None:
            normalize_weights(list(self.weights.values()))
        eps = self.max_epochs.values() if isinstance(self.max_epochs, dict) else [self.max_epochs]
        if any(e <= 0 for e in eps):
            raise ValueError("max_epochs must be > 0")
        if self.rehydrate_table is not None and (not self.rehydrate_table or min(self.rehydrate_table) > 1):
            raise ValueError("rehydrate_table must have a lower bound <= 1")
        return self

    @property
    def method(self) -> str:
        if self.weights is not None:
            return "explicit"
        if self.unimax:
            return "unimax"
        return "temperature"


def read_manifest(state_dir: str | Path) -> dict[str, Any]:
    """The manifest a fitted `mix` node wrote (``<state_dir>/manifest.json``)."""
    return json.loads((jobfs.path(state_dir) / "manifest.json").read_text())
