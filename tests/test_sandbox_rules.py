"""Data-root sandbox rules that are documented but easy to loosen by accident."""

from __future__ import annotations

import pytest

from api.security import PathNotAllowed, check_path

ROOTS = ["s3://bucket/curate"]


@pytest.mark.parametrize("path", [
    "s3://bucket/curate/a/../b",        # normalizes back inside the root: still refused
    "s3://bucket/curate/../curate/x",   # leaves and re-enters the root
    "s3://bucket/curate/a/..",
])
def test_s3_path_with_dotdot_is_refused_even_inside_the_root(path):
    with pytest.raises(PathNotAllowed, match="contains '..'"):
        check_path(path, ROOTS, "inputs.web.path")


def test_s3_path_under_the_root_is_allowed():
    check_path("s3://bucket/curate/a/b..c/x.parquet", ROOTS, "inputs.web.path")  # '..' inside a name is fine
