"""The data pipeline on Ray Data (issue 21): the local engine's stages, report and files, on a cluster.

``run_pipeline_on_ray`` gives what ``memo_zoo.data.pipeline.run_pipeline`` gives (the same
``report.jsonl`` lines, ``metadata.jsonl`` in dataset order, files under ``data/video``,
``PipelineResult``), with the clips spread over a Ray cluster (``memo_zoo.data.ray_cluster``):

- A clip is the unit of work. Each row of the Ray dataset is one clip *item* on its way through
  the stages, as a JSON ``state``: the item's record, its ``path`` in the clip's tree (the
  dataset position, then the output index at every stage: the order the local engine visits items
  in), the ``chain`` of report entries that led to it and the report entries a previous run left
  for its source clip (resume).
- Each stage is one ``flat_map`` operator: a kept item becomes one row per output clip (a stage may
  split a clip), a dropped one becomes a *finished* row that the later operators pass on untouched,
  so that the driver sees every drop. The last operator publishes survivors into ``data/video``.
- A stage is built where it runs, once per worker process (``RayStage.build``, a picklable
  factory): models load once, and an unpicklable detector never has to travel. A stage with GPUs
  (``RayStage.num_gpus``), or with ``actors`` set, runs as a pool of Ray actors that each build it
  once; Ray gives each actor its GPUs (``CUDA_VISIBLE_DEVICES``), so the stage's ``device: cuda``
  means its own GPU. Other stages run as Ray tasks. Ray Data's own retry rules hold: a task whose
  worker died (SIGKILL, the OOM killer, a lost node) is run again, a dead actor is restarted and
  its task retried; a stage's own exception is not retried and stops the run, as it does locally.
- Only the driver writes ``report.jsonl``. It appends each entry of a row's chain the first time
  it sees the (stage, item) pair, so a task Ray retries after its worker died, or the entries two
  sibling rows share, never give a line twice. Stages write their files atomically, as on the
  local engine, so a killed attempt leaves no half file under a name the report points at.
- Resume follows the local rule: a (stage, clip) pair whose report entry's output files still
  exist is taken from the report (``result_from_entry``), never run again.

Every node must see ``out_dir`` and the dataset's files at the same paths (a shared file system):
stages write their outputs where the report says they are.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from pydantic import BaseModel

from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.data.pipeline import (
    MANIFEST_STAGE,
    REPORT_FILE,
    PipelineResult,
    StageCounts,
    StageResult,
    append_report_line,
    attempt_stage,
    count_result,
    describe_stages,
    drop_reason,
    finish,
    load_clips,
    prepare_out_dir,
    publish_step,
    read_report,
    record_dataset_skips,
    record_from_json,
    record_to_json,
    report_entry,
    result_from_entry,
    stage_folder,
    stage_labels,
)
from memo_zoo.data.ray_cluster import import_ray, ray_cluster
from memo_zoo.errors import MemoZooError
from memo_zoo.progress import progress as default_progress
from memo_zoo.slots.dataset import ClipDataset
from memo_zoo.slots.preprocess import Stage

RAY_DATA_LOGGER = "ray.data"
# Clips per Ray block: one, so that every clip is its own task and a retry redoes one clip; past this
# many clips, blocks hold several (a block per clip would make the scheduler the bottleneck).
MAX_BLOCKS = 4096


@dataclass(frozen=True)
class RayStage:
    """A stage as the Ray engine ships it: how to build it in a worker, and what it needs there.

    name:     the stage's ``name`` (its label in the report); the built stage must carry it.
    build:    a picklable zero-argument factory (a registry ``ComponentFactory``), called once per
              worker process or actor.
    config:   recorded in ``pipeline.json`` as the local engine records ``stage.config``.
    num_cpus: CPUs each worker of the stage holds.
    num_gpus: GPUs each worker holds; above 0 the stage runs as a pool of actors.
    actors:   the pool's size (run as actors even without GPUs: a stage slow to build); default
              with GPUs: as many actors as the cluster's GPUs hold.
    """

    name: str
    build: Callable[[], Stage]
    config: BaseModel | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    actors: int | None = None

    @property
    def as_actors(self) -> bool:
        return self.num_gpus > 0 or self.actors is not None


# ---- in the workers -----------------------------------------------------------------------------

# Stages built in this worker process, by (run token, stage index): Ray reuses its worker processes,
# so a stage's model loads once per process. Another run's stages are let go when a new run starts.
_BUILT: dict[tuple[str, int], Stage] = {}


def _advance(state: dict[str, Any], index: int, label: str,
             work: Callable[[ClipRecord], StageResult], folder: Path | None) -> list[dict[str, Any]]:
    """One stage (or the manifest step) on one row: the rows it turns into."""
    if "error" in state or state["item"] is None:
        return [state]  # dropped (or failed) earlier: carried to the driver as it is
    item = record_from_json(state["item"])
    cached = {(entry["index"], entry["clip"]): entry for entry in state["cached"]}
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    result = result_from_entry(cached.get((index, item.clip_id)))
    fresh = result is None
    if fresh:
        result = attempt_stage(label, lambda: work(item))
    link = {"path": state["path"], "fresh": fresh,
            "entry": report_entry(item.clip_id, state["source"], label, index, result)}
    chain = [*state["chain"], link]
    if not result.kept:
        return [{**state, "item": None, "chain": chain}]
    return [{**state, "item": record_to_json(clip), "path": [*state["path"], number], "chain": chain}
            for number, clip in enumerate(result.clips)]


class _StageStep:
    """One stage over one row (a Ray Data ``flat_map`` function; picklable)."""

    def __init__(self, token: str, index: int, label: str, stage: RayStage, out_dir: Path):
        self.token, self.index, self.label, self.stage, self.out_dir = token, index, label, stage, out_dir

    def built(self) -> Stage:
        key = (self.token, self.index)
        if key not in _BUILT:
            for old in [k for k in _BUILT if k[0] != self.token]:
                del _BUILT[old]
            stage = self.stage.build()
            name = getattr(stage, "name", None)
            if name != self.stage.name:
                raise MemoZooError(f"stage {self.label!r} was built as a stage named {name!r}; the Ray engine "
                                   f"labels its report by the name it was given ({self.stage.name!r}: the "
                                   "component's kind), so the built stage must carry that name")
            _BUILT[key] = stage
        return _BUILT[key]

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        folder = stage_folder(self.out_dir, self.index, self.label)
        return _rows(row, lambda state: _advance(state, self.index, self.label,
                                                 lambda item: self.built().process(item, folder), folder))


def _rows(row: dict[str, Any], advance: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    try:
        states = advance(json.loads(row["state"]))
    except MemoZooError as error:
        # An error the user can fix (missing weights, a bad option) travels as a row: raised here,
        # Ray would hand the driver only its own wrapper, without this error in it. The driver
        # raises it, as the local engine would have.
        states = [{"error": str(error)}]
    return [{"state": json.dumps(state)} for state in states]


class _StageActor:
    """A stage as a Ray actor (``flat_map`` with a class): built once, when the actor starts."""

    def __init__(self, step: _StageStep):
        # Built at the first clip rather than here, so that a build error reaches the driver as
        # that clip's error row (``_rows``), not as a failed actor start.
        self.step = step

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        return self.step(row)


class _PublishStep:
    """The manifest step: each surviving item copied (hard-linked) into ``data/video``."""

    def __init__(self, index: int, out_dir: Path):
        self.index, self.out_dir = index, out_dir

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        return _rows(row, lambda state: _advance(state, self.index, MANIFEST_STAGE,
                                                 lambda item: publish_step(item, self.out_dir), None))


# ---- on the driver ------------------------------------------------------------------------------


class _Collector:
    """Takes the rows coming out of the last operator: writes the report, counts, finds finished clips."""

    def __init__(self, labels: Sequence[str], clips: Sequence[ClipRecord], report: Any):
        self.final = len(labels)
        self.counts = {label: StageCounts() for label in [*labels, MANIFEST_STAGE]}
        self.report = report
        # Per clip (by dataset position): items whose result at their next stage is still to come.
        # A kept result opens one per output; the clip is finished when none is left open.
        self.open = [1] * len(clips)
        self.seen: set[tuple[int, tuple[int, ...]]] = set()
        self.drops: list[tuple[tuple[Any, ...], SkippedClip]] = []
        self.survivors: list[tuple[tuple[int, ...], ClipRecord, str]] = []
        self.processed = 0

    def take(self, state: dict[str, Any]) -> list[int]:
        """Take one row; return the dataset positions of the clips it finished."""
        if "error" in state:
            raise MemoZooError(state["error"])
        finished = []
        for link in state["chain"]:
            entry, path = link["entry"], tuple(link["path"])
            index = entry["index"]
            if (index, path) in self.seen:
                continue  # a sibling's copy of a shared ancestor, or a retried task's second answer
            self.seen.add((index, path))
            if link["fresh"]:
                append_report_line(self.report, entry)
                self.processed += 1
            # Just made by a worker, or just checked there: the files are not looked at again.
            result = result_from_entry(entry, check_files=False)
            count_result(self.counts[entry["stage"]], result)
            clip = path[0]
            self.open[clip] -= 1
            if not result.kept:
                # The local engine's order: by clip, then stage, then item.
                self.drops.append(((clip, index, path), SkippedClip(entry["clip"], entry["stage"],
                                                                    drop_reason(result))))
            elif index < self.final:
                self.open[clip] += len(result.clips)
            else:
                self.survivors.append((path, result.clips[0], entry["source"]))
            if self.open[clip] == 0:
                finished.append(clip)
        return finished

    def finished_clips(self, rows: Iterable[dict[str, Any]]) -> Iterator[int]:
        for row in rows:
            yield from self.take(json.loads(row["state"]))

    def check_complete(self, clips: Sequence[ClipRecord]) -> None:
        missing = [clips[i].clip_id for i, left in enumerate(self.open) if left]
        if missing:
            raise RuntimeError(f"the Ray run ended without the results of {len(missing)} clip(s) "
                               f"({', '.join(missing[:5])}); nothing was lost on disk: run it again to resume")

    def ordered_survivors(self) -> list[tuple[ClipRecord, str]]:
        return [(clip, source) for _, clip, source in sorted(self.survivors, key=lambda s: s[0])]

    def ordered_drops(self) -> list[SkippedClip]:
        return [skip for _, skip in sorted(self.drops, key=lambda d: d[0])]


def _input_rows(clips: Sequence[ClipRecord], done: dict[tuple[int, str], dict[str, Any]]) -> list[dict[str, str]]:
    by_source: dict[str, list[dict[str, Any]]] = {}
    for (index, _), entry in done.items():
        if index >= 0:
            by_source.setdefault(entry.get("source") or entry["clip"], []).append(entry)
    return [{"state": json.dumps({"source": clip.clip_id, "path": [position], "item": record_to_json(clip),
                                  "chain": [], "cached": by_source.get(clip.clip_id, [])})}
            for position, clip in enumerate(clips)]


def _actor_pool_size(ray: Any, stage: RayStage, label: str) -> int:
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if stage.num_gpus > gpus:
        raise MemoZooError(f"stage {label!r} asks for {stage.num_gpus:g} GPU(s) per worker (ray options, "
                           f"stages.{label}.num_gpus) but the Ray cluster has {gpus:g}")
    if stage.actors is not None:
        return stage.actors
    return max(1, int(gpus // stage.num_gpus))


def _build_dataset(ray: Any, rows: list[dict[str, str]], stages: Sequence[RayStage], labels: Sequence[str],
                   out_dir: Path) -> Any:
    token = uuid.uuid4().hex  # this run's stages, apart from an earlier run's in a reused worker
    data = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
    for index, (stage, label) in enumerate(zip(stages, labels)):
        step = _StageStep(token, index, label, stage, out_dir)
        if stage.as_actors:
            # Ray Data restarts a dead actor and retries its task; a stage's own exception stops the run.
            pool = ray.data.ActorPoolStrategy(size=_actor_pool_size(ray, stage, label))
            data = data.flat_map(_StageActor, fn_constructor_args=(step,), compute=pool, num_cpus=stage.num_cpus,
                                 num_gpus=stage.num_gpus or None)
        else:
            data = data.flat_map(step, num_cpus=stage.num_cpus)
    return data.flat_map(_PublishStep(len(stages), out_dir), num_cpus=1)


@contextmanager
def _quiet_ray_data(ray: Any) -> Iterator[None]:
    """Ray Data's own bars and per-operator log lines off while the driver shows its clip bar."""
    context = ray.data.DataContext.get_current()
    logger = logging.getLogger(RAY_DATA_LOGGER)
    bars, level = context.enable_progress_bars, logger.level
    context.enable_progress_bars = False
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        context.enable_progress_bars = bars
        logger.setLevel(level)


