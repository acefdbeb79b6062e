"""The callbacks of a training run: atomic and periodic checkpoints, stopping on a signal, a new
epoch's homographies, rank agreement after DDP, throughput; and the data loader whose workers
leave signals to the training process."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import torch
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from torch_geometric.loader import DataLoader




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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal(Callback):
    """SIGINT (Ctrl-C) or SIGTERM (``timeout``, SLURM, ``kill``, ``kill -TERM -PGID``): finish the
    step under way, write ``last.ckpt`` at once (``save_now``), skip the validation Lightning would
    run before stopping, and stop; ``LastCheckpoint`` writes it again at the end of training and the
    loggers flush, so nothing is lost and ``--resume last`` continues from that step. Under DDP all
    ranks stop at the same step, whichever ranks got the signal. A signal during a validation stops
    at the next training step. Later signals change nothing: the first one's save must finish
    (``timeout`` and SLURM send TERM to the process group and to the process, so a run gets two or
    more; a run that must die at once takes SIGKILL).

    Used as a context manager around the whole run; ``take_over(trainer)`` keeps Lightning from
    installing its own SIGTERM handler, which would end ``fit`` with an exception (exit status 0)
    before any checkpoint is written."""

    def __init__(self, save_now=None):
        self.signum = None
        self.save_now = save_now  # e.g. LastCheckpoint.save: called once, at the end of the step under way
        self._stopping = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is None:  # the first; the ones after it must not abort the save it starts
            self.signum = signum

    def __enter__(self):
        for s in STOP_SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    @staticmethod
    def take_over(trainer) -> None:
        connector = getattr(trainer, "_signal_connector", None)
        if connector is not None:
            connector.register_signal_handlers = lambda: None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self._stopping:
            return
        # every rank takes the decision at the same step (a signal may reach only rank 0, or the
        # ranks one step apart): one tiny all-reduce under DDP, nothing on one device
        if not trainer.strategy.reduce_boolean_decision(self.signum is not None, all=False):
            return
        self._stopping = trainer.should_stop = True
        if self.save_now is not None:  # now, before anything else: a scheduler's SIGKILL may follow its SIGTERM within seconds
            self.save_now(trainer)
        epoch_loop = getattr(trainer.fit_loop, "epoch_loop", None)
        if hasattr(epoch_loop, "_skip_next_val"):  # Lightning validates before it stops; not now
            epoch_loop._skip_next_val = True


def quiet_worker(worker_id: int) -> None:
    """Start of a data-loading worker: SIGINT and SIGTERM are for the training process, which
    stops the workers itself. A signal sent to the whole process group (Ctrl-C, ``timeout``,
    SLURM) would otherwise kill them mid-batch and end the run in a traceback, unsaved."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)  # also drops one that arrived while blocked (see SignalSafeLoader)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if os.environ.get("PL_SEED_WORKERS") == "1":  # what Lightning's seed_everything(workers=True) would have installed
        from lightning.fabric.utilities.seed import pl_worker_init_function  # noqa: PLC0415

        pl_worker_init_function(worker_id)


class SignalSafeLoader(DataLoader):
    """The PyG ``DataLoader`` whose workers start with SIGINT and SIGTERM blocked (a signal during
    their start waits in the training process instead); give it ``worker_init_fn=quiet_worker``,
    which makes them ignore both from their first line on. (No ``__init__`` of its own: Lightning
    re-creates loaders from their ``__init__`` arguments to add a DDP sampler.)"""

    def _get_iterator(self):
        if self.num_workers == 0:
            return super()._get_iterator()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return super()._get_iterator()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class EpochSeed(Callback):
    """A new epoch draws new homographies: item i of epoch e depends on (seed, e, i). Set in the
    main process before the epoch's (non-persistent) workers copy the dataset."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_train_epoch_start(self, trainer, module):
        if hasattr(self.dataset, "set_epoch"):  # fixed examples (a bank's patches) have no epochs of their own
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


class ValidationLine(Callback):
    """One line per validation (step, examples seen, minutes, the metrics), so that a run followed in
    a log file (nohup, SLURM, CI: no progress bar there) shows how it goes. ``unit``: what an
    example is (pairs, patches)."""

    def __init__(self, batch_size: int, unit: str = "pairs"):
        self.batch_size, self.unit, self.start = batch_size, unit, time.monotonic()

    def on_validation_end(self, trainer, module):
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val/", "baseline/", "train/loss"))}
        parts = [f"step {trainer.global_step}", f"{self.unit} {trainer.global_step * self.batch_size * trainer.world_size}",
                 f"{(time.monotonic() - self.start) / 60:.1f} min"] + [f"{k} {v:.4g}" for k, v in sorted(m.items())]
        print("  ".join(parts), flush=True)


class Throughput(Callback):
    """``train/examples_per_s``: pairs (a batch of graphs) or patches (a batch of tensors) per second."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        size = int(batch.num_graphs) if hasattr(batch, "num_graphs") else len(batch[-1])
        module.log("train/examples_per_s", size / (time.perf_counter() - self._t), batch_size=size)
