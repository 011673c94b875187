"""Parameters of `heuristic_filter` and how they resolve to rule sets per language.

Thresholds are keyed ``<preset>:<rule>`` (e.g. ``gopher_repetition:dup_line_frac``); a bare
rule name works when one selected preset has it. A value of null disables the rule. The
rules of one language are: the presets' defaults, then ``overrides``, then the language's
entry of ``per_language`` (the preset file's first, the spec's on top), or its ``default``
entry when the language has none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from curate.params import Annotated, ReadPath, StageParams
from curate.text.heuristics.languages import known_language
from curate.text.heuristics.presets import PRESETS, Rule
from curate.text.heuristics.signals import SIGNALS

DEFAULT_KEY = "default"
PRESET_FILE_FORMAT = "curate.heuristic_thresholds/1"
EXTRA_SIGNALS = ("language_score",)  # columns other stages add that rules may use


class ExtraRule(BaseModel):
    """A rule of your own: keep rows with ``min <= signal <= max``. Rejects: ``custom:<name>``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=48, description="Rule name (reason custom:<name>)")
    signal: str = Field(description="A qs_* signal column (or language_score)")
    min: float | None = Field(None, description="Reject rows below this")
    max: float | None = Field(None, description="Reject rows above this")

    @model_validator(mode="after")
    def _check(self) -> ExtraRule:
        if self.signal not in SIGNALS and self.signal not in EXTRA_SIGNALS:
            raise ValueError(f"rule '{self.name}': unknown signal '{self.signal}' (known: {', '.join(SIGNALS)})")
        if self.min is None and self.max is None:
            raise ValueError(f"rule '{self.name}': set min and/or max")
        return self


Thresholds = dict[str, float | None]


class HeuristicFilterParams(StageParams):
    presets: list[str] = Field(
        default_factory=lambda: list(PRESETS),
        description=f"Rule presets with datatrove's default thresholds, checked in order: {', '.join(PRESETS)}",
    )
    overrides: Thresholds = Field(
        default_factory=dict,
        description="Threshold changes for every language: `preset:rule` (or a unique rule name) -> value "
        "(null disables the rule)",
    )
    rules: list[ExtraRule] = Field(default_factory=list, description="Extra rules, checked after the presets")
    per_language: dict[str, Thresholds] = Field(
        default_factory=dict,
        description="Thresholds per language (the `language` column's codes) and `default` for the rest",
    )
    preset_file: Annotated[str | None, ReadPath] = Field(
        None, description="Per-language thresholds written by `curate calibrate` (the spec's per_language "
        "entries apply on top)")
    language_column: str = Field("language", description="Column naming each document's language")

    @field_validator("presets")
    @classmethod
    def _known_presets(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in PRESETS:
                raise ValueError(f"unknown preset '{name}' (known: {', '.join(PRESETS)})")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _check(self) -> HeuristicFilterParams:
        if not self.presets and not self.rules:
            raise ValueError("select at least one preset or rule")
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("extra rule names must be unique")
        for key in self.overrides:
            resolve_key(self.presets, key, "overrides")
        for lang, th in self.per_language.items():
            for key in th:
                resolve_key(self.presets, key, f"per_language.{lang}")
        return self

    def spec_warnings(self) -> list[str]:
        return [f"per_language key '{lang}' is not a language code the language-ID model emits "
                f"(lid.176 codes, or GlotLID's xxx_Scrp): its thresholds never apply"
                for lang in self.per_language if lang != DEFAULT_KEY and not known_language(lang)]


def resolve_key(presets: list[str], key: str, where: str) -> tuple[str, str]:
    """``preset:rule`` or a bare rule name -> (preset, rule); ValueError naming it if unknown."""
    if ":" in key:
        preset, rule = key.split(":", 1)
        if preset not in PRESETS:
            raise ValueError(f"{where}: unknown preset '{preset}' in '{key}' (known: {', '.join(PRESETS)})")
        if preset not in presets:
            raise ValueError(f"{where}: preset '{preset}' of '{key}' is not selected in presets")
        if rule not in {r.name for r in PRESETS[preset]}:
            known = ", ".join(r.name for r in PRESETS[preset])
            raise ValueError(f"{where}: unknown rule '{rule}' of preset '{preset}' (known: {known})")
        return preset, rule
    owners = [p for p in presets if key in {r.name for r in PRESETS[p]}]
    if not owners:
        raise ValueError(f"{where}: unknown rule '{key}' (no selected preset has it)")
    if len(owners) > 1:
        raise ValueError(f"{where}: rule '{key}' is in several presets ({', '.join(owners)}); write preset:rule")
    return owners[0], key


@dataclass(frozen=True)
class ActiveRule:
    """One rule as applied: reason ``<preset>:<rule>`` (``custom:<name>``)."""

    preset: str
    rule: Rule

    @property
    def reason(self) -> str:
        return f"{self.preset}:{self.rule.name}"


def base_rules(p: HeuristicFilterParams) -> list[tuple[str, Rule]]:
    out = [(preset, r) for preset in p.presets for r in PRESETS[preset]]
    for x in p.rules:
        if x.min is not None:
            out.append(("custom", Rule(x.name, x.signal, "min", x.min)))
        if x.max is not None:
            out.append(("custom", Rule(x.name, x.signal, "max", x.max)))
    return out


def apply_thresholds(rules: list[tuple[str, Rule]], presets: list[str], th: Thresholds, where: str):
    """``rules`` with the thresholds of ``th`` applied (None drops a rule)."""
    changes = {resolve_key(presets, k, where): v for k, v in th.items()}
    out = []
    for preset, r in rules:
        key = (preset, r.name)
        if key in changes:
            v = changes[key]
            if v is None:
                continue
            r = Rule(r.name, r.signal, r.direction, float(v))
        out.append((preset, r))
    return out


def load_preset_file(path: str) -> dict[str, Thresholds]:
    """The ``per_language`` thresholds of a ``curate calibrate`` file."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"heuristic_filter: cannot read preset_file {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != PRESET_FILE_FORMAT:
        raise ValueError(f"heuristic_filter: {path} is not a `curate calibrate` preset file "
                         f"(format {PRESET_FILE_FORMAT})")
    per = doc.get("per_language")
    if not isinstance(per, dict) or not all(isinstance(v, dict) for v in per.values()):
        raise ValueError(f"heuristic_filter: {path} has no per_language thresholds")
    return {str(k): dict(v) for k, v in per.items()}


def rule_sets(p: HeuristicFilterParams, from_file: dict[str, Thresholds] | None = None) -> dict[str, list[ActiveRule]]:
    """Rule set per language key (``default`` always present), every threshold resolved."""
    base = apply_thresholds(base_rules(p), p.presets, p.overrides, "overrides")
    per: dict[str, Thresholds] = {}
    for src in (from_file or {}, p.per_language):
        for lang, th in src.items():
            per.setdefault(lang, {}).update(th)
    out: dict[str, list[ActiveRule]] = {}
    for lang in sorted(set(per) | {DEFAULT_KEY}):
        rules = apply_thresholds(base, p.presets, per.get(lang, {}), f"per_language.{lang}")
        out[lang] = [ActiveRule(preset, r) for preset, r in rules]
    return out


def describe_rules(sets: dict[str, list[ActiveRule]]) -> dict[str, Any]:
    """JSON-able view: language key -> {reason: "signal >= threshold"}."""
    return {lang: {a.reason: f"{a.rule.signal} {'>=' if a.rule.direction == 'min' else '<='} {a.rule.threshold:g}"
                   for a in rules} for lang, rules in sets.items()}
