"""Request and response models of the REST API (they make the OpenAPI schema), and the
shared OpenAPI fragments: the spec request body and the error responses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


class Problem(BaseModel):
    node: str | None = Field(None, description="Node, input or output the problem belongs to")
    field: str | None = Field(None, description="Offending key or parameter")
    message: str


class ErrorOut(BaseModel):
    detail: str
    problems: list[Problem] = Field(default_factory=list)


class Submitted(BaseModel):
    id: str = Field(description="Job id")
    state: JobState
    url: str = Field(description="Where to poll the job")


class StepProgress(BaseModel):
    model_config = {"extra": "allow"}
    step: Any = None
    done: int | None = None
    total: int | None = None


class HistoryEntry(BaseModel):
    state: str
    at: str | None
    message: str | None = None


class JobOut(BaseModel):
    id: str
    name: str | None
    state: JobState
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    error: str | None
    spec_hash: str | None
    attempt: int
    progress: list[StepProgress] = Field(description="Per-step progress while running")
    ledger: dict[str, Any] = Field(description="Per node: in / kept / rejected documents")
    outputs: dict[str, Any] = Field(description="Named outputs -> paths")
    artifacts: dict[str, Any] = Field(description="Report, stats, rejects, log paths")
    history: list[HistoryEntry] = Field(description="State changes with timestamps")
    schedule_id: str | None = None
    run_number: int | None = None
    spec: dict[str, Any] | None = None


class JobSummary(BaseModel):
    id: str
    name: str | None
    state: JobState
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    error: str | None
    schedule_id: str | None = None
    run_number: int | None = None


class JobList(BaseModel):
    items: list[JobSummary]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class ScheduleIn(BaseModel):
    name: str = Field("schedule", min_length=1, max_length=200, description="Schedule name")
    cron: str = Field(description="Cron expression: 5 fields, or 6 with seconds last", max_length=200)
    spec: dict[str, Any] = Field(
        description="Pipeline spec template (inputs are globs re-expanded every run)"
    )


class ScheduleOut(BaseModel):
    id: str
    name: str
    cron: str
    template: dict[str, Any]
    created_at: str | None
    next_run_at: str | None
    last_run_at: str | None
    last_job_id: str | None
    runs: int
    state_dir: str | None = Field(
        description="The schedule's state directory: one subdirectory per node for state "
        "kept across runs (e.g. a dedup index)"
    )
    last_message: str | None


class Validated(BaseModel):
    valid: bool
    spec: dict[str, Any] = Field(description="The normalized spec (absolute paths)")
    input_files: dict[str, int] | None = Field(
        None, description="Files each input matched in the preflight (absent with ?preflight=false)")
    warnings: list[str] = Field(
        default_factory=list, description="Parameters that are valid but likely a mistake, by node")


class RejectSample(BaseModel):
    items: list[dict[str, Any]]
    count: int
    reasons: dict[str, int] = Field(description="Rejected rows per reason in the files scanned")


SPEC_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PipelineSpec"}},
        "application/yaml": {"schema": {"type": "string", "description": "The pipeline spec as YAML"}},
    },
}
"""The request body of routes that take a spec (the route reads the raw body itself)."""

UNAUTHORIZED = {401: {"model": ErrorOut, "description": "Missing or invalid bearer token"}}
ERRORS = {
    400: {"model": ErrorOut, "description": "Malformed body"},
    **UNAUTHORIZED,
    403: {"model": ErrorOut, "description": "A path lies outside CURATE_DATA_ROOTS"},
    413: {"model": ErrorOut, "description": "Body too large"},
    422: {"model": ErrorOut, "description": "Invalid spec: every problem, by node"},
}