def run_pipeline_on_ray(dataset: ClipDataset, stages: Sequence[RayStage], out_dir: str | Path, *,
                        resume: bool = True, max_clips: int | None = None,
                        progress: Callable[..., Iterator[Any]] = default_progress,
                        address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
                        connect_timeout: float = 10.0, address_field: str = "address") -> PipelineResult:
    """Run ``stages`` over ``dataset.clips()`` into ``out_dir`` on Ray; see the module docstring.

    ``address`` / ``num_cpus`` / ``num_gpus`` / ``connect_timeout`` choose the cluster
    (``memo_zoo.data.ray_cluster.ray_cluster``; ``address_field`` names the address's origin in
    errors). Raises what ``run_pipeline`` raises, and ``MemoZooError`` when Ray is not installed or
    the cluster cannot be reached.
    """
    import_ray()  # before anything is removed from out_dir
    out_dir = Path(out_dir).absolute()
    labels = stage_labels([stage.name for stage in stages])
    with ray_cluster(address, num_cpus=num_cpus, num_gpus=num_gpus, connect_timeout=connect_timeout,
                     field=address_field) as ray:
        out_dir.mkdir(parents=True, exist_ok=True)
        prepare_out_dir(out_dir, describe_stages(stages, labels), resume)
        report_path = out_dir / REPORT_FILE
        done = read_report(report_path)
        clips, skipped = load_clips(dataset, max_clips)
        data = _build_dataset(ray, _input_rows(clips, done), stages, labels, out_dir)
        with _quiet_ray_data(ray), report_path.open("a", encoding="utf-8") as report:
            collector = _Collector(labels, clips, report)
            dataset_drops = record_dataset_skips(skipped, done, report)
            rows = collector.finished_clips(data.iter_rows())
            for _ in progress(rows, desc="preprocess", total=len(clips), unit="clip"):
                pass
    collector.check_complete(clips)
    return finish(out_dir, collector.ordered_survivors(), collector.counts,
                  [*dataset_drops, *collector.ordered_drops()], collector.processed)
