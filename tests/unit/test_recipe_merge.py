"""include-merging and key=value overrides (memo_zoo.recipe.merge)."""

import pytest

from memo_zoo.recipe.merge import OverrideError, apply_overrides, deep_merge, parse_override


def test_deep_merge_merges_mappings_and_replaces_lists_and_scalars():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    top = {"a": {"y": [3]}, "c": 2}
    assert deep_merge(base, top) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}, "inputs must not be mutated"


def test_deep_merge_replaces_a_slot_whose_kind_changes():
    base = {"temporal": {"kind": "linear_memory", "gamma": 0.9}}
    assert deep_merge(base, {"temporal": {"kind": "self_attention", "motion_frames": 4}}) == {
        "temporal": {"kind": "self_attention", "motion_frames": 4}}
    assert deep_merge(base, {"temporal": {"kind": "linear_memory", "heads": 2}}) == {
        "temporal": {"kind": "linear_memory", "gamma": 0.9, "heads": 2}}


@pytest.mark.parametrize("text, expected", [
    ("a.b=1", ("a.b", 1)),
    ("a=1.5", ("a", 1.5)),
    ("a=true", ("a", True)),
    ("a=null", ("a", None)),
    ("a=[1, 2]", ("a", [1, 2])),
    ("a={kind: x, n: 2}", ("a", {"kind": "x", "n": 2})),
    ("a=hello=world", ("a", "hello=world")),
    ("a=", ("a", "")),
])
def test_parse_override_reads_values_as_yaml(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=3", "a..b=1", "a=[1,"])
def test_parse_override_rejects_malformed(text):
    with pytest.raises(OverrideError, match="override"):
        parse_override(text)


def test_overrides_create_missing_mappings_and_index_lists():
    doc = {"metrics": [{"kind": "fid"}], "model": None}
    out = apply_overrides(doc, [("model.vae.kind", "pixel"), ("metrics.0.batch", 8), ("metrics.1", {"kind": "fvd"})])
    assert out == {"metrics": [{"kind": "fid", "batch": 8}, {"kind": "fvd"}], "model": {"vae": {"kind": "pixel"}}}
    assert doc == {"metrics": [{"kind": "fid"}], "model": None}


def test_changing_kind_drops_the_old_components_options_and_later_overrides_add_new_ones():
    doc = {"model": {"temporal": {"kind": "linear_memory", "gamma": 0.5}}}
    out = apply_overrides(doc, [("model.temporal.kind", "self_attention"), ("model.temporal.motion_frames", 2)])
    assert out["model"]["temporal"] == {"kind": "self_attention", "motion_frames": 2}
    same = apply_overrides(doc, [("model.temporal.kind", "linear_memory")])
    assert same["model"]["temporal"] == {"kind": "linear_memory", "gamma": 0.5}


@pytest.mark.parametrize("key, message", [
    ("seed.x", "seed is not a mapping"),
    ("metrics.x", "indexes a list"),
    ("metrics.5", "past the end"),
    ("metrics.3.kind", "past the end"),
])
def test_impossible_overrides_name_the_key(key, message):
    with pytest.raises(OverrideError, match=message):
        apply_overrides({"seed": 1, "metrics": [{"kind": "fid"}]}, [(key, 1)])
