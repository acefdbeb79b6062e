"""The callbacks of a training run: atomic and periodic checkpoints, stopping on a signal, a new
epoch's homographies, rank agreement after DDP, throughput."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import torch
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from ..data.dataset import BankPairs, HomographyPairs


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file, then rename: a crash or kill -9 never leaves a truncated checkpoint."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)


class LastCheckpoint(Callback):
    """``last.ckpt`` every ``every_steps`` steps and at least every ``every_minutes`` minutes, and
    at the end; never after an exception (the last good one stays)."""

    def __init__(self, path: Path, every_steps: int, every_minutes: float):
        self.path, self.every_steps, self.every_s = path, every_steps, every_minutes * 60
        self._last = time.monotonic()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if (self.every_steps and step % self.every_steps == 0) or time.monotonic() - self._last >= self.every_s:
            self.save(trainer)
            self._last = time.monotonic()

    def on_train_end(self, trainer, module):
        self.save(trainer)

    def save(self, trainer) -> None:
        trainer.save_checkpoint(self.path)
        if trainer.global_rank == 0:  # a line to follow the run by (and for tests to wait on)
            print(f"saved {self.path} at step {trainer.global_step}", flush=True)


class StopOnSignal(Callback):
    """SIGINT (Ctrl-C) or SIGTERM: finish the step under way, stop; ``LastCheckpoint`` then writes
    ``last.ckpt`` at the end of training and the loggers flush, so nothing is lost and
    ``--resume last`` continues from that step. A second signal stops at once."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.signum is not None:
            trainer.should_stop = True

    on_validation_batch_end = on_train_batch_end


class EpochSeed(Callback):
    """A new epoch draws new homographies: item i of epoch e depends on (seed, e, i). Set in the
    main process before the epoch's (non-persistent) workers copy the dataset."""

    def __init__(self, dataset: HomographyPairs | BankPairs):
        self.dataset = dataset

    def on_train_epoch_start(self, trainer, module):
        self.dataset.set_epoch(trainer.current_epoch)


class RankAgreement(Callback):
    """After multi-process training, check that every rank holds the same weights (DDP keeps
    them in step; a mismatch means a broken set-up) and record the per-rank checksums."""

    def __init__(self, out: Path):
        self.out = out

    def on_train_end(self, trainer, module):
        if trainer.world_size < 2:
            return
        flat = torch.cat([p.detach().double().flatten() for p in module.parameters()])
        local = torch.stack([flat.sum(), (flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64)).sum()])
        every = trainer.strategy.all_gather(local.to(module.device)).cpu().reshape(trainer.world_size, 2)
        if trainer.global_rank == 0:
            agree = bool(torch.allclose(every, every[0].expand_as(every), rtol=0, atol=0))
            (self.out / "ranks.yaml").write_text(yaml.safe_dump({"world_size": trainer.world_size, "agree": agree,
                                                                   "checksums": every.tolist()}))
            print(f"{trainer.world_size} ranks {'agree' if agree else 'DISAGREE'} on the weights (checksums in {self.out / 'ranks.yaml'})")


class Throughput(Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        module.log("train/pairs_per_s", batch.num_graphs / (time.perf_counter() - self._t), batch_size=int(batch.num_graphs))
