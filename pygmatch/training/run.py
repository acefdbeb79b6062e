"""``train(cfg)``: run a training described by a ``TrainConfig`` (the graph network) or a
``RefinerTrainConfig`` (the sub-pixel refiner) — one loop for both; returns the run folder."""
from __future__ import annotations

import math
import os
import shutil
import signal
import warnings
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ..checkpoint import RUN_FILES, load_weights, model_state, read_checkpoint, resolve_checkpoint, training_checkpoint
from ..data.bank import FeatureBank, source_files
from ..data.images import EMBEDDED_IMAGES
from ..errors import Interrupted, PygmatchError
from ..files import make_folder, writable_folder, write_text
from .callbacks import (AtomicCheckpointIO, EpochSeed, LastCheckpoint, RankAgreement, SignalSafeLoader, StopOnSignal, Throughput,
                        ValidationLine,
                        quiet_worker)
from ..refinement import LearnedRefiner
from .config import RefinerTrainConfig, RunSpec, TrainConfig
from .curves import write_curves
from .data import BankGraphs, ImageGraphs, JoinedGraphs, feature_stats, in_memory, split_banks
from .scenes import SceneGraphs
from .module import MatcherModule, NonFiniteLoss, RefinerModule, ScheduledModule
from .refiner import refiner_datasets


