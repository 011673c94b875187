"""The errors a job driver raises, and how a worker's error is found inside Ray's wrapping."""

from __future__ import annotations

from curate.spec import SpecError
from curate.stage import StageError
from workers.ingest import ShardError


class JobFailed(RuntimeError):
    """A job could not complete; the message says why (and names the file or node)."""


class LedgerError(JobFailed):
    """The conservation ledger does not balance."""


def user_error(e: BaseException) -> BaseException | None:
    """The first clear, user-facing error in ``e``'s cause chain (Ray wraps worker errors)."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        nxt = getattr(cur, "cause", None)  # ray.exceptions.RayTaskError: look inside first
        if isinstance(nxt, BaseException):
            cur = nxt
            continue
        if isinstance(cur, (ShardError, StageError, JobFailed, SpecError)):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None
