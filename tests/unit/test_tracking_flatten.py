"""Flattening recipes into MLflow params within MLflow's own limits."""

from mlflow.utils import validation

from memo_zoo.tracking.flatten import (MAX_PARAM_VALUE_LENGTH, MAX_PARAMS_PER_BATCH, TRUNCATION_MARK,
                                       batches, flatten)
from memo_zoo.tracking.uri import resolve_tracking_uri


def test_limits_match_mlflow():
    assert MAX_PARAM_VALUE_LENGTH == validation.MAX_PARAM_VAL_LENGTH
    assert MAX_PARAMS_PER_BATCH == validation.MAX_PARAMS_TAGS_PER_BATCH


def test_flatten_nested_mappings_and_lists():
    doc = {"model": {"temporal": {"kind": "linear_memory", "gamma": 0.9}, "vae": None},
           "metrics": [{"kind": "fid"}], "empty": [], "nothing": {}, "flag": True}
    assert flatten(doc) == {"model.temporal.kind": "linear_memory", "model.temporal.gamma": "0.9",
                            "model.vae": "null", "metrics.0.kind": "fid", "empty": "[]",
                            "nothing": "{}", "flag": "true"}


def test_long_values_are_truncated_visibly():
    value = flatten({"description": "x" * 10_000})["description"]
    assert len(value) == MAX_PARAM_VALUE_LENGTH and value.endswith(TRUNCATION_MARK)


def test_batches_cover_everything_in_order_at_most_100_each():
    params = {f"p{i}": str(i) for i in range(250)}
    chunks = list(batches(params))
    assert [len(c) for c in chunks] == [100, 100, 50]
    assert [k for c in chunks for k in c] == list(params)


def test_tracking_uri_precedence(tmp_path):
    assert resolve_tracking_uri("http://a", "http://b", tmp_path) == "http://a"
    assert resolve_tracking_uri(None, "http://b", tmp_path) == "http://b"
    assert resolve_tracking_uri(None, None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