def check_resume(cfg: RunSpec, out: Path) -> str | None:
    """The checkpoint to resume from (``resume: last`` = the run folder's), checked to hold this
    config's kind of model and architecture; None when not resuming."""
    if not cfg.run.resume:
        return None
    path = out / "last.ckpt" if cfg.run.resume == "last" else Path(cfg.run.resume)
    if not path.is_file():
        if cfg.run.resume == "last" and (out / "config.yaml").is_file():
            raise PygmatchError(f"{path}: no checkpoint to resume from: the run in {out} stopped before it saved one; "
                                "start it again without --resume (same --out)")
        raise PygmatchError(f"{path}: no checkpoint to resume from")
    run = training_checkpoint(read_checkpoint(path))
    kind = "refiner" if isinstance(cfg, RefinerTrainConfig) else "matcher"
    if run is None or run[0] != kind:
        raise PygmatchError(f"{path}: not a checkpoint of a {'train.refiner' if kind == 'refiner' else 'train.run'} run")
    mine = cfg.model.architecture()
    theirs = type(cfg.model)(**{k: v for k, v in run[1].items() if k in mine}).architecture()
    diff = {k: (v, mine[k]) for k, v in theirs.items() if mine[k] != v}
    if diff:
        raise PygmatchError(f"{path}: the checkpoint's architecture differs from these flags: " +
                            "; ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in diff.items()))
    return str(path)


RUN_RECORD = (*RUN_FILES, "config.yaml", "curves.png", "ranks.yaml", "csv", "tb")  # what --overwrite replaces


def remove_run(out: Path) -> None:
    """The earlier run's checkpoints, config and logs, so that a replacing run's curves and record
    are its own (the refiner's ``patches/`` stay: they are kept by what they were cut from)."""
    for name in RUN_RECORD:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def first_process() -> bool:
    """Not one of the processes DDP starts for the other ranks (they re-run the command)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def make_datasets(cfg: TrainConfig) -> tuple[BankGraphs | ImageGraphs, BankGraphs | ImageGraphs]:
    """(training pairs, validation pairs): from the banks with each bank's last ``val_pairs`` held
    out, or made on the fly from image folders; validation on ``val_data`` images when given."""
    d, model, seed = cfg.data, cfg.model, cfg.optim.seed
    images = dict(size=tuple(d.size), max_keypoints=d.max_keypoints)
    held_out = []
    if d.bank:
        parts, held_out = split_banks(d.bank, 0 if d.val_data else d.val_pairs, model.features, d.size)
        train_set = BankGraphs(parts, model, cfg.workers, cfg.run.progress)
    else:
        train_set = ImageGraphs(d.data or [EMBEDDED_IMAGES], model, seed, d.pairs_per_image, d.difficulty, **images)
    if held_out:
        val_set = BankGraphs(held_out, model, cfg.workers, cfg.run.progress)
    else:  # fixed pairs, another seed than training's
        val_set = ImageGraphs([d.val_data or EMBEDDED_IMAGES], model, seed + 12345, 1, d.difficulty, max_images=d.val_images, fixed=True,
                              what="--val-data", **images)
    if d.scenes:  # real pairs join the training pairs; validation stays on homography pairs, which measure AUC
        train_set = JoinedGraphs([train_set, SceneGraphs(d.scenes, model, d.scene_pairs, max(d.size), d.max_keypoints, seed,
                                                         cfg.run.progress)])
    seen = source_images(val_set) & source_images(train_set)
    if seen and first_process():
        warnings.warn(f"the validation pairs come from training images ({len(seen)} of them, e.g. {min(map(str, seen))}): the validation "
                      "numbers are not held-out; give --val-data a folder of other images", stacklevel=2)
    return train_set, val_set


def _resolved(files) -> list[Path]:
    folders = {}  # each folder resolved once, not each of 118k COCO files
    for f in map(Path, files):
        if f.parent not in folders:
            folders[f.parent] = f.parent.resolve()
    return [folders[f.parent] / f.name for f in map(Path, files)]


def source_images(dataset: BankGraphs | ImageGraphs) -> set:
    """The images a dataset's pairs are made from, to compare training and validation: files (of
    a bank: the source images of the pairs it takes), or (bank, image index) where a bank's source
    folders are not here."""
    if isinstance(dataset, JoinedGraphs):
        return set().union(*(source_images(part) for part in dataset.datasets))
    if isinstance(dataset, (ImageGraphs, SceneGraphs)):
        return set(_resolved(dataset.files))
    images = set()
    for part in dataset.parts:
        bank = FeatureBank(part.root)
        try:
            files = _resolved(source_files(bank.config.sources))
        except PygmatchError:  # the folders moved: the bank's own pairs can still be compared
            files = []
        per, first = bank.config.shard_pairs, part.first // bank.config.shard_pairs
        shards, taken = bank.shards[first:-(-part.stop // per)], slice(part.first - first * per, part.stop - first * per)
        index, difficulty = (np.concatenate([np.load(s / f"{name}.npy") for s in shards])[taken] for name in ("image", "difficulty"))
        if part.difficulties is not None:
            index = index[np.isin(difficulty, part.difficulties)]
        images |= {files[k] if k < len(files) else (str(bank.root.resolve()), k) for k in map(int, index)}
    return images


def _interrupted(stop: StopOnSignal, out: Path, step: int | None) -> Interrupted:
    name = signal.Signals(stop.signum).name
    if step is None:
        return Interrupted(f"{name}: stopped before the first training step; nothing to continue — run the same command again",
                           128 + stop.signum)
    return Interrupted(f"{name}: stopped at step {step}; saved {out / 'last.ckpt'} — continue with "
                       f"--config {out / 'config.yaml'} --resume last", 128 + stop.signum)


def train(cfg: RunSpec) -> Path:
    """Run the training ``cfg`` describes; returns the run folder (``cfg.run.out``, or
    ``runs/<name>-<time>`` when that is None).

    SIGINT or SIGTERM (to the process or to its whole group, DataLoader workers included) stops
    after the step under way and writes ``last.ckpt``: ``Interrupted`` names it and how to
    continue (``--resume last``). A signal before the first step stops without starting."""
    with StopOnSignal() as stop:
        return _train(cfg, stop)


def total_steps(cfg: RunSpec, examples: int) -> int:
    """The run's optimiser steps: ``max_steps``, or its epochs of full batches (the loader drops the
    last, short one) on each process."""
    world = cfg.run.devices * cfg.run.num_nodes
    return cfg.max_steps or (cfg.optim.epochs or 1) * max(1, examples // (cfg.optim.batch_size * world))


def validation_interval(every: int, total: int) -> int:
    """Steps between validations: at most ``every``, evenly spaced so that the last one falls at the
    end of the run (within a step per validation): the weights a run ends with are always measured,
    and a run shorter than ``every`` validates once, at its end."""
    return max(1, total // math.ceil(total / every))


def matcher_run(cfg: TrainConfig, resume: str | None):
    """(training pairs, validation pairs, ``MatcherModule``, loader workers) of a graph-network run."""
    train_set, val_set = make_datasets(cfg)
    optim = cfg.optim
    module = MatcherModule(asdict(cfg.model), lr=optim.lr, warmup_steps=optim.warmup_steps, total_steps=total_steps(cfg, len(train_set)))
    if cfg.run.init:
        path = resolve_checkpoint(cfg.run.init)
        load_weights(module.model, model_state(read_checkpoint(path), path)[1], path)
    elif not resume:  # the input normalisation, fixed from the training pairs (on the fly: a sample of them)
        mean, std = feature_stats(train_set, len(train_set) if in_memory(train_set) else 32)
        module.model.mean.copy_(mean)
        module.model.std.copy_(std)
    return train_set, val_set, module, 0 if in_memory(train_set) else cfg.workers  # bank and scene graphs are in memory already


def refiner_run(cfg: RefinerTrainConfig, out: Path):
    """(training patches, validation patches, ``RefinerModule``, loader workers) of a refiner run;
    the patches are kept in the run folder's ``patches/``."""
    train_set, val_set = refiner_datasets(cfg, out / "patches")
    optim = cfg.optim
    module = RefinerModule(asdict(cfg.model), lr=optim.lr, warmup_steps=optim.warmup_steps, total_steps=total_steps(cfg, len(train_set)))
    if cfg.run.init:
        module.model.load_state_dict(LearnedRefiner.load(cfg.run.init).state_dict())
    return train_set, val_set, module, 0


