"""``DemoOptions``: every option of ``memo-zoo demo``, with the safe defaults (docs/demo.md).

The defaults are the ones a demo on a laptop or a shared machine should have without thinking:
it listens on 127.0.0.1 only, never opens a public share link, takes uploads of at most
``max_upload_mb`` and generates at most ``max_seconds`` of video per request, so that one visitor
cannot fill the disk or hold the device for an hour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from memo_zoo.errors import MemoZooError

# The recipe whose trained model the demo serves when no --checkpoint is given: the embedded
# default, whose training the ablations share (experiments/train-<hash>).
DEFAULT_RECIPE = Path("recipes/experiment_tiny.yaml")


class DemoOptions(BaseModel):
    """What ``memo-zoo demo`` serves and how (docs/demo.md)."""

    model_config = ConfigDict(extra="forbid")

    recipe: Path = Field(
        DEFAULT_RECIPE, description="recipe naming the model (network, sampler, emotion detector); without "
                                    "--checkpoint/--weights, the model this recipe trains (an experiment recipe's "
                                    "experiments/train-<hash>, a train recipe's out_dir), trained first if missing")
    profile: Optional[str] = Field(None, description="the recipe's named profile of overrides, applied first")
    overrides: list[str] = Field(default_factory=list, description="key=value recipe overrides (scheduler.steps=10)")
    checkpoint: Optional[Path] = Field(
        None, description="trained weights: a training checkpoint, a training out_dir or a MemoNet folder")
    weights: Optional[str] = Field(
        None, description="released MEMO weights for a memo_released recipe (a folder or a cached hub id)")
    host: str = Field("127.0.0.1", min_length=1, description="address to listen on; 127.0.0.1 = this machine only")
    port: int = Field(7860, ge=1, le=65535, description="port to listen on")
    max_upload_mb: float = Field(25.0, gt=0, description="largest upload accepted, in MB (refused by the server)")
    max_seconds: float = Field(20.0, gt=0, description="longest video generated per request, in seconds of audio; "
                                                       "longer audio is cut to it")
    min_image_px: int = Field(64, ge=8, description="shortest portrait side accepted, in pixels (a thumbnail "
                                                    "blown up to the model's size gives a blurred face)")
    max_image_megapixels: float = Field(40.0, gt=0, description="largest portrait accepted, in megapixels "
                                                                "(decoding one costs memory: 40 MP = 120 MB)")
    auth: Optional[tuple[str, str]] = Field(None, description="(user, password) every visitor must log in with")
    queue_size: int = Field(16, ge=1, description="requests waiting for the device at most; more are refused")
    device: Optional[str] = Field(None, description="cpu, cuda, cuda:N or auto; unset = $MEMO_ZOO_DEVICE")
    workdir: Path = Field(default_factory=Path.cwd, description="where relative recipe paths and the default "
                                                                "model's training folder are resolved")

    @field_validator("auth", mode="before")
    @classmethod
    def _user_and_password(cls, value):
        if isinstance(value, str):
            return parse_auth(value)
        return value

    @model_validator(mode="after")
    def _one_source_of_weights(self) -> "DemoOptions":
        if self.checkpoint is not None and self.weights is not None:
            raise ValueError("give --checkpoint (a zoo training) or --weights (the released model), not both")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def parse_auth(text: str) -> tuple[str, str]:
    """``USER:PASSWORD``, or ``@FILE`` holding that line (a password on the command line is visible
    to every user of the machine in ``ps``; a file readable only by its owner is not)."""
    source = "--auth"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise MemoZooError(f"--auth {path}: cannot be read ({error.strerror or error})") from None
        source = f"--auth file {path}"
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise MemoZooError(f"{source}: expected USER:PASSWORD with both parts non-empty")
    return user, password
