"""The training loop: ``train(TrainConfig) -> TrainResult``.

One iteration = one optimiser step on one batch per process.  Around it:

* the learning rate is set from the schedule (a function of the iteration);
* validation every ``val_interval`` iterations and at the end, on the eval loop
  (:mod:`fcn_edge.train.validate`); ``best.pt`` keeps the best mean IU, ``last.pt``
  the latest state with everything needed to resume;
* Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes a resumable
  ``last.pt`` and returns (``TrainResult.interrupted``); a second Ctrl-C stops at once;
* a loss that is NaN or infinite stops the run with one sentence saying where and
  what to try (:class:`TrainingDiverged`), the last good checkpoint left as it was;
* under torchrun every process reaches the same decision at the same iteration:
  the stop request and "do all processes have a batch?" are summed over processes
  before the step, the loss and its finiteness after the forward pass.

Resuming restores the model, the optimiser, the gradient scaler, the iteration (the
schedule follows from it), every process's random generators and the position in the
epoch's data order, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcn_edge import __version__
from fcn_edge.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fcn_edge.data.torch_adapter import TorchSegmentationDataset
from fcn_edge.errors import ArtifactError, DataError, FcnEdgeError
from fcn_edge.fileio import atomic_write_text, check_writable_destination
from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.progress import progress
from fcn_edge.train import distributed
from fcn_edge.train.config import ConfigError, ResolvedConfig, TrainConfig, finish_resolution, resolve_config
from fcn_edge.train.data import ResumableSampler, epoch_loader, open_split, train_transform
from fcn_edge.train.init import ClassFacts, ModelStart, initial_model
from fcn_edge.train.logs import TrainLog
from fcn_edge.train.loss import segmentation_loss
from fcn_edge.train.optim import Schedule, build_optimizer
from fcn_edge.train.state import capture_rng, restore_rng, seed_everything, to_plain
from fcn_edge.train.validate import validate

log = logging.getLogger("fcn_edge.train")

DEFAULT_OUT = "runs/train"
# Fields a resumed run takes from the new command line; everything else comes from the checkpoint.
RESUME_MACHINERY = ("workers", "device", "threads", "progress", "stop_at", "tensorboard", "log_interval",
                    "val_batch_size", "overwrite")


class TrainingDiverged(FcnEdgeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """What a run produced.  ``model_path`` is the checkpoint to deploy (best.pt, else last.pt)."""

    out: Path
    best_path: Path | None
    last_path: Path | None
    iterations: int                       # iterations done in total (resumed runs included)
    total_iterations: int
    best_mean_iu: float | None
    best_iteration: int | None
    final_scores: dict[str, Any] | None
    losses: list[tuple[int, float]] = field(default_factory=list)   # (iteration, loss) of this call's steps
    validations: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    skipped_batches: int = 0
    world_size: int = 1
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def model_path(self) -> Path | None:
        return self.best_path or self.last_path


class StopRequest:
    """Set by SIGINT/SIGTERM; the loop stops cleanly at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            self.uninstall()
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        log.warning("%s received: finishing this step and saving a resumable checkpoint "
                    "(press Ctrl-C again to stop at once)", self.signal_name)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) training as ``config`` says; see the module doc.

    Under ``torchrun`` every process calls this; only rank 0 writes files.  Errors a
    user can fix raise :class:`FcnEdgeError` with one sentence.
    """
    context = distributed.setup(config.device)
    try:
        return _Run(config, context).run()
    finally:
        distributed.teardown(context)


class _Run:
    def __init__(self, config: TrainConfig, context: distributed.DistContext) -> None:
        self.context = context
        self.device = context.device
        self.last_saved = -1
        self.resolved, self.resume_ckpt = resolve_run(config)
        self.cfg = self.resolved.config
        self.out = Path(self.cfg.out or DEFAULT_OUT)

    # ------------------------------------------------------------------ setup
    def run(self) -> TrainResult:
        cfg = self.cfg
        threads_before = torch.get_num_threads()
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads_before)  # a library call leaves the process as it found it

    def _run(self) -> TrainResult:
        cfg, ctx = self.cfg, self.context
        amp_wanted = self.resolved.amp
        if amp_wanted and self.device.type != "cuda":
            raise ConfigError("--amp (mixed precision) needs a CUDA device: use --device cuda, or drop --amp on CPU")
        self.amp = bool(amp_wanted if amp_wanted is not None else self.device.type == "cuda")
        seed_everything(cfg.seed + ctx.rank)
        self._open_data()
        self._build_model()
        self._prepare_outputs()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.device.type == "cuda")
        self.schedule = Schedule.from_recipe(self.resolved.recipe, self.resolved.total_iterations)
        self.iteration = 0
        self.best_mean_iu: float | None = None
        self.best_iteration: int | None = None
        self.last_scores: dict[str, Any] | None = None
        self.validations: list[dict[str, Any]] = []
        if self.resume_ckpt is not None:
            self._restore(self.resume_ckpt.resume or {})
        self.logger = TrainLog(self.out, resume_from=self.iteration if self.resume_ckpt else None,
                               tensorboard=cfg.tensorboard) if ctx.is_main else None
        stop = StopRequest()
        stop.install()
        try:
            return self._loop(stop)
        finally:
            stop.uninstall()
            if self.logger is not None:
                self.logger.close()

    def _open_data(self) -> None:
        cfg, resolved = self.cfg, self.resolved
        if cfg.data is None:
            raise ConfigError("no training data: pass --data DIR")
        self.train_set = open_split(cfg.data, cfg.train_split, skip_bad_data=cfg.skip_bad_data,
                                    num_classes=cfg.num_classes)
        if self.train_set.num_classes is None:
            raise DataError(f"{self.train_set.name} does not say how many classes it has: add a dataset.json or "
                            "classes.txt beside it, or pass --num-classes K")
        if not self.train_set.has_masks:
            raise DataError(f"{self.train_set.name} has images without masks; training needs a mask per image")
        self.facts = ClassFacts.from_dataset(self.train_set)
        self.val_set = None
        if cfg.val_split:
            try:
                self.val_set = open_split(cfg.data, cfg.val_split, skip_bad_data=cfg.skip_bad_data,
                                          num_classes=self.facts.num_classes)
            except DataError as exc:
                raise DataError(f"validation split '{cfg.val_split}': {exc} (pass --val-split none to train "
                                "without validation)") from None
        sampler_probe = ResumableSampler(range(len(self.train_set)), num_replicas=self.context.world_size,
                                         rank=self.context.rank, seed=cfg.seed)
        per_process = sampler_probe.num_samples
        finish_resolution(resolved, per_process, per_process // resolved.batch_size)

    def _build_model(self) -> None:
        cfg, ctx = self.cfg, self.context
        if self.resume_ckpt is not None:
            ckpt = self.resume_ckpt
            if ckpt.info.num_classes != self.facts.num_classes:
                raise ArtifactError(f"{cfg.resume} was trained for {ckpt.info.num_classes} classes but "
                                    f"{self.train_set.name} has {self.facts.num_classes}; resume with the same data")
            model = ckpt.build_model()
            start = ModelStart(model, ckpt.info, dict(ckpt.training.get("init") or {}))
        else:
            start = initial_model(self.resolved, self.facts)
        self.info: ModelInfo = start.info
        self.init_source = start.source
        module = start.model.to(self.device)
        self.optimizer = build_optimizer(module, self.resolved.recipe)
        self.module = module
        if ctx.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.model: nn.Module = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
        else:
            self.model = module
        transform = train_transform(self.resolved.crop, self.resolved.scale_range, self.resolved.flip,
                                    self.info.preprocessing, self.facts.ignore_index)
        self.train_torch = TorchSegmentationDataset(self.train_set, transform, self.info.preprocessing, cfg.seed)
        self.sampler = ResumableSampler(self.train_torch, num_replicas=ctx.world_size, rank=ctx.rank, seed=cfg.seed)

    def _prepare_outputs(self) -> None:
        """Check and create ``out`` (rank 0); every rank learns whether that failed.

        An earlier run's best.pt/last.pt are kept until this run has written a complete
        checkpoint of its own (``--overwrite``), so a run that dies early destroys nothing.
        """
        cfg, ctx = self.cfg, self.context
        problem = None
        self.stale: set[str] = set()
        if ctx.is_main:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                check_writable_destination(self.out / "last.pt")
                existing = {name for name in ("last.pt", "best.pt") if (self.out / name).exists()}
                if self.resume_ckpt is None and existing and not cfg.overwrite:
                    raise FcnEdgeError(f"{self.out} already holds a training run (last.pt/best.pt): continue it with "
                                       f"--resume {self.out / 'last.pt'}, replace it with --overwrite, or choose "
                                       "another --out")
                if self.resume_ckpt is None:
                    self.stale = existing & {"best.pt"}  # last.pt is replaced by this run's first save
                atomic_write_text(self.out / "config.json", json.dumps(self.resolved.to_dict(), indent=2) + "\n")
            except (FcnEdgeError, OSError) as exc:
                problem = str(exc) if isinstance(exc, FcnEdgeError) else f"cannot use --out {self.out}: {exc}"
        problem = ctx.broadcast_object(problem)
        if problem:
            raise FcnEdgeError(problem)

    def _restore(self, resume: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(resume["optimizer"])
        if resume.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(resume["scaler"])
        self.iteration = int(resume["iteration"])
        self.best_mean_iu = resume.get("best_mean_iu")
        self.best_iteration = resume.get("best_iteration")
        self.last_scores = resume.get("last_scores")
        states = resume.get("rng") or []
        if len(states) != self.context.world_size:
            log.warning("the checkpoint was written by %d process(es) and this run has %d: random streams "
                        "(dropout) restart, so the continuation will not repeat the original run exactly",
                        len(states), self.context.world_size)
        if self.context.rank < len(states):
            restore_rng(states[self.context.rank], self.device)
        log.info("resuming %s at iteration %d of %d", self.cfg.resume, self.iteration,
                 self.resolved.total_iterations)

    # ------------------------------------------------------------------ loop
    def _loop(self, stop: StopRequest) -> TrainResult:
        cfg, ctx, resolved = self.cfg, self.context, self.resolved
        total = resolved.total_iterations
        steps = resolved.steps_per_epoch
        batch_size = resolved.batch_size
        losses: list[tuple[int, float]] = []
        skipped = 0
        started = time.perf_counter()
        interval_loss, interval_count, interval_images, interval_start = 0.0, 0, 0, time.perf_counter()
        smoothed: float | None = None
        interrupted = False
        if ctx.is_main:
            log.info("training %s (width %g, %s geometry, %d classes) on %s: %d iterations of %d image(s) x %d "
                     "process(es), %d per epoch; recipe %s, %s lr %.3g, %s loss%s", self.info.arch, self.info.width,
                     self.info.geometry, self.info.num_classes, self.device, total, batch_size, ctx.world_size,
                     steps, resolved.recipe.name, resolved.optimizer, resolved.lr, resolved.loss,
                     ", mixed precision" if self.amp else "")
        autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if self.amp else nullcontext
        bar = progress(total=total, initial=self.iteration, desc=f"train {self.info.arch}", unit="it",
                       disable=not (ctx.is_main and cfg.progress))
        self.model.train()
        try:
            while self.iteration < total and not interrupted:
                epoch, position = divmod(self.iteration, steps)
                self.sampler.set_position(epoch, position * batch_size)
                loader = epoch_loader(self.train_torch, self.sampler, batch_size=batch_size, workers=cfg.workers,
                                      seed=cfg.seed, epoch=epoch, pin_memory=self.device.type == "cuda")
                for batch in loader:
                    stop_now, everyone_has_batch = self._step_flags(stop, batch is not None)
                    if stop_now:
                        interrupted = True
                        break
                    if not everyone_has_batch:
                        skipped += 1
                        self.iteration += 1
                        bar.update(1)
                    else:
                        lr = self.schedule.apply(self.optimizer, self.iteration)
                        loss_value = self._step(batch, autocast)
                        self.iteration += 1
                        losses.append((self.iteration, loss_value))
                        smoothed = loss_value if smoothed is None else 0.9 * smoothed + 0.1 * loss_value
                        interval_loss += loss_value
                        interval_count += 1
                        interval_images += int(batch["image"].shape[0]) * ctx.world_size
                        bar.set_postfix(loss=f"{smoothed:.4g}", lr=f"{lr:.3g}", refresh=False)
                        bar.update(1)
                        if self.iteration % cfg.log_interval == 0 and self.logger is not None:
                            now = time.perf_counter()
                            self.logger.row(iteration=self.iteration, epoch=self.iteration / steps, phase="train",
                                            lr=lr, loss=interval_loss / max(1, interval_count),
                                            images_per_s=interval_images / max(1e-9, now - interval_start),
                                            elapsed_s=now - started)
                            interval_loss, interval_count, interval_images, interval_start = 0.0, 0, 0, now
                    if self.iteration % resolved.val_interval == 0 or self.iteration == total:
                        self._validate_and_save(started, bar)
                    if cfg.stop_at is not None and self.iteration >= cfg.stop_at and self.iteration < total:
                        interrupted = True
                        break
                    if self.iteration >= total:
                        break
                del loader
        finally:
            bar.close()
        if self.last_saved != self.iteration:
            self._save(best=False, started=started)
        if interrupted:
            if ctx.is_main:
                reason = stop.signal_name or f"--stop-at {cfg.stop_at}"
                log.warning("stopped at iteration %d of %d (%s); continue with: fcn-edge train --resume %s",
                            self.iteration, total, reason, self.out / "last.pt")
        seconds = time.perf_counter() - started
        best_path = self.out / "best.pt"
        return TrainResult(
            out=self.out, best_path=best_path if best_path.is_file() else None, last_path=self.out / "last.pt",
            iterations=self.iteration, total_iterations=total, best_mean_iu=self.best_mean_iu,
            best_iteration=self.best_iteration, final_scores=self.last_scores, losses=losses,
            validations=self.validations, seconds=seconds, interrupted=interrupted, skipped_batches=skipped,
            world_size=ctx.world_size, config=self.resolved.to_dict())

    def _step_flags(self, stop: StopRequest, has_batch: bool) -> tuple[bool, bool]:
        """(stop now, every process has a batch), the same on every process.

        Any process asked to stop stops them all at this step; a batch made only of
        skipped (bad) images on any process makes every process skip the step, as DDP
        needs all of them in each backward pass.
        """
        if not self.context.distributed:
            return stop.requested, has_batch
        flags = torch.tensor([1.0 if stop.requested else 0.0, 1.0 if has_batch else 0.0], dtype=torch.float64)
        self.context.all_reduce_sum(flags)
        return bool(flags[0].item() > 0), int(flags[1].item()) == self.context.world_size

    def _step(self, batch: dict, autocast) -> float:
        ctx = self.context
        images = batch["image"].to(self.device, non_blocking=True)
        masks = batch["mask"].to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = self.model(images)
        loss = segmentation_loss(logits, masks, reduction=self.resolved.loss, ignore_index=self.facts.ignore_index)
        value = loss.detach().double()
        if ctx.distributed:
            stats = torch.stack([value, (~torch.isfinite(value)).to(torch.float64)])
            ctx.all_reduce_sum(stats)
            loss_value = float(stats[0].item()) / ctx.world_size
            finite = stats[1].item() == 0 and math.isfinite(loss_value)
        else:
            loss_value = float(value.item())
            finite = math.isfinite(loss_value)
        if not finite:
            self._diverged(loss_value)
        self.scaler.scale(loss).backward()
        if self.resolved.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.resolved.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss_value

    def _diverged(self, loss_value: float) -> None:
        kind = "NaN" if math.isnan(loss_value) else "infinite"
        lr = self.schedule.lr(self.iteration)
        last = self.out / "last.pt"
        keep = f"; the last good checkpoint is {last}" if last.is_file() else ""
        raise TrainingDiverged(
            f"the loss became {kind} at iteration {self.iteration + 1} (lr {lr:.3g}): lower the learning rate "
            f"(--lr), check that the masks hold class indices 0-{self.facts.num_classes - 1} or "
            f"{self.facts.ignore_index}" + (", or train without --amp" if self.amp else "") + keep)

    # ------------------------------------------------------------------ validation and checkpoints
    def _validate_and_save(self, started: float, bar) -> None:
        improved = False
        if self.val_set is not None:
            matrix = validate(self.module, self.info, self.val_set, self.context, amp=self.amp,
                              batch_size=self.cfg.val_batch_size, workers=min(self.cfg.workers, 4),
                              limit=self.cfg.val_limit)
            scores = matrix.scores()
            self.last_scores = scores
            mean_iu = scores["mean_iu"]
            improved = not math.isnan(mean_iu) and (self.best_mean_iu is None or mean_iu > self.best_mean_iu)
            if improved:
                self.best_mean_iu, self.best_iteration = float(mean_iu), self.iteration
            record = {"iteration": self.iteration, **{k: scores[k] for k in
                                                      ("pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu")}}
            self.validations.append({**record, "elapsed_s": time.perf_counter() - started})
            if self.logger is not None:
                self.logger.row(phase="val", epoch=self.iteration / self.resolved.steps_per_epoch,
                                elapsed_s=time.perf_counter() - started, **record)
            if self.context.is_main:
                message = (f"iteration {self.iteration}/{self.resolved.total_iterations}: val mean IU {mean_iu:.4f} "
                           f"(best {self.best_mean_iu if self.best_mean_iu is not None else float('nan'):.4f} "
                           f"at {self.best_iteration}), pixel acc {scores['pixel_accuracy']:.4f}")
                if bar.disable:
                    log.info(message)
                else:
                    bar.write(message)
        self._save(best=improved, started=started)

    def _training_facts(self, started: float) -> dict[str, Any]:
        return {
            "config": self.resolved.to_dict(),
            "iteration": self.iteration,
            "epoch": self.iteration / max(1, self.resolved.steps_per_epoch),
            "metrics": _plain_scores(self.last_scores),
            "best": {"mean_iu": self.best_mean_iu, "iteration": self.best_iteration},
            "dataset": self.train_set.describe(),
            "val_dataset": self.val_set.describe() if self.val_set is not None else None,
            "init": self.init_source,
            "world_size": self.context.world_size,
            "device": str(self.device),
            "amp": self.amp,
            "torch": str(torch.__version__),
            "fcn_edge_version": __version__,
        }

    def _save(self, *, best: bool, started: float) -> None:
        """last.pt (with resume state) always, best.pt when the mean IU improved.  Every rank joins."""
        ctx = self.context
        rng_states = ctx.gather_objects(capture_rng(self.device))
        self.last_saved = self.iteration
        if not ctx.is_main:
            ctx.barrier()
            return
        state = {k: v.detach().cpu() for k, v in self.module.state_dict().items()}
        training = to_plain(self._training_facts(started))
        resume = to_plain({
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "schedule": self.schedule.state_dict(),
            "iteration": self.iteration,
            "best_mean_iu": self.best_mean_iu,
            "best_iteration": self.best_iteration,
            "last_scores": _plain_scores(self.last_scores),
            "rng": rng_states,
            "world_size": ctx.world_size,
        })
        if best:
            save_checkpoint(self.out / "best.pt", Checkpoint(self.info, state, training))
            self.stale.discard("best.pt")
        save_checkpoint(self.out / "last.pt", Checkpoint(self.info, state, training, resume))
        for name in self.stale:  # the overwritten run's best.pt: this run now has a checkpoint of its own
            (self.out / name).unlink(missing_ok=True)
        self.stale.clear()
        ctx.barrier()


def _plain_scores(scores: dict[str, Any] | None) -> dict[str, Any] | None:
    if scores is None:
        return None
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in scores.items()}


def resolve_run(config: TrainConfig) -> tuple[ResolvedConfig, Checkpoint | None]:
    """The config a run will use: ``config`` over its recipe, or, with ``resume``, the checkpoint's.

    Returns the resolved config and the loaded resume checkpoint (None for a new run).
    """
    if not config.resume:
        return resolve_config(config), None
    ckpt = load_checkpoint(config.resume)
    if not ckpt.resume:
        raise ArtifactError(f"{config.resume} holds no resume state (it is a best.pt or an exported model); "
                            "resume from the run's last.pt, or start anew with --init-from")
    return _resumed_config(ckpt, config), ckpt


def _resumed_config(ckpt: Checkpoint, given: TrainConfig) -> ResolvedConfig:
    stored = ckpt.training.get("config")
    if not isinstance(stored, dict):
        raise ArtifactError(f"{given.resume} has no training config: it was not written by fcn-edge train")
    resolved = ResolvedConfig.from_dict(stored)
    config = resolved.config
    for name in RESUME_MACHINERY:
        setattr(config, name, getattr(given, name))
    if given.data is not None:
        config.data = given.data
    config.out = given.out or str(Path(given.resume).parent)
    config.resume = given.resume
    config.vgg16 = config.init_from = None
    return resolved
