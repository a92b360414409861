"""Golden case a (memo_released): the released small models loaded from a release folder into the
zoo's modules give the released outputs (image_proj: A4; audio_proj: A5; the emotion classifier:
E4/E5, §10).

Everything is read from the golden set: which part folder each model loads from (the case JSON's
``weights`` map), the tensors of each model (``<model>.input`` and its outputs), the tolerance.
The part is recognised by the subfolder its weights path ends with (``folder.PARTS``), and the
release folder is that path without the subfolder, so the loaders see the hub layout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.golden import GoldenSet
from memo_zoo.model.released.folder import PARTS, Part
from memo_zoo.model.released.small_parts import load_image_projector
from memo_zoo_plugins.audio_encoder.released_projector import load_token_projector
from memo_zoo_plugins.emotion.released_classifier import label_windows, load_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = GoldenSet.named("memo_released")
CASE = GOLDEN.case("a_small_models")
LOADERS = {"image_proj": load_image_projector, "audio_proj": lambda folder: load_token_projector(folder)[0],
           "audio_emotion_classifier": load_classifier}


def part_and_release(relative: str) -> tuple[Part, Path]:
    """The part whose subfolder ``relative`` (a path inside the golden set) ends with, and the release folder."""
    path = GOLDEN.path(relative)
    for part in PARTS.values():
        if path.as_posix().endswith("/" + part.subfolder):
            return part, Path(path.as_posix()[: -len(part.subfolder) - 1])
    raise AssertionError(f"{relative}: not the folder of any released part ({', '.join(PARTS)})")


def tensor_names(model: str) -> list[str]:
    names = sorted(name for name in CASE.meta["tensors"] if name.startswith(model + "."))
    assert f"{model}.input" in names, f"case a lists no {model}.input"
    return names


@pytest.mark.parametrize("model", sorted(CASE.meta["weights"]))
def test_released_small_model_matches_golden(model):
    part, release = part_and_release(CASE.meta["weights"][model])
    module = LOADERS[part.name](release)
    atol, rtol = GOLDEN.tolerance(CASE)
    with torch.no_grad():
        probs = module(CASE[f"{model}.input"])
    outputs = [name for name in tensor_names(model) if name != f"{model}.input"]
    float_outputs = [name for name in outputs if CASE[name].is_floating_point()]
    assert len(float_outputs) == 1, f"{model}: expected one float output tensor, case a has {float_outputs}"
    expected = CASE[float_outputs[0]]
    listed = CASE.meta["tensors"][float_outputs[0]]
    assert list(probs.shape) == listed["shape"] and str(probs.dtype).endswith(listed["dtype"])
    torch.testing.assert_close(probs, expected, atol=atol, rtol=rtol)
    for name in outputs:
        if not CASE[name].is_floating_point():  # the classifier's label: argmax of a second softmax
            assert part.name == "audio_emotion_classifier", f"{name}: integer output of a {part.name}"
            assert torch.equal(label_windows(probs), CASE[name].long())


def test_every_weights_entry_is_a_small_part_the_zoo_loads():
    parts = {part_and_release(relative)[0].name for relative in CASE.meta["weights"].values()}
    assert parts == {name for name, part in PARTS.items() if part.small}


def test_zero_embedding_row_gives_the_normalised_bias_tokens():
    """image_proj's uncond input (an all-zero row, case a) projects to LayerNorm(bias), not to zeros."""
    part, release = part_and_release(CASE.meta["weights"]["image_proj"])
    module = load_image_projector(release)
    inputs = CASE["image_proj.input"]
    zero_rows = [i for i in range(inputs.shape[0]) if not inputs[i].any()]
    assert zero_rows, "case a's image_proj input has no all-zero row"
    with torch.no_grad():
        bias_tokens = module.norm(module.proj.bias.reshape(module.tokens, module.width))
    atol, rtol = GOLDEN.tolerance(CASE)
    for row in zero_rows:
        torch.testing.assert_close(CASE["image_proj.output"][row], bias_tokens, atol=atol, rtol=rtol)
