"""The root ``curate`` typer app; each command module adds its commands with ``register(app)``."""

from __future__ import annotations

import typer

from cli import (
    calibrate_commands,
    fasttext_commands,
    lm_commands,
    pipeline_commands,
    plan_commands,
    preselect_commands,
    report_commands,
    sample_commands,
    service_commands,
)

app = typer.Typer(
    name="curate",
    help="Curate and select LLM pretraining data: dedup, quality, DSIR, perplexity, mixing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (
    pipeline_commands,
    plan_commands,
    sample_commands,
    preselect_commands,
    fasttext_commands,
    lm_commands,
    report_commands,
    calibrate_commands,
    service_commands,
):
    _module.register(app)
