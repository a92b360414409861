"""The MEMO training loop on ``accelerate`` (spec §5): one CPU, one GPU or many (DDP).

``Trainer(config, recipe, registry, run, workdir).fit()`` builds the parts the recipe names, then
per optimizer step:

- ``grad_accumulation`` micro-batches, each: ``step.prepare_inputs`` (frozen VAE, draws, L6) ->
  ``TrainModules`` forward under autocast (bf16 / fp16 via accelerate) -> per-sample losses ->
  robust filter (L5: samples above the threshold leave the update and are counted) -> backward
  (gradients of all but the last micro-batch stay local: ``no_sync``);
- gradient clipping (the norm is logged), the optimizer and lr-scheduler steps, then the step
  counter, inside a section where Ctrl-C is deferred, so a checkpoint never holds half an update;
- on the main process only: the progress bar (samples/s and ETA) and, every ``log_every`` steps,
  MLflow metrics: loss (mean over all samples), loss_kept, lr, samples_per_s, dropped_samples
  (in the window) and dropped_samples_total, grad_norm, phase, epoch.

The step count, the bar, checkpoints (``memo_zoo.train.checkpoint``) every ``checkpoint_every``
steps and at exit, and stop signals are the loop every trainer shares (``memo_zoo.train.step_loop``).
Ctrl-C or SIGTERM asks for a stop (``memo_zoo.train.stop``): every rank finishes its step, they write one
checkpoint together, then the interrupt goes on (the MLflow run ends FAILED, exit 130 / 143); a
second signal stops at once and saves the last completed step. DDP runs with
``find_unused_parameters=True``: the last site's audio stream and, in the phases, frozen modules
produce no gradient. The epoch's permutation (seed, epoch) is cut into micro-batches in one
order, dealt round-robin to the ranks, and each micro-batch's draws are seeded by its number
(``BatchStream``, ``chunk_seed``): a step's global batch and draws are the same on 2 processes x 1
accumulation as on 1 x 2, so a checkpoint resumes on another world size with the same loss curve.

Under DeepSpeed ZeRO-1/2 (``accelerate launch`` with a DeepSpeed config, ``memo-zoo train
--config-file``) the recipe keeps owning the batch, accumulation, clipping and mixed precision
(``configure_deepspeed``); the weights stay fp32 with memo-zoo's autocast, the engine clips and
steps inside ``backward``, and checkpoints gather the sharded AdamW state into torch's layout
(``memo_zoo.train.zero``), so they load into a plain run. FSDP is refused (``fit``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn
from torch.utils.data import DataLoader

from memo_zoo.data.samples import TalkingHeadSamples, collate
from memo_zoo.emotion import LABEL_SETS
from memo_zoo.errors import MemoZooError
from memo_zoo.model.compatibility import check_network_matches
from memo_zoo.model.memo_net import MemoNet, build_network, resolved_model
from memo_zoo.recipe.components import slot_factories
from memo_zoo.recipe.network import RELEASED
from memo_zoo.settings import get_settings
from memo_zoo.train.checkpoint import (ENCODERS_FILE, MODEL_DIR, CorruptCheckpointError, TrainerState, checkpoint_name,
                                       latest_checkpoint, list_checkpoints, load_checkpoint, load_encoder_weights,
                                       read_state, save_checkpoint, verify_checkpoint)
from memo_zoo.train.config import TrainConfig
from memo_zoo.train.clip_regions import measure_clip_regions
from memo_zoo.train.latent_cache import ClipLatentStore, LatentCache, deterministic_encoder, vae_fingerprint
from memo_zoo.train.launch_env import CONFIG_FILE_VARIABLE
from memo_zoo.train.out_dir import STALE_STATUS, OutDirLock, close_stale_runs, read_run_record, write_run_record
from memo_zoo.train.step_loop import StepLoop
from memo_zoo.train.stop import StopRequest
from memo_zoo.train.zero import ZeroOptimizerState, zero_optimizer
from memo_zoo.train.step import (TrainModules, apply_phase, check_parts, encode_frames, new_module_prefixes,
                                 prepare_inputs, robust_objective)


def fused_supported(wanted: bool, params: list[nn.Parameter]) -> bool | None:
    """``fused=`` for AdamW: torch's fused kernel where asked and every parameter is a floating
    tensor on CPU or CUDA (the devices it supports); None (torch's choice) otherwise."""
    ok = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return True if wanted and ok else None


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers, well mixed (SeedSequence), for per-(rank, step) generators."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint64)[0] >> 1)


def epoch_order(length: int, seed: int, epoch: int) -> list[int]:
    """The permutation of epoch ``epoch``: the one ``memo_zoo.data.samples.EpochShuffleSampler`` uses."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return torch.randperm(length, generator=generator).tolist()


# TrainerState.data_order of the order below (older checkpoints: "", each rank cut its own share).
DATA_ORDER = "global"


class BatchStream:
    """This rank's micro-batches, epoch after epoch, in an order that does not depend on the world size.

    Epoch ``e``'s permutation (seed, e) is cut into ``len // batch_size`` micro-batches ("chunks"),
    numbered on across epochs: chunk ``g`` is micro-batch ``g mod n`` of epoch ``g // n``. Optimizer
    step ``k`` takes chunks ``k*C .. k*C + C - 1`` with ``C = processes x grad_accumulation``, chunk
    ``k*C + m*W + r`` going to rank ``r`` as its micro-batch ``m``: rank r reads every W-th chunk.
    So the global batch of each step is the same set of micro-batches on 1 process x C
    accumulations or C processes x 1, and with the draws seeded per chunk (``chunk_seed``) a run
    resumes on another world size with the same loss curve. On one process this is the order of
    earlier versions exactly.

    ``position``: chunks the whole job has consumed at the last step boundary (``end_step``); a
    checkpoint stores it as (epoch, batch_in_epoch).
    """

    def __init__(self, samples: TalkingHeadSamples, seed: int, rank: int, world: int, batch_size: int,
                 chunks_per_step: int, num_workers: int, position: int, pin_memory: bool):
        self.samples, self.seed, self.rank, self.world = samples, seed, rank, world
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.chunks_per_step = chunks_per_step
        self.per_epoch = len(samples) // batch_size
        if self.per_epoch < world:
            raise MemoZooError(f"the dataset gives {len(samples)} samples per epoch, fewer than one batch per "
                               f"process (batch_size {batch_size} x {world} processes); lower task.batch_size or "
                               "raise task.samples.samples_per_clip")
        self.position = position
        self._next = position + rank  # the next chunk this rank reads
        self.last_indices: list[int] = []
        self._iterator: Iterator[dict[str, Any]] | None = None
        self._epoch: int | None = None
        self._order: list[int] = []

    @property
    def epoch(self) -> int:
        return self.position // self.per_epoch

    @property
    def batch_in_epoch(self) -> int:
        return self.position % self.per_epoch

    def chunk_indices(self, order: list[int], chunk: int) -> list[int]:
        return order[chunk * self.batch_size:(chunk + 1) * self.batch_size]

    def _open(self, epoch: int, first: int) -> None:
        """A loader over this rank's chunks of ``epoch`` from micro-batch ``first`` on (a resumed run
        skips what it trained on without loading it)."""
        self.samples.set_epoch(epoch)
        self._epoch, self._order = epoch, epoch_order(len(self.samples), self.seed, epoch)
        base = epoch * self.per_epoch
        chunks = [self.chunk_indices(self._order, j) for j in range(first, self.per_epoch)
                  if (base + j) % self.world == self.rank]
        # The loader's generator seeds its workers; the same on every rank (each sample's content is
        # drawn from (seed, epoch, index) anyway: memo_zoo.data.samples).
        loader = DataLoader(self.samples, batch_sampler=chunks, num_workers=self.num_workers, collate_fn=collate,
                            pin_memory=self.pin_memory,
                            generator=torch.Generator().manual_seed(derived_seed(self.seed, epoch, 0)),
                            persistent_workers=False)
        self._iterator = iter(loader)

    def next(self) -> dict[str, Any]:
        epoch, chunk = divmod(self._next, self.per_epoch)
        if self._iterator is None or epoch != self._epoch:
            self._open(epoch, chunk)
        batch = next(self._iterator)
        self.last_indices = self.chunk_indices(self._order, chunk)
        self._next += self.world
        return batch

    def end_step(self) -> None:
        self.position += self.chunks_per_step


def chunk_seed(seed: int, step: int, chunk: int) -> int:
    """Seed of the draws (noise, t, dropout, augmentations) of micro-batch ``chunk`` of step ``step``
    (``BatchStream``'s numbering: the same on any world size). The 0 stands where the rank was in
    earlier versions, so the draws of a one-process run are theirs."""
    return derived_seed(seed, 0, step, chunk)


@dataclass
class TrainResult:
    """What a finished ``fit`` reports (losses: this run's first and last step, main process only)."""

    out_dir: Path
    checkpoint: Path | None
    steps: int
    first_loss: float | None = None
    last_loss: float | None = None
    dropped_total: int = 0
    samples_per_second: float = 0.0
    wall_seconds: float = 0.0


@dataclass
class _Window:
    """Sums over the steps since the last MLflow log."""

    steps: int = 0
    loss: float = 0.0
    loss_kept: float = 0.0
    kept_steps: int = 0
    dropped: int = 0
    grad_norm: float = 0.0
    samples: int = 0
    seconds: float = 0.0


class Trainer:
    """Trains the recipe's MEMO network; see the module docstring.

    ``run`` is the MLflow run (``TrackedRun``) or None (non-main ranks, or no tracking);
    ``on_step`` is called with the ``TrainerState`` after every optimizer step (hooks for embedding
    applications: evaluation, early stop by raising).
    """

    def __init__(self, config: TrainConfig, recipe: BaseModel, registry: Any, run: Any | None, workdir: Path,
                 variant: str | None = None, on_step: Callable[[TrainerState], None] | None = None):
        self.config = config
        self.recipe = recipe
        self.registry = registry
        self.workdir = Path(workdir)
        self.variant = variant
        self.on_step = on_step
        self.seed = recipe.seed if config.seed is None else config.seed
        samples = config.samples
        if "seed" not in samples.model_fields_set:
            samples = samples.model_copy(update={"seed": recipe.seed})
        self.sample_config = samples
        out_dir = config.out_dir
        if out_dir is None:
            out_dir = Path("checkpoints") / recipe.name / (variant or "")
        self.out_dir = out_dir if out_dir.is_absolute() else self.workdir / out_dir
        self._run = run

    # ---- building ------------------------------------------------------------------------------

    def _require(self, value: Any, field_name: str) -> Any:
        if value is None:
            raise MemoZooError(f"task train needs {field_name} in the recipe")
        return value

    def _build_parts(self) -> tuple[MemoNet, Any, Any, Any | None]:
        model = self.recipe.model
        if model.network.preset != RELEASED:  # the released network has default kinds for both
            self._require(model.temporal, "model.temporal")
            self._require(model.audio_fusion, "model.audio_fusion")
        vae = self.registry.build("vae", self._require(model.vae, "model.vae"))
        image_encoder = self.registry.build("image_encoder", self._require(model.image_encoder, "model.image_encoder"))
        # No audio encoder = zero audio tokens everywhere (an audio-free ablation).
        audio_encoder = None if model.audio_encoder is None else self.registry.build("audio_encoder",
                                                                                    model.audio_encoder)
        # One builder for every network family (memo_zoo.model.memo_net.build_network); a
        # memo_released network with model.network.weights starts from the release's weights.
        net = build_network(model, slot_factories(self.registry))
        release_init = getattr(net, "release_init", None)  # a module swapped into the release
        if release_init is not None and self._run is not None:
            self._run.log_table(release_init.as_table(), "release_init.json")
            self._run.set_tags({"memo_zoo.train.release_init": release_init.summary()})
        audio_fusion = net.audio_fusion_config
        if self.config.sd15_unet is not None:
            net.init_from_sd15(self.config.sd15_unet)
        if self.config.animatediff is not None:
            report = net.init_from_animatediff(self.config.animatediff, self.config.animatediff_output)
            if self._run is not None:
                self._run.log_dict(report.as_dict(), "animatediff_init.json")
        if self.config.init_weights is not None:
            folder = Path(self.config.init_weights)
            # A training checkpoint folder holds the network under model/ and the trainable encoders
            # beside it. The encoders come too: stage 1 trains the image projector against the image
            # encoder's weights of that run, which a fresh random encoder would not reproduce.
            spatial = self.config.init_weights_scope == "spatial"
            net_dir = folder / "model" if (folder / "model" / "memo_net.safetensors").is_file() else folder
            # Names and shapes can match across architectures (another gamma, another temporal kind):
            # compare the saved configuration always. With scope 'spatial' the temporal and audio
            # modules are not taken from it, so only model.network must agree.
            # A memo_released recipe is compared as its network is built (the release's geometry and options).
            built = resolved_model(model, slot_factories(self.registry))
            compared = SimpleNamespace(network=built.network, temporal=None, audio_fusion=None) if spatial else built
            check_network_matches(net_dir, compared, f"task.init_weights {self.config.init_weights}")
            if (folder / "model" / "memo_net.safetensors").is_file():
                if (folder / ENCODERS_FILE).is_file():
                    encoders = {"image_encoder": image_encoder}
                    if not spatial:  # stage 1 does not train the audio encoder; a variant may use another
                        encoders["audio_encoder"] = audio_encoder
                    load_encoder_weights(folder, encoders)
                folder = folder / "model"
            net.load_weights(folder / "memo_net.safetensors", exclude=new_module_prefixes(net) if spatial else ())
        check_parts(net, vae, image_encoder, audio_encoder, self.sample_config.size,
                    len(LABEL_SETS[self.sample_config.label_set]), audio_fusion)
        return net, vae, image_encoder, audio_encoder

    def _build_samples(self) -> TalkingHeadSamples:
        dataset_config = self._require(self.recipe.data.dataset, "data.dataset")
        dataset = self.registry.build("dataset", dataset_config)
        records = dataset.clips()
        if not records:
            raise MemoZooError(f"data.dataset ({dataset_config.kind}) lists no clips")
        return TalkingHeadSamples(records, self.sample_config)

    # ---- the run -------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        from accelerate import Accelerator, DistributedDataParallelKwargs, InitProcessGroupKwargs

        cfg = self.config
        cpu = get_settings().device == "cpu" or not torch.cuda.is_available()
        deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
        if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
            raise MemoZooError(f"{launch_source()}: distributed_type FSDP is not supported by memo-zoo's trainer (its "
                               "checkpoints need every parameter whole on the main process, which FSDP shards); use "
                               "DeepSpeed ZeRO-2 (recipes/launch/zero2.yaml) or DDP")
        handlers: list[Any] = [DistributedDataParallelKwargs(find_unused_parameters=True)]
        if deepspeed:
            check_deepspeed_recipe(cfg)
            if cpu:
                # accelerate starts DeepSpeed only when it is not told cpu=True, and without a GPU it
                # then picks no process-group backend (and counts one process): name gloo.
                handlers.append(InitProcessGroupKwargs(backend="gloo"))
                cpu = False
        # Under DeepSpeed, accelerate's mixed precision would switch on DeepSpeed's bf16 / fp16 mode,
        # which turns the module's weights to half precision; memo-zoo keeps fp32 weights and
        # applies task.mixed_precision as its own autocast (``_autocast``) instead.
        accelerator = Accelerator(
            cpu=cpu, mixed_precision="no" if deepspeed else cfg.mixed_precision, kwargs_handlers=handlers)
        try:
            # Installed before anything is built: a signal during the (long) data preparation is
            # taken at the first step boundary too, by every rank together.
            with StopRequest(announce=accelerator.is_main_process) as stop:
                return self._fit(accelerator, stop)
        finally:
            if accelerator.num_processes == 1:
                # accelerate keeps its state in process-wide singletons; a later run in this process
                # (tests, sweeps) may ask for another precision.
                from accelerate.state import AcceleratorState, GradientState

                AcceleratorState._reset_state(reset_partial_state=True)
                GradientState._reset_state()

    def _fit(self, accelerator: Any, stop: StopRequest) -> TrainResult:
        main = accelerator.is_main_process
        run = self._run if main else None
        rank, world = accelerator.process_index, accelerator.num_processes
        with contextlib.ExitStack() as held:
            if main:
                # One training per out_dir; held until the run ends, also while it stops.
                held.enter_context(OutDirLock(self.out_dir))
            return self._fit_locked(accelerator, stop, main, run, rank, world)

    def _fit_locked(self, accelerator: Any, stop: StopRequest, main: bool, run: Any, rank: int,
                    world: int) -> TrainResult:
        cfg = self.config
        existing, skipped = self._checkpoint_to_resume()
        for path, why in skipped:
            if main:
                warnings.warn(f"--resume skips {path.name}, which is damaged: {why}", stacklevel=2)
        if existing is not None:
            # Resuming with another architecture would mix two models in one out_dir.
            # (a memo_released recipe as its network is built: the release's geometry and options)
            built = resolved_model(self.recipe.model, slot_factories(self.registry))
            check_network_matches(existing / MODEL_DIR, built, f"checkpoint {existing}")
        # Every rank has chosen (from the same files) before the main one renames the damaged ones.
        accelerator.wait_for_everyone()
        if main:
            self._set_aside(skipped)
            self._record_run(existing)
        net, vae, image_encoder, audio_encoder = self._build_parts()
        with accelerator.main_process_first():
            # The main process generates / decodes the data first; the others then find it cached.
            samples = self._build_samples()
        if cfg.gradient_checkpointing:
            net.enable_gradient_checkpointing()
        modules = TrainModules(net, image_encoder, audio_encoder, self.sample_config.fps,
                               self.sample_config.audio_window, cfg.loss_target)
        allowed = [p for p in modules.parameters() if p.requires_grad]
        trainable_names = {name for name, p in modules.named_parameters() if p.requires_grad}
        if not allowed:
            raise MemoZooError("task train: nothing to train (every parameter is frozen)")
        optimizer = torch.optim.AdamW(allowed, lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps,
                                      weight_decay=cfg.weight_decay, fused=fused_supported(cfg.fused_adamw, allowed))
        warmup = cfg.lr_warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
        plugin = getattr(accelerator.state, "deepspeed_plugin", None)
        if plugin is not None:
            configure_deepspeed(plugin.deepspeed_config, cfg, world)
        # Every allowed parameter requires grad here: DDP only ever synchronises those it saw at wrap
        # time, and ZeRO builds its flat buffers from them.
        model, optimizer = accelerator.prepare(modules, optimizer)
        if plugin is not None:
            modules = accelerator.unwrap_model(model)
            quiet_deepspeed_logger()
        else:
            # accelerate's unwrap_model imports DeepSpeed whenever it is installed, and DeepSpeed's
            # import logs to stdout, where `memo-zoo run` prints the run ids scripts read.
            modules = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        zero = zero_optimizer(optimizer)
        # What checkpoints save and load as the optimizer: torch AdamW's state_dict in every case.
        optimizer_state = ZeroOptimizerState(zero) if zero is not None else optimizer
        device = accelerator.device
        autocast = _autocast(accelerator, cfg.mixed_precision, device, deepspeed=plugin is not None)
        if isinstance(vae, nn.Module):
            vae.to(device).eval().requires_grad_(False)
        scaler = getattr(accelerator, "scaler", None)
        # Built after the VAE is on its device; one per run (frames are keyed by this run's dataset).
        with accelerator.main_process_first():
            # The main process measures (and caches) the clips' boxes first; the others read them.
            clip_regions = measure_clip_regions(samples, cfg.loss_regions)
        if clip_regions is not None and run is not None:
            run.log_metrics({f"loss_region_{name}_fallback_clips": float(n)
                             for name, n in clip_regions.fallbacks.items()}, step=0)
        latent_cache = None
        if cfg.latent_cache_mb and deterministic_encoder(vae):
            store = None
            if cfg.latent_store and not cfg.colour_augment.enabled:
                # One fingerprint per run: the VAE is frozen from here on.
                store = ClipLatentStore(samples, vae_fingerprint(vae),
                                        lambda images: encode_frames(vae, images.to(device), cfg.vae_batch))
            latent_cache = LatentCache(cfg.latent_cache_mb * 2**20, store)

        names_digest = hashlib.sha256("\n".join(n for n, _ in modules.named_parameters()).encode()).hexdigest()[:16]
        stream_start = self._stream_start(existing, len(samples))
        state = self._start_state(existing, modules, trainable_names, optimizer_state, scheduler, scaler, world,
                                  names_digest)
        start_step = state.step
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        chunks_per_step = world * cfg.grad_accumulation
        global_batch = cfg.batch_size * chunks_per_step
        stream = BatchStream(samples, self.sample_config.seed, rank, world, cfg.batch_size, chunks_per_step,
                             cfg.num_workers, stream_start, pin_memory=device.type == "cuda")
        no_emotion = len(LABEL_SETS[self.sample_config.label_set])
        if run is not None:
            run.set_tags({"memo_zoo.train.out_dir": str(self.out_dir), "memo_zoo.train.processes": world,
                          "memo_zoo.train.device": str(device), "memo_zoo.train.global_batch": global_batch,
                          "memo_zoo.train.start_step": start_step})
        result = TrainResult(out_dir=self.out_dir, checkpoint=None, steps=state.step)
        window = _Window()
        phase_name = None
        started = time.perf_counter()
        # The bar moves by the global batch at every step, so its rate reads in samples/s. Every rank
        # agrees on a stop at each step boundary (stop.agreed is a collective with several ranks).
        save = partial(self._save, accelerator, modules, trainable_names, optimizer_state, scheduler, scaler, state,
                       stream)
        loop = StepLoop(cfg.steps, f"train {self.recipe.name}", start=start_step, unit="sample",
                        per_step=global_batch, show=main, stop=stop, world=world, device=device, save=save,
                        checkpoint_every=cfg.checkpoint_every)
        with loop:
            try:
                for _ in loop:
                    phase_index, phase = cfg.phase_at(state.step)
                    if phase.name != phase_name:
                        count = apply_phase(modules, phase.trainable, allowed)
                        phase_name = state.phase = phase.name
                        if run is not None:
                            run.set_tags({f"memo_zoo.train.phase.{phase_index}": f"{phase.name} ({phase.trainable}, "
                                          f"{count} trainable parameters, from step {state.step})"})
                    tick = time.perf_counter()
                    losses, keeps = [], []
                    for micro in range(cfg.grad_accumulation):
                        batch = stream.next()
                        seed = chunk_seed(self.seed, state.step, micro * world + rank)
                        # Global RNGs too: any randomness inside components (dropout) repeats on resume.
                        torch.manual_seed(seed)
                        generator = torch.Generator().manual_seed(seed)
                        with autocast():
                            inputs = prepare_inputs(
                                batch, vae, generator, single_frame=phase.trainable == "spatial",
                                use_audio=phase.trainable != "spatial" and audio_encoder is not None,
                                timesteps=cfg.timesteps, dropout=cfg.condition_dropout,
                                motion_padding=cfg.motion_padding, audio_window=self.sample_config.audio_window,
                                no_emotion=no_emotion, device=device, vae_batch=cfg.vae_batch,
                                loss_regions=cfg.loss_regions, motion_augment=cfg.motion_augment,
                                colour_augment=cfg.colour_augment, latent_cache=latent_cache,
                                clip_regions=clip_regions)
                        last = micro == cfg.grad_accumulation - 1
                        with contextlib.nullcontext() if last else accelerator.no_sync(model):
                            with autocast():
                                per_sample = model(inputs)
                            threshold = (cfg.robust_loss.threshold
                                         if state.step >= cfg.robust_loss.start_step else None)
                            objective, keep = robust_objective(per_sample, threshold)
                            # DeepSpeed divides by its gradient_accumulation_steps itself (and steps
                            # its optimizer inside backward at the last micro-batch).
                            accelerator.backward(objective if zero is not None else objective / cfg.grad_accumulation)
                        losses.append(accelerator.gather(per_sample.detach().float()))
                        # uint8: gloo has no all-gather for bool tensors.
                        keeps.append(accelerator.gather(keep.to(torch.uint8)).bool())
                    params = [p for p in modules.parameters() if p.requires_grad]
                    # Under DeepSpeed the engine clipped (gradient_clipping, from the recipe) and stepped
                    # in backward already; this returns the norm it measured.
                    grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm or math.inf)
                    grad_norm = math.nan if grad_norm is None else float(grad_norm)
                    step_losses, step_keep = torch.cat(losses).cpu(), torch.cat(keeps).cpu()
                    dropped = int((~step_keep).sum())
                    with loop.update():
                        # Every sample of the global batch dropped (L5): no update at all. A zero
                        # gradient would still move the weights through Adam's moments and weight decay.
                        if bool(step_keep.any()):
                            optimizer.step()
                        elif scaler is not None:
                            scaler.update()  # clip_grad_norm_ unscaled the gradients; close that scaler round
                        with warnings.catch_warnings():
                            # The schedule follows the step count, updated or not (torch warns when the
                            # first scheduler step comes before any optimizer step).
                            warnings.filterwarnings("ignore",
                                                    message=re.escape("Detected call of `lr_scheduler.step()`"))
                            scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
                        state.step += 1
                        state.samples_seen += global_batch
                        state.dropped_total += dropped
                        stream.end_step()
                        state.epoch, state.batch_in_epoch = stream.epoch, stream.batch_in_epoch
                    seconds = time.perf_counter() - tick
                    loss = float(step_losses.mean())
                    kept = step_losses[step_keep]
                    window.steps += 1
                    window.loss += loss
                    if kept.numel():
                        window.loss_kept += float(kept.mean())
                        window.kept_steps += 1
                    window.dropped += dropped
                    window.grad_norm += float(grad_norm)
                    window.samples += global_batch
                    window.seconds += seconds
                    if main:
                        result.first_loss = loss if result.first_loss is None else result.first_loss
                        result.last_loss = loss
                        loop.set_postfix(loss=f"{loss:.4f}", dropped=state.dropped_total)
                    if state.step % cfg.log_every == 0 or state.step == cfg.steps:
                        self._log(run, window, state, phase_index, scheduler)
                        window = _Window()
                    if self.on_step is not None:
                        self.on_step(state)
            except KeyboardInterrupt:
                # Log what the window holds; leaving the loop then saves the last completed step
                # (unless the ranks stopped together and have saved), and the interrupt goes on, so
                # that the run is FAILED.
                if window.steps:
                    self._log(run, window, state, cfg.phase_at(state.step - 1)[0], scheduler)
                raise
        result.checkpoint = loop.checkpoint
        result.steps = state.step
        result.dropped_total = state.dropped_total
        result.wall_seconds = time.perf_counter() - started
        done = state.step - start_step
        result.samples_per_second = done * global_batch / result.wall_seconds if result.wall_seconds else 0.0
        if run is not None:
            if latent_cache is not None:
                run.log_metrics(latent_cache.stats(), step=state.step)
            run.log_dict({"steps": state.step, "steps_this_run": done, "samples_seen": state.samples_seen,
                          "dropped_samples_total": state.dropped_total, "wall_seconds": result.wall_seconds,
                          "samples_per_second": result.samples_per_second,
                          "checkpoint": str(result.checkpoint), "first_loss": result.first_loss,
                          "last_loss": result.last_loss},
                         "train_summary.json")
        return result

    # ---- pieces --------------------------------------------------------------------------------

    def check_start(self) -> Path | None:
        """Whether this run can start, without building or reading anything big: a fresh run needs
        an out_dir without checkpoints, a resuming one a checkpoint below ``task.steps``. Returns
        the newest checkpoint (None for a fresh run). ``memo-zoo run`` calls it (through the train
        task's ``preflight``) before the MLflow run is created, so a wrong out_dir or --resume
        leaves nothing in the store."""
        existing = latest_checkpoint(self.out_dir)
        if not self.config.resume:
            if existing is not None:
                raise MemoZooError(f"{self.out_dir} already holds checkpoints ({existing.name}); resume with "
                                   "--resume (task.resume=true) or choose another task.out_dir")
            return None
        if existing is None:
            raise MemoZooError(f"nothing to resume: no checkpoint in {self.out_dir}")
        self._check_below_steps(existing, read_state(existing).step)
        return existing

    def _check_below_steps(self, checkpoint: Path, step: int) -> None:
        if step >= self.config.steps:
            raise MemoZooError(f"{checkpoint} is at step {step} of task.steps={self.config.steps}; raise task.steps "
                               "to train on")

    def _checkpoint_to_resume(self) -> tuple[Path | None, list[tuple[Path, str]]]:
        """The checkpoint a resuming run starts from (None for a fresh run) and the newer ones it
        skips as damaged, with why: the newest checkpoint whose files are all intact
        (``verify_checkpoint``). Checked before the network is built, so a wrong out_dir /
        --resume fails at once."""
        if self.check_start() is None:
            return None, []
        skipped: list[tuple[Path, str]] = []
        for _, candidate in reversed(list_checkpoints(self.out_dir)):
            try:
                state = verify_checkpoint(candidate)
            except CorruptCheckpointError as error:
                skipped.append((candidate, str(error)))
                continue
            self._check_below_steps(candidate, state.step)
            return candidate, skipped
        reasons = "\n  ".join(f"{path.name}: {why}" for path, why in skipped)
        raise MemoZooError(f"nothing to resume: no checkpoint in {self.out_dir} is intact:\n  {reasons}")

    def _set_aside(self, skipped: list[tuple[Path, str]]) -> None:
        """Rename damaged checkpoints out of the way (``damaged-checkpoint-N``, kept for a look): the
        resumed run saves the same step numbers again, and a later resume must not pick them."""
        for path, why in skipped:
            target = path.with_name(f"damaged-{path.name}")
            suffix = 1
            while target.exists():
                target = path.with_name(f"damaged-{path.name}.{suffix}")
                suffix += 1
            os.replace(path, target)
            (target / "DAMAGED.txt").write_text(why + "\n")
            if self._run is not None:
                self._run.set_tags({f"memo_zoo.train.skipped.{path.name}": why})

    def _record_run(self, existing: Path | None) -> None:
        """Close the runs a killed training left RUNNING in this out_dir, and record this one."""
        if self._run is None:
            return
        stale = [read_run_record(self.out_dir).get("run_id")]
        if existing is not None:
            stale.append(read_state(existing).run_id)
        closed = close_stale_runs(self._run.client, stale, self._run.id)
        if closed:
            self._run.set_tags({"memo_zoo.train.closed_stale_runs": ",".join(closed)})
            print(f"closed MLflow run(s) {', '.join(closed)} as {STALE_STATUS}: killed earlier without closing",
                  file=sys.stderr)
        write_run_record(self.out_dir, self._run.id, self._run.experiment_id)

    def _stream_start(self, existing: Path | None, length: int) -> int:
        """Chunks the job had consumed at the checkpoint (``BatchStream.position``); 0 for a fresh run."""
        if existing is None:
            return 0
        saved = read_state(existing)
        per_epoch = length // self.config.batch_size
        if saved.data_order == DATA_ORDER or saved.world_size == 1:
            # One process cut its batches in the global order already.
            return saved.epoch * per_epoch + saved.batch_in_epoch
        # Written before the global order, with several processes: each rank had cut its own share,
        # batch_in_epoch counting per rank. The run goes on from the same epoch and sample count, in
        # the new order (the samples and draws of the next steps differ from that version's).
        warnings.warn(f"{existing} was written by an earlier memo-zoo with {saved.world_size} processes, whose "
                      "data order depended on the process count; the run continues from the same epoch and "
                      "sample count, but its next batches and draws are not those the earlier version would "
                      "have drawn", stacklevel=2)
        return saved.epoch * per_epoch + min(saved.batch_in_epoch * saved.world_size, per_epoch - 1)

    def _start_state(self, existing: Path | None, modules: TrainModules, trainable_names: set[str], optimizer: Any,
                     scheduler: Any, scaler: Any, world: int, names_digest: str) -> TrainerState:
        cfg = self.config
        fresh = TrainerState(world_size=world, batch_size=cfg.batch_size, grad_accumulation=cfg.grad_accumulation,
                             seed=self.seed, sample_seed=self.sample_config.seed,
                             run_id=self._run.id if self._run is not None else None,
                             parameter_names_digest=names_digest, data_order=DATA_ORDER)
        if existing is None:
            return fresh
        saved = read_state(existing)
        mismatched = [f"{name}: checkpoint {getattr(saved, name)!r}, now {getattr(fresh, name)!r}"
                      for name in ("batch_size", "seed", "sample_seed", "parameter_names_digest")
                      if getattr(saved, name) != getattr(fresh, name)]
        # The world size may change (BatchStream): what must stay is the global batch, made of the
        # same micro-batches, i.e. processes x grad_accumulation.
        saved_chunks, chunks = saved.world_size * saved.grad_accumulation, world * cfg.grad_accumulation
        if saved_chunks != chunks:
            hint = (f"; on {world} process(es) resume with task.grad_accumulation={saved_chunks // world}"
                    if saved_chunks % world == 0 else
                    f"; {saved_chunks} micro-batches per step cannot be split over {world} processes")
            mismatched.append(f"micro-batches per step (processes x grad_accumulation): checkpoint "
                              f"{saved.world_size} x {saved.grad_accumulation} = {saved_chunks}, now {world} x "
                              f"{cfg.grad_accumulation} = {chunks}{hint}")
        if saved.world_size != world and saved.data_order != DATA_ORDER and saved.world_size > 1:
            mismatched.append(f"world_size: checkpoint {saved.world_size}, now {world} (a checkpoint of an earlier "
                              "memo-zoo with several processes resumes only on as many)")
        if mismatched:
            raise MemoZooError(f"cannot resume {existing} exactly; these differ from the checkpoint:\n  "
                               + "\n  ".join(mismatched))
        state = load_checkpoint(existing, modules, trainable_names, optimizer, scheduler, scaler)
        if self._run is not None:
            self._run.set_tags({"memo_zoo.train.resumed_from": str(existing),
                                "memo_zoo.train.resumed_from_run": state.run_id or ""})
            if state.world_size != world:
                self._run.set_tags({"memo_zoo.train.resumed_world_size": f"{state.world_size} -> {world}"})
            state.run_id = self._run.id
        state.world_size, state.grad_accumulation, state.data_order = world, cfg.grad_accumulation, DATA_ORDER
        state.ranks = []
        return state

    def _log(self, run: Any, window: _Window, state: TrainerState, phase_index: int, scheduler: Any) -> None:
        if run is None or not window.steps:
            return
        metrics = {
            "loss": window.loss / window.steps,
            "lr": scheduler.get_last_lr()[0],
            "samples_per_s": window.samples / window.seconds if window.seconds else 0.0,
            "dropped_samples": window.dropped,
            "dropped_samples_total": state.dropped_total,
            "grad_norm": window.grad_norm / window.steps,
            "phase": phase_index,
            "epoch": state.epoch,
        }
        if window.kept_steps:
            metrics["loss_kept"] = window.loss_kept / window.kept_steps
        run.log_metrics(metrics, step=state.step)

    def _save(self, accelerator: Any, modules: TrainModules, trainable_names: set[str], optimizer: Any,
              scheduler: Any, scaler: Any, state: TrainerState, stream: BatchStream, collective: bool) -> Path:
        """Checkpoint on the main process; with ``collective``, first gather every rank's parameter
        fingerprint and last sample indices, and refuse to save replicas that diverged."""
        mine = {"rank": accelerator.process_index, "fingerprint": _fingerprint(modules),
                "last_indices": list(stream.last_indices)}
        ranks = [mine]
        if collective and accelerator.num_processes > 1:
            ranks = [None] * accelerator.num_processes
            torch.distributed.all_gather_object(ranks, mine)
        state.ranks = ranks
        path = self.out_dir / checkpoint_name(state.step)
        if isinstance(optimizer, ZeroOptimizerState):
            # Gathered on every rank (a collective), written by the main one. A lone stop (a second
            # Ctrl-C: other ranks may be gone) cannot gather the shards: it keeps the last checkpoint.
            if not collective and accelerator.num_processes > 1:
                warnings.warn("stopped at once under DeepSpeed ZeRO: the optimizer shards cannot be gathered "
                              "without the other ranks; the last checkpoint stays the newest", stacklevel=2)
                return path
            optimizer = optimizer.state_dict()
        if accelerator.is_main_process:
            prints = {r["fingerprint"] for r in ranks}
            if len(prints) > 1:
                raise RuntimeError(f"DDP replicas diverged at step {state.step}: parameter fingerprints {ranks}")
            path = save_checkpoint(self.out_dir, state, modules, trainable_names, optimizer, scheduler,
                                   scaler, self.config.keep_checkpoints)
        if collective:
            accelerator.wait_for_everyone()
        return path


def _fingerprint(modules: nn.Module) -> str:
    """A short digest of every parameter's value (sum and sum of squares in float64): equal on all
    DDP replicas after each step, so a difference means they diverged."""
    with torch.no_grad():
        stats = torch.stack([torch.stack([p.double().sum(), p.double().square().sum()]) for p in modules.parameters()])
    return hashlib.sha256(stats.cpu().numpy().tobytes()).hexdigest()[:16]


def quiet_deepspeed_logger() -> None:
    """Send DeepSpeed's log lines to stderr: its logger writes to stdout, which ``memo-zoo run``
    keeps for the run ids that scripts read."""
    import logging

    from deepspeed.utils.logging import logger

    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


def launch_source() -> str:
    """How the running job was configured, for messages: the accelerate config file ``memo-zoo train
    --config-file`` passed on (``memo_zoo.cli.launch``), else accelerate's launch settings."""
    return os.environ.get(CONFIG_FILE_VARIABLE) or "the accelerate launch configuration"


def check_deepspeed_recipe(cfg: TrainConfig) -> None:
    """What memo-zoo's loop cannot do under DeepSpeed ZeRO, refused before anything is built."""
    frozen = [p.name for p in cfg.phases if p.trainable != "all"]
    if frozen:
        raise MemoZooError(f"{launch_source()} runs DeepSpeed, and task.phases {frozen} train only part of the "
                           "network: ZeRO keeps every parameter given to it in its flat optimizer buffers and would "
                           "move the frozen ones through weight decay; run each phase as its own training "
                           "(task.init_weights from the previous one's checkpoint) or train these phases with DDP")
    if cfg.mixed_precision == "fp16":
        raise MemoZooError(f"{launch_source()} runs DeepSpeed: task.mixed_precision fp16 needs a loss scaler, which "
                           "memo-zoo's autocast under DeepSpeed does not have; use bf16")


# (DeepSpeed config key, TrainConfig field) of the values the recipe owns.
RECIPE_OWNED = (("train_micro_batch_size_per_gpu", "batch_size"), ("gradient_accumulation_steps", "grad_accumulation"),
                ("gradient_clipping", "max_grad_norm"))


def configure_deepspeed(config: dict[str, Any], cfg: TrainConfig, world: int) -> None:
    """Fill the DeepSpeed config from the recipe, which owns the batch, the accumulation and the
    clipping (they change what is learned; the config file says how to run). A value the file
    leaves out or sets to "auto" is taken from the recipe; one that differs is an error."""
    zero = config.get("zero_optimization", {}) or {}
    stage = zero.get("stage", 0)
    if stage not in (1, 2):
        raise MemoZooError(f"{launch_source()}: deepspeed_config.zero_stage is {stage}; memo-zoo trains with ZeRO "
                           "stage 1 or 2 (stage 3 shards the weights its checkpoints save whole)")
    for section in ("offload_optimizer", "offload_param"):
        device = (zero.get(section) or {}).get("device", "none")
        if device not in (None, "none"):
            raise MemoZooError(f"{launch_source()}: deepspeed_config.{section}_device is {device!r}; memo-zoo's "
                               f"checkpoints need the optimizer state on the training device: set it to none")
    for dtype in ("fp16", "bf16"):
        if str((config.get(dtype) or {}).get("enabled", False)).lower() == "true":
            raise MemoZooError(f"{launch_source()}: DeepSpeed's {dtype} section turns the weights to half precision; "
                               "leave it out and set mixed_precision (task.mixed_precision) instead")
    wanted = {key: getattr(cfg, field) for key, field in RECIPE_OWNED}
    wanted["gradient_clipping"] = cfg.max_grad_norm or 0.0  # DeepSpeed: 0 = no clipping
    for key, field in RECIPE_OWNED:
        value = config.get(key, "auto")
        if value in (None, "auto"):
            config[key] = wanted[key]
        elif float(value) != float(wanted[key]):
            raise MemoZooError(f"{launch_source()}: deepspeed_config {key} is {value}, the recipe's task.{field} "
                               f"{getattr(cfg, field)}; the recipe owns it: leave {key} out of the config file (or "
                               f"'auto') or set task.{field}={value}")
    total = cfg.batch_size * cfg.grad_accumulation * world
    if config.get("train_batch_size", "auto") in (None, "auto"):
        config["train_batch_size"] = total
    elif int(config["train_batch_size"]) != total:
        raise MemoZooError(f"{launch_source()}: deepspeed_config train_batch_size is {config['train_batch_size']}, "
                           f"but task.batch_size x task.grad_accumulation x processes is {total}")


def _autocast(accelerator: Any, precision: str, device: torch.device, deepspeed: bool) -> Callable[[], Any]:
    """The autocast of a forward: accelerate's, or under DeepSpeed torch's own over the fp32 weights."""
    if not deepspeed:
        return accelerator.autocast
    if precision == "no":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return partial(torch.autocast, device_type=device.type, dtype=dtype)