def _train(cfg: RunSpec, stop: StopOnSignal) -> Path:
    cfg = cfg.with_out()
    optim, run = cfg.optim, cfg.run
    out = Path(run.out)
    if out.exists() and not out.is_dir():
        raise PygmatchError(f"{out}: exists and is not a folder (--out names the run folder)")
    writable_folder(out, "--out")  # a read-only place: one line now, not a traceback at the first checkpoint
    torch.set_num_threads(run.threads)
    L.seed_everything(optim.seed, workers=True, verbose=False)
    resume = check_resume(cfg, out)
    # DDP starts the other ranks by re-running this command after rank 0 wrote config.yaml: only
    # the first process decides whether the folder is free. A folder with a config.yaml but no
    # checkpoint holds a run that stopped before saving anything: it is free.
    if first_process() and not resume and not run.overwrite and any((out / name).exists() for name in RUN_FILES):
        raise PygmatchError(f"{out}: already holds a run; continue it with --resume last, choose another --out, "
                            "or pass --overwrite to replace it")
    if first_process() and not resume and run.overwrite:
        remove_run(out)
    if isinstance(cfg, RefinerTrainConfig):
        train_set, val_set, module, loader_workers = refiner_run(cfg, out)
    else:
        train_set, val_set, module, loader_workers = matcher_run(cfg, resume)
    world = run.devices * run.num_nodes
    if len(train_set) < optim.batch_size * world:
        raise PygmatchError(f"{train_set!r}: {len(train_set)} examples per epoch, fewer than --batch-size {optim.batch_size} × {world} processes")
    if stop.signum is not None:
        raise _interrupted(stop, out, None)
    make_folder(out, "--out")
    write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return _fit(cfg, module, train_set, val_set, loader_workers, resume, stop)


def _fit(cfg: RunSpec, module: ScheduledModule, train_set, val_set, loader_workers: int, resume: str | None, stop: StopOnSignal) -> Path:
    """The Lightning run itself: loaders, checkpoints, callbacks, loggers, ``fit``."""
    optim, run = cfg.optim, cfg.run
    out, world = Path(run.out), run.devices * run.num_nodes
    max_steps = cfg.max_steps or -1
    loader = dict(batch_size=optim.batch_size, num_workers=loader_workers, worker_init_fn=quiet_worker)
    train_loader = SignalSafeLoader(train_set, shuffle=True, drop_last=True, **loader)
    val_loader = SignalSafeLoader(val_set, shuffle=False, **loader | {"num_workers": 0})
    best = ModelCheckpoint(dirpath=out, filename="best", monitor=module.monitor, mode="max", save_top_k=1, auto_insert_metric_name=False,
                           enable_version_counter=False)
    periodic = LastCheckpoint(out / "last.ckpt", run.ckpt_every_steps, run.ckpt_minutes)
    stop.save_now = periodic.save
    unit = "patches" if isinstance(module, RefinerModule) else "pairs"
    callbacks = [best, periodic, EpochSeed(train_set), stop,
                 LearningRateMonitor("step"), Throughput(), ValidationLine(optim.batch_size, unit), RankAgreement(out)]
    if run.early_stop:
        callbacks.append(EarlyStopping(module.monitor, mode="max", patience=run.early_stop))
    # Lightning's warning about the folder we chose on purpose buries the useful lines
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    # Lightning's own notes on its loading of its own checkpoints and on a deprecated internal: nothing for a user to act on
    warnings.filterwarnings("ignore", message=".*weights_only.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    trainer = L.Trainer(
        default_root_dir=out, max_steps=max_steps, max_epochs=optim.epochs if optim.epochs else (-1 if max_steps > 0 else 1),
        val_check_interval=validation_interval(run.val_every, total_steps(cfg, len(train_set))), check_val_every_n_epoch=None,
        precision=optim.precision, accelerator=run.accelerator, devices=run.devices, num_nodes=run.num_nodes,
        # the messages-off ablation leaves parameters without gradients: let DDP tolerate unused ones
        strategy="ddp_find_unused_parameters_true" if world > 1 else "auto", gradient_clip_val=optim.grad_clip or None, callbacks=callbacks,
        # one CSV per (re)start, csv/version_N/metrics.csv: a resumed run never overwrites the earlier log
        logger=[TensorBoardLogger(out, name="tb", version=""), CSVLogger(out, name="csv", flush_logs_every_n_steps=run.log_every)],
        log_every_n_steps=run.log_every, plugins=[AtomicCheckpointIO()], num_sanity_val_steps=0,
        enable_progress_bar=run.progress, enable_model_summary=False,
    )
    stop.take_over(trainer)  # SIGTERM stays ours: Lightning's handler would exit without a checkpoint
    try:
        print(f"training: {train_set!r}; {max_steps if max_steps > 0 else 'all'} steps; run folder {out}", flush=True)
        trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    except NonFiniteLoss as e:
        last = out / "last.ckpt"
        raise PygmatchError(f"stopped: {e}; the last good checkpoint is {last if last.exists() else 'not written yet'} "
                            f"(try a lower --lr or --grad-clip, then --resume last)") from None
    except OSError as e:  # a disk that filled up or went read-only during the run
        last = out / "last.ckpt"
        raise PygmatchError(f"{getattr(e, 'filename', None) or out}: could not write ({e.strerror or e}); the last good checkpoint is "
                            f"{last if last.exists() else 'not written yet'}") from None
    if trainer.global_rank == 0:
        write_curves(out)
    if stop.signum is not None:
        raise _interrupted(stop, out, trainer.global_step)
    return out
