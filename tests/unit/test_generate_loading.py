"""Loading a generator (``memo_zoo/generate/loading.py``): training checkpoints in every layout, a
bare MemoNet folder, and a checkpoint of another architecture refused with the differences.

``save_training_checkpoint`` is shared with ``tests/e2e/test_generate_cli.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from memo_zoo.errors import MemoZooError
from memo_zoo.generate.loading import load_generator_model
from memo_zoo.generate.warning import GenerationWarning
from memo_zoo.recipe.loader import validate_document
from tests.unit.test_generate import FPS, REGISTRY, make_model, make_recipe, one_thread  # noqa: F401  (fixture)


def save_training_checkpoint(model, out_dir: Path, step: int = 5) -> Path:
    """A checkpoint in the trainer's layout (memo_zoo.train.checkpoint), weights moved off init."""
    from memo_zoo.train.checkpoint import TrainerState, save_checkpoint
    from memo_zoo.train.step import TrainModules

    modules = TrainModules(model.net, model.image_encoder, model.audio_encoder, FPS, 1)
    with torch.no_grad():
        for p in modules.parameters():
            p.add_(0.01)
    trainable = {name for name, p in modules.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(modules.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    return save_checkpoint(out_dir, TrainerState(step=step), modules, trainable, optimizer, scheduler, None, keep=3)


def states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_checkpoints_load_in_every_layout(tmp_path):
    trained = make_model()
    checkpoint = save_training_checkpoint(trained, tmp_path / "run")
    recipe = validate_document(make_recipe(), REGISTRY, "test")
    for path in (checkpoint, tmp_path / "run", checkpoint / "model"):
        loaded = load_generator_model(path, recipe, REGISTRY)
        assert states_equal(loaded.net, trained.net), path
        assert states_equal(loaded.image_encoder, trained.image_encoder), path
        assert states_equal(loaded.audio_encoder, trained.audio_encoder), path
    # A bare MemoNet folder loads; trainable encoders without weights are reported.
    trained.net.save_pretrained(tmp_path / "bare")
    with pytest.warns(GenerationWarning, match="random initialisation"):
        loaded = load_generator_model(tmp_path / "bare", recipe, REGISTRY)
    assert states_equal(loaded.net, trained.net)


def test_a_checkpoint_of_another_architecture_is_refused_with_the_differences(tmp_path):
    save_training_checkpoint(make_model(), tmp_path / "run")
    other = validate_document(make_recipe(network={"cross_attention_dim": 24}), REGISTRY, "test")
    with pytest.raises(MemoZooError) as error:
        load_generator_model(tmp_path / "run", other, REGISTRY)
    message = str(error.value)
    assert "does not match the recipe's model" in message
    assert "cross_attention_dim: recipe 24, checkpoint 16" in message
    with pytest.raises(MemoZooError, match="not a training checkpoint"):
        load_generator_model(tmp_path, other, REGISTRY)
    with pytest.raises(MemoZooError, match="not found"):
        load_generator_model(tmp_path / "missing", other, REGISTRY)
