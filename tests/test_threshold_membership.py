"""threshold_filter: `in` / `not_in` membership, custom reject reasons, validation."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError

from curate.stages.basic import ThresholdFilter

BATCH = pa.table({"id": ["a", "b", "c", "d"], "language": ["en", "de", None, "ja"], "n": [1, 2, 3, 4]})


def test_in_keeps_listed_values_and_names_the_reason():
    st = ThresholdFilter(column="language", op="in", value=["en", "ja"], reason="wrong_language").bind("lang", 0)
    res = st(BATCH)
    assert res.kept.column("id").to_pylist() == ["a", "d"]
    rej = res.rejected.to_pydict()
    assert rej["id"] == ["b", "c"]
    assert rej["reason"] == ["wrong_language", "null_value"]
    assert rej["detail"] == ["de", ""]
    assert set(st.reasons()) == {"wrong_language", "null_value"}


def test_not_in_and_numbers():
    res = ThresholdFilter(column="language", op="not_in", value=["en"], keep_null=True)(BATCH)
    assert res.kept.column("id").to_pylist() == ["b", "c", "d"]
    assert res.rejected.column("reason").to_pylist() == ["threshold"]
    res = ThresholdFilter(column="n", op="in", value=[2, 4])(BATCH)
    assert res.kept.column("id").to_pylist() == ["b", "d"]


@pytest.mark.parametrize("params, msg", [
    ({"op": "in", "value": "en"}, "needs a list"),
    ({"op": ">=", "value": ["en"]}, "use op: in / not_in"),
    ({"op": "in", "value": []}, "non-empty"),
    ({"op": "in", "value": ["en"], "reason": "null_value"}, "reserved"),
    ({"op": "in", "value": ["en"], "reason": "has space"}, "pattern"),
])
def test_bad_params_are_validation_errors(params, msg):
    with pytest.raises(ValidationError, match=msg):
        ThresholdFilter(column="language", **params)
