"""Security: bearer tokens and the data-root sandbox for spec paths.

Every path a spec names (input paths, output paths and every path-typed stage parameter,
found from the stages' ``Params`` schemas by :func:`curate.spec_paths.spec_paths`) must
lie under one of ``CURATE_DATA_ROOTS``. Local paths are checked
after resolving symlinks and ``..`` (``os.path.realpath``), and a local input glob is
expanded and every match checked too, so a symlink inside a root that points outside is
refused. Object-store URIs (``s3://bucket/prefix``) must not contain ``..`` segments and
must start with a root. Relative paths resolve against the first local root.
"""

from __future__ import annotations

import glob as globlib
import hmac
import os
import posixpath

from fastapi import HTTPException, Request

from curate.spec_paths import set_spec_value, spec_paths

MAX_GLOB_CHECK = 100_000


class PathNotAllowed(Exception):
    """A spec path escapes the configured data roots."""

    def __init__(self, where: str, path: str, why: str):
        self.where, self.path, self.why = where, path, why
        super().__init__(f"{where}: path '{path}' {why}")


def check_token(request: Request, token: str | None) -> None:
    """Raise 401 unless the request carries ``Authorization: Bearer <token>``."""
    if not token:
        return
    auth = request.headers.get("authorization", "")
    scheme, _, given = auth.partition(" ")
    if not auth:
        raise HTTPException(
            401,
            "missing bearer token (send 'Authorization: Bearer <CURATE_API_TOKEN>')",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})


def _is_uri(p: str) -> bool:
    return "://" in p


def _has_glob(p: str) -> bool:
    return any(c in p for c in "*?[")


def _under_local(real: str, roots: list[str]) -> bool:
    for r in roots:
        if _is_uri(r):
            continue
        rr = os.path.realpath(r)
        if real == rr or real.startswith(rr.rstrip(os.sep) + os.sep):
            return True
    return False


def _under_uri(uri: str, roots: list[str]) -> bool:
    for r in roots:
        if not _is_uri(r):
            continue
        r = r.rstrip("/")
        if uri == r or uri.startswith(r + "/"):
            return True
    return False


def resolve(path: str, base_dir: str) -> str:
    """Make a relative local path absolute (against ``base_dir``); URIs unchanged."""
    if _is_uri(path) or os.path.isabs(path):
        return path
    return os.path.join(base_dir, path)


def check_path(path: str, roots: list[str], where: str, expand: bool = False) -> None:
    """Raise :class:`PathNotAllowed` unless ``path`` (absolute or URI) lies under a root."""
    if not isinstance(path, str) or not path:
        raise PathNotAllowed(where, str(path), "is empty")
    if "\x00" in path:
        raise PathNotAllowed(where, path.replace("\x00", "\\0"), "contains a NUL byte")
    if _is_uri(path):
        scheme, rest = path.split("://", 1)
        if scheme == "file":
            return check_path("/" + rest.lstrip("/"), roots, where, expand)
        if ".." in rest.split("/"):
            raise PathNotAllowed(where, path, "contains '..'")
        norm = f"{scheme}://{posixpath.normpath(rest)}" if rest else path
        if not _under_uri(norm, roots):
            raise PathNotAllowed(where, path, f"is outside the data roots ({', '.join(roots)})")
        return
    if not os.path.isabs(path):
        raise PathNotAllowed(where, path, "must be absolute")
    real = os.path.realpath(path)
    if not _under_local(real, roots):
        raise PathNotAllowed(where, path, f"is outside the data roots ({', '.join(roots)})")
    if expand:
        if _has_glob(path):
            matches = globlib.iglob(path, recursive=True)
        elif os.path.isdir(path):
            matches = (os.path.join(d, f) for d, _, fs in os.walk(path, followlinks=False) for f in fs)
        else:
            matches = iter(())
        for i, m in enumerate(matches):
            if i >= MAX_GLOB_CHECK:
                break
            if not _under_local(os.path.realpath(m), roots):
                raise PathNotAllowed(where, path, f"matches '{m}', which resolves outside the data roots")


def sandbox_spec(spec: dict, roots: list[str], base_dir: str) -> dict:
    """Resolve relative paths in ``spec`` (in place) and check all of them against ``roots``.

    Raises :class:`PathNotAllowed` for the first path outside the roots.
    """
    for p in list(spec_paths(spec)):
        absolute = resolve(p.value, base_dir)
        check_path(absolute, roots, p.where, expand=p.kind.glob)
        if absolute != p.value:
            set_spec_value(spec, p.keys, absolute)
    return spec
