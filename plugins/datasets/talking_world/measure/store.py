"""Where a world metric's measurer comes from: a given file, or one trained on the world and cached.

``load_or_train_measurer(config)``, for any config with the :class:`MeasurerSource` fields:

- ``config.measurer`` set: that ``.safetensors`` file (a path, or a name under
  ``MEMO_ZOO_WEIGHTS_DIR``) and its report, the ``.json`` file of the same name next to it;
  ``MissingWeightsError`` names a missing file, ``MemoZooError`` one that is not a measurer of
  this format (another format version, missing or mis-shaped tensors, an unreadable report).
- else: the measurer trained on ``config.world`` with ``config.training``, cached as
  ``<settings.cache_dir>/world_measurers/<key>.safetensors`` (+ ``<key>.json``). The key hashes the
  world's generation fields (``world.generation_fields``, which carry the generator's own format
  version), the training options that change what is learned, and :data:`FORMAT_VERSION`. Files
  are written atomically (a temporary file in the same folder, then ``os.replace``), the report
  first and the weights last, so the weights file is the completion marker: an interrupted or
  concurrent run never leaves a half-written measurer under the final name. A cache entry that
  cannot be read is trained again, with a warning.

Both are remembered in-process (by cache key or by file path + modification time), so the four
world metrics of one run share one measurer and train it at most once.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from memo_zoo.atomic import write_atomically
from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.settings import get_settings
from memo_zoo.weights import resolve_weights
from memo_zoo_plugins.datasets.talking_world.api import WorldConfig, generation_fields

from .measurer import MeasurerShape, WorldMeasurer
from .training import NON_LEARNING_FIELDS, MeasurerReport, MeasurerTraining, train_measurer
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import MeasurerSource

# Bump when the measurer's architecture, training or file layout changes: it is part of the cache
# key and of each file's metadata, so a measurer from older code is retrained, or refused by name.
FORMAT_VERSION = 1
FORMAT = "memo_zoo.world_measurer"
WHAT = ("world measurer (.safetensors written by memo_zoo_plugins.datasets.talking_world.measure.store, "
        "with its .json report next to it)")

_MEMO: dict[tuple, tuple[WorldMeasurer, MeasurerReport]] = {}


def measurer_key(world: WorldConfig, training: MeasurerTraining) -> str:
    """Hash naming the cached measurer of ``world`` + ``training`` (module docstring)."""
    fields = training.model_dump(mode="json", exclude=set(NON_LEARNING_FIELDS))
    # Options added after measurers were first cached are left out of the key while they change
    # nothing, so the measurers trained before they existed keep their keys.
    if not fields["blur"]:  # without blur, its probability changes nothing
        fields = {name: value for name, value in fields.items() if name not in ("blur", "blur_probability")}
    if fields.get("round_trip") is None:
        fields.pop("round_trip", None)
    else:  # the autoencoder's weights, not only where they are (one retrained in place is another)
        from .training import round_trip_autoencoder

        fields["round_trip"] = {"config": fields["round_trip"],
                                "fingerprint": round_trip_autoencoder(training.round_trip)[1]}
    text = json.dumps({"format": FORMAT_VERSION, "world": generation_fields(world), "training": fields},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(world: WorldConfig, training: MeasurerTraining) -> Path:
    """Where the measurer of ``world`` + ``training`` is cached (reads the settings now)."""
    return get_settings().cache_dir / "world_measurers" / f"{measurer_key(world, training)}.safetensors"


def report_path(path: Path) -> Path:
    """The report that goes with a measurer file: same name, ``.json``."""
    return Path(path).with_suffix(".json")


def save_measurer(measurer: WorldMeasurer, report: MeasurerReport, path: str | Path) -> Path:
    """Write ``measurer`` (safetensors, its shape and format in the metadata) and ``report`` (json)."""
    path = Path(path)
    text = report.model_dump_json(indent=1)
    write_atomically(report_path(path), lambda temp: Path(temp).write_text(text, encoding="utf-8"))
    tensors = {name: value.detach().cpu().contiguous() for name, value in measurer.state_dict().items()}
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                "shape": json.dumps(measurer.shape.to_dict(), sort_keys=True)}
    write_atomically(path, lambda temp: save_file(tensors, temp, metadata=metadata))
    return path


def load_measurer(reference: str | Path) -> tuple[WorldMeasurer, MeasurerReport]:
    """Read a measurer written by :func:`save_measurer` (module docstring for the errors)."""
    path = resolve_weights(reference, WHAT)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise MemoZooError(f"{WHAT}: {path} is not a safetensors file ({error})") from None
    if metadata.get("format") != FORMAT or metadata.get("format_version") != str(FORMAT_VERSION):
        raise MemoZooError(f"{WHAT}: {path} has format {metadata.get('format')!r} version "
                           f"{metadata.get('format_version')!r}; this memo-zoo reads {FORMAT!r} version "
                           f"{FORMAT_VERSION} (train a new one: leave `measurer` unset)")
    try:
        shape = MeasurerShape(**json.loads(metadata["shape"]))
        measurer = WorldMeasurer(shape)
        measurer.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise MemoZooError(f"{WHAT}: {path} does not match the measurer it says it is ({error})") from None
    json_path = report_path(path)
    if not json_path.is_file():
        raise MissingWeightsError(f"{WHAT}: the report of {path} is missing; expected {json_path}")
    try:
        report = MeasurerReport.model_validate_json(json_path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as error:
        raise MemoZooError(f"{WHAT}: report {json_path} cannot be read ({error})") from None
    return measurer.eval(), report


def load_or_train_measurer(config: MeasurerSource, progress: bool = True) -> tuple[WorldMeasurer, MeasurerReport]:
    """The measurer ``config`` asks for, with its report (module docstring). Shared within the
    process: callers must not train it further or change it in place (``.to()`` a copy instead)."""
    if config.measurer is not None:
        path = resolve_weights(config.measurer, WHAT)
        stat = path.stat()
        key: tuple = ("file", str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key not in _MEMO:
            _MEMO[key] = load_measurer(path)
        return _MEMO[key]
    path = cache_path(config.world, config.training)
    key = ("trained", str(path))
    if key in _MEMO:
        return _MEMO[key]
    found = None
    if path.is_file() and report_path(path).is_file():
        try:
            found = load_measurer(path)
        except MemoZooError as error:
            warnings.warn(f"world measurer cache entry {path} is unreadable, training again: {error}", stacklevel=2)
    if found is None:
        measurer, report = train_measurer(config.world, config.training, progress=progress)
        save_measurer(measurer, report, path)
        found = (measurer.eval(), report)
    _MEMO[key] = found
    return found


def clear_memo() -> None:
    """Forget the in-process measurers (the files stay); the next call reads or trains again."""
    _MEMO.clear()


def share(measurer: WorldMeasurer, device: torch.device) -> WorldMeasurer:
    """``measurer`` on ``device``: itself when already there, else a copy (the shared one stays put)."""
    if measurer.device == device:
        return measurer
    copy = WorldMeasurer(measurer.shape)
    copy.load_state_dict(measurer.state_dict())
    return copy.eval().to(device)
