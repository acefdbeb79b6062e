"""Training with PyTorch Lightning: the module (model + loss + validation metrics + optimiser),
the callbacks, and ``train(config)`` that ``python -m train.run`` calls."""
from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import signal
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch_geometric.loader import DataLoader

from .checkpoint import load_weights, model_state, read_checkpoint
from .data.bank import FeatureBank
from .data.dataset import BankPairs, HomographyPairs
from .data.images import EMBEDDED_IMAGES
from .errors import Interrupted, PygmatchError
from .features import DESCRIPTOR_DIM
from .graphs.registry import graph_config, graph_from_args, num_edge_sets
from .losses import assignment_nll, orthogonality
from .metrics import pair_metrics, summarize
from .nn.config import PRESETS, MatcherConfig
from .nn.model import GraphMatcher

# Lightning's advertisements ("💡 Tip: ...") on every run bury the useful lines
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda record: "💡 Tip" not in record.getMessage())

MONITOR = "val/auc@3"  # the metric the shipped model is judged by


class NonFiniteLoss(RuntimeError):
    pass


def dense_ground_truth(batch, num_pairs: int, n: int, m: int):
    """Ground truth in the padded (B, n, m) layout of the assignment matrix: (3, K) rows
    (pair, i, j) of the matches, and the unmatched masks of both images."""
    def local(batch_vector):  # position of each node inside its own pair
        counts = torch.bincount(batch_vector, minlength=num_pairs)
        return torch.arange(batch_vector.numel(), device=batch_vector.device) - (torch.cumsum(counts, 0) - counts)[batch_vector]

    b_s = batch.x_s_batch if "x_s_batch" in batch else torch.zeros(batch.x_s.size(0), dtype=torch.long)
    b_t = batch.x_t_batch if "x_t_batch" in batch else torch.zeros(batch.x_t.size(0), dtype=torch.long)
    loc_s, loc_t = local(b_s), local(b_t)
    i, j = batch.gt_matches
    pairs = torch.stack([b_s[i], loc_s[i], loc_t[j]])
    un0 = torch.zeros(num_pairs, n, dtype=torch.bool, device=b_s.device)
    un1 = torch.zeros(num_pairs, m, dtype=torch.bool, device=b_s.device)
    un0[b_s, loc_s] = batch.gt_unmatched_s
    un1[b_t, loc_t] = batch.gt_unmatched_t
    return pairs, un0, un1


class MatcherModule(L.LightningModule):
    """Model + loss + the validation metrics of ``eval.coco`` + optimiser and schedule."""

    def __init__(self, model: dict, lr: float = 1e-4, warmup_steps: int = 200, total_steps: int = 10000,
                 ortho_weight: float = 0.0, weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.model = GraphMatcher(MatcherConfig.from_dict(model))
        self._val = []

    def losses(self, batch, out) -> dict:
        la = out["log_assignment"]
        pairs, un0, un1 = dense_ground_truth(batch, la.size(0), la.size(1) - 1, la.size(2) - 1)
        terms = {"nll": assignment_nll(la, pairs, un0, un1)}
        total = terms["nll"]
        layers = out.get("layer_log_assignments", [])
        if layers:
            final0 = la[:, :-1].argmax(-1)
            final1 = la[:, :, :-1].argmax(-2)
            deep, conf, match = [], [], []
            matched0 = torch.zeros_like(un0)
            matched0[pairs[0], pairs[1]] = True
            matched1 = torch.zeros_like(un1)
            matched1[pairs[0], pairs[2]] = True
            m0, m1 = out["mask0"], out["mask1"]
            for k, (lak, (p0, p1)) in enumerate(zip(layers, out["point_logits"])):
                deep.append(assignment_nll(lak, pairs, un0, un1))
                # confidence target: this layer already predicts what the last layer will
                same0 = (lak[:, :-1].argmax(-1) == final0)[m0].float()
                same1 = (lak[:, :, :-1].argmax(-2) == final1)[m1].float()
                conf.append(F.binary_cross_entropy_with_logits(torch.cat([p0[:, 0], p1[:, 0]]), torch.cat([same0, same1])))
                known0, known1 = (matched0 | un0)[m0], (matched1 | un1)[m1]
                logits = torch.cat([p0[known0, 1], p1[known1, 1]])
                target = torch.cat([matched0[m0][known0], matched1[m1][known1]]).float()
                if logits.numel():
                    match.append(F.binary_cross_entropy_with_logits(logits, target))
            terms["deep_nll"] = torch.stack(deep).mean()
            terms["confidence"] = torch.stack(conf).mean()
            terms["matchability"] = torch.stack(match).mean() if match else la.sum() * 0
            total = (total + terms["deep_nll"] * len(deep)) / (len(deep) + 1) + terms["confidence"] + terms["matchability"]
        if self.hparams.ortho_weight > 0 and len(out["branches"][0][0]) > 1:
            per_layer = [orthogonality(m0) + orthogonality(m1) for m0, m1 in out["branches"]]
            terms["ortho"] = torch.stack(per_layer).mean() / 2
            total = total + self.hparams.ortho_weight * terms["ortho"]
        terms["loss"] = total
        return terms

    def training_step(self, batch, batch_idx):
        out = self.model(batch)
        terms = self.losses(batch, out)
        if not torch.isfinite(terms["loss"]):
            raise NonFiniteLoss(f"the loss became {terms['loss'].item()} at step {self.global_step}")
        bs = int(batch.num_graphs)
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, prog_bar=False, batch_size=bs)
        self.log("loss", terms["loss"].detach(), prog_bar=True, batch_size=bs, logger=False)
        if len(out["branches"][0][0]) > 1:  # how similar the multi-scale branches are
            cos = [F.cosine_similarity(a, b, dim=-1).abs().mean() for m0, _ in out["branches"] for a, b in zip(m0[:-1], m0[1:])]
            self.log("train/branch_abs_cos", torch.stack(cos).mean().detach(), batch_size=bs)
        # unreadable images passed over, summed per epoch
        self.log("data/skipped_images", batch.skipped_images.sum().float(), reduce_fx="sum", on_step=False, on_epoch=True, batch_size=bs)
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(batch)
        terms = self.losses(batch, out)
        self.log("val/loss", terms["loss"], batch_size=int(batch.num_graphs), sync_dist=True)
        self._val.extend(pair_results(batch, out))

    def on_validation_epoch_end(self):
        if not self._val:
            return
        s = summarize(self._val)
        self._val = []
        keys = ("precision", "recall", "auc@1", "auc@3", "auc@5", "auc@10", "matches")
        self.log_dict({f"val/{k}": float(s[k]) if math.isfinite(s[k]) else 0.0 for k in keys}, sync_dist=True, prog_bar=False)
        self.log("auc3", float(s["auc@3"]), prog_bar=True, logger=False, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)

        def schedule(step):  # linear warm-up, then cosine decay to 10 %
            if step < hp.warmup_steps:
                return (step + 1) / hp.warmup_steps
            t = min(1.0, (step - hp.warmup_steps) / max(1, hp.total_steps - hp.warmup_steps))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def pair_results(batch, out) -> list[dict]:
    """Per-pair metrics of a batch, with the same code as ``eval.coco``."""
    results = []
    b_s, b_t = out["batch0"].cpu(), out["batch1"].cpu()
    pos_s, pos_t = batch.pos_s.cpu().numpy(), batch.pos_t.cpu().numpy()
    gt = batch.gt_matches.cpu()
    for b in range(out["matches0"].size(0)):
        sel_s, sel_t = (b_s == b).nonzero().flatten(), (b_t == b).nonzero().flatten()
        s0, t0 = (int(sel_s[0]) if sel_s.numel() else 0), (int(sel_t[0]) if sel_t.numel() else 0)
        n = sel_s.numel()
        m0 = out["matches0"][b, :n].cpu().numpy()
        i = np.nonzero(m0 >= 0)[0]
        matches = np.stack([i, m0[i]], 1)
        scores = out["scores0"][b, :n].detach().float().cpu().numpy()[i]
        gt0 = np.full(n, -1)
        in_pair = (gt[0] >= s0) & (gt[0] < s0 + n)
        gt0[(gt[0, in_pair] - s0).numpy()] = (gt[1, in_pair] - t0).numpy()
        size = tuple(int(v) for v in batch.image_size_s.reshape(-1, 2)[b].tolist())
        results.append(pair_metrics(matches, scores, pos_s[s0:s0 + n], pos_t[t0:t0 + sel_t.numel()], gt0,
                                    batch.H_0to1[b].cpu().double().numpy(), size))
    return results


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
            trainer.save_checkpoint(self.path)
            self._last = time.monotonic()

    def on_train_end(self, trainer, module):
        trainer.save_checkpoint(self.path)


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


def model_config(cfg: dict) -> MatcherConfig:
    """The model's config from the resolved training flags (a preset, then explicit sizes)."""
    if cfg["preset"] not in PRESETS:
        raise PygmatchError(f"unknown preset {cfg['preset']!r}; choose from {', '.join(PRESETS)}")
    sizes = dict(PRESETS[cfg["preset"]])
    sizes.update({k: cfg[k] for k in ("dim", "layers", "heads") if cfg.get(k) is not None})
    graph = graph_config(argparse.Namespace(**cfg))
    return MatcherConfig(descriptor_dim=DESCRIPTOR_DIM[cfg["features"]], conv=cfg["conv"], assignment=cfg["assignment"],
                         positional=cfg["positional"], sinkhorn_iters=cfg["sinkhorn_iters"], deep_supervision=cfg["deep_supervision"],
                         descriptor_prior=cfg.get("descriptor_prior", True),
                         num_scales=num_edge_sets(graph), graph=graph, features=cfg["features"], max_keypoints=cfg["max_keypoints"],
                         graph_update=cfg.get("graph_update", "static"), value_update=cfg.get("value_update", "every"),
                         dense_warmup_layers=cfg.get("dense_warmup_layers", 0), **sizes)


def make_datasets(cfg: dict):
    intra, cross = graph_from_args(argparse.Namespace(**cfg))
    common = dict(graph=intra, cross=cross, features=cfg["features"], max_keypoints=cfg["max_keypoints"], size=tuple(cfg["size"]),
                  difficulty=cfg["difficulty"])
    gt = dict(match_px=cfg.get("gt_match_px", 3.0), unmatched_px=cfg.get("gt_unmatched_px", 5.0))
    if cfg.get("bank"):
        bank = FeatureBank(cfg["bank"])
        bank.check_compatible(cfg["features"], cfg["max_keypoints"], tuple(cfg["size"]))
        augment = tuple(a.strip() for a in str(cfg.get("augment") or "").split(",") if a.strip() not in ("", "none"))
        train = BankPairs(bank, graph=intra, cross=cross, max_keypoints=cfg["max_keypoints"], augment=augment, seed=cfg["seed"], **gt)
    else:
        train = HomographyPairs(cfg["data"] or EMBEDDED_IMAGES, seed=cfg["seed"], pairs_per_image=cfg["pairs_per_image"], **common, **gt)
    # Validation keeps eval.coco's ground truth (3 / 5 px), so its recall means what eval.coco's does.
    val = HomographyPairs(cfg["val_data"] or EMBEDDED_IMAGES, seed=cfg["seed"] + 12345, fixed=True, cache=True,
                          max_images=cfg["val_images"], **common)
    return train, val


def write_curves(run: Path) -> Path | None:
    """training loss and validation AUC against steps, from the CSV log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for path in sorted((run / "csv").glob("version_*/metrics.csv")) for r in csv.DictReader(path.open())]
    if not rows:
        return None
    series = {}
    for r in rows:
        for key in ("train/loss", "val/loss", "val/auc@3", "val/auc@5", "val/auc@10", "val/precision", "val/recall"):
            if r.get(key) not in (None, ""):
                series.setdefault(key, []).append((int(r["step"]), float(r[key])))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("train/loss", "val/loss"):
        if key in series:
            steps, vals = zip(*series[key])
            if key == "train/loss" and len(vals) > 20:  # smooth the noisy per-step loss
                w = max(1, len(vals) // 50)
                vals = np.convolve(vals, np.ones(w) / w, mode="valid")
                steps = steps[w - 1 :]
            a.plot(steps, vals, label=key)
    a.set(xlabel="step", ylabel="loss", title="loss")
    a.legend()
    for key in ("val/auc@3", "val/auc@5", "val/auc@10", "val/precision", "val/recall"):
        if key in series:
            steps, vals = zip(*series[key])
            b.plot(steps, vals, "o-", label=key, ms=3)
    b.set(xlabel="step", ylabel="%", title="validation")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run / "curves.png", dpi=110)
    plt.close(fig)
    return run / "curves.png"


def check_resume(cfg: dict, out: Path) -> str | None:
    if not cfg.get("resume"):
        return None
    path = out / "last.ckpt" if cfg["resume"] == "last" else Path(cfg["resume"])
    if not path.is_file():
        raise PygmatchError(f"{path}: no checkpoint to resume from")
    ckpt = read_checkpoint(path)
    saved, _ = model_state(ckpt, path)
    mine = model_config(cfg)
    diff = {k: (v, mine.architecture()[k]) for k, v in saved.architecture().items() if mine.architecture()[k] != v}
    if diff:
        raise PygmatchError(f"{path}: the checkpoint's architecture differs from these flags: " +
                            "; ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in diff.items()))
    return str(path)


def train(cfg: dict) -> Path:
    """Run a training described by the resolved flags of ``train.run``; returns the run folder."""
    out = Path(cfg["out"])
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    train_set, val_set = make_datasets(cfg)
    if isinstance(train_set, HomographyPairs):
        train_set.check_readable()
    world = cfg["devices"] * cfg["num_nodes"] if isinstance(cfg["devices"], int) else 1
    if len(train_set) < cfg["batch_size"] * world:
        raise PygmatchError(f"{train_set.root}: {len(train_set)} pairs per epoch, fewer than --batch-size {cfg['batch_size']} × {world} processes")
    resume = check_resume(cfg, out)
    if out.exists() and not out.is_dir():
        raise PygmatchError(f"{out}: exists and is not a folder (--out names the run folder)")
    # DDP starts the other ranks by re-running this command after rank 0 wrote config.yaml: only
    # the first process decides whether the folder is free.
    first_process = all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))
    if first_process and not resume and not cfg.get("overwrite") and any((out / name).exists() for name in ("last.ckpt", "best.ckpt", "config.yaml")):
        raise PygmatchError(f"{out}: already holds a run; continue it with --resume last, choose another --out, "
                            "or pass --overwrite to replace it")
    model_cfg = model_config(cfg)
    max_steps = cfg["max_steps"] if cfg["max_steps"] else -1
    total = max_steps if max_steps > 0 else (cfg["epochs"] or 1) * math.ceil(len(train_set) / cfg["batch_size"])
    module = MatcherModule(model_cfg.to_dict(), lr=cfg["lr"], warmup_steps=cfg["warmup_steps"], total_steps=total,
                           ortho_weight=cfg["ortho_weight"])
    if cfg.get("init"):
        saved_cfg, state = model_state(read_checkpoint(cfg["init"]), cfg["init"])
        load_weights(module.model, state, cfg["init"], saved_cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}, sort_keys=True))

    loader = dict(batch_size=cfg["batch_size"], num_workers=cfg["workers"], follow_batch=["x_s", "x_t"])
    train_loader = DataLoader(train_set, shuffle=True, drop_last=True, **loader)
    val_loader = DataLoader(val_set, shuffle=False, **loader | {"num_workers": 0})
    best = ModelCheckpoint(dirpath=out, filename="best", monitor=MONITOR, mode="max", save_top_k=1, auto_insert_metric_name=False,
                           enable_version_counter=False)
    stop = StopOnSignal()
    callbacks = [best, LastCheckpoint(out / "last.ckpt", cfg["ckpt_every_steps"], cfg["ckpt_minutes"]), EpochSeed(train_set), stop,
                 LearningRateMonitor("step"), Throughput(), RankAgreement(out)]
    if cfg["early_stop"]:
        callbacks.append(EarlyStopping(MONITOR, mode="max", patience=cfg["early_stop"]))
    # Lightning's advertisement and its warning about the folder we chose on purpose bury the useful lines
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    trainer = L.Trainer(
        default_root_dir=out, max_steps=max_steps, max_epochs=cfg["epochs"] if cfg["epochs"] else (-1 if max_steps > 0 else 1),
        val_check_interval=cfg["val_every"], check_val_every_n_epoch=None,
        precision=cfg["precision"], accelerator=cfg["accelerator"], devices=cfg["devices"], num_nodes=cfg["num_nodes"],
        # the early-exit heads get gradients only with deep supervision: let DDP tolerate unused ones
        strategy="ddp_find_unused_parameters_true" if world > 1 else "auto", gradient_clip_val=cfg["grad_clip"] or None, callbacks=callbacks,
        # one CSV per (re)start, csv/version_N/metrics.csv: a resumed run never overwrites the earlier log
        logger=[TensorBoardLogger(out, name="tb", version=""), CSVLogger(out, name="csv", flush_logs_every_n_steps=cfg["log_every"])],
        log_every_n_steps=cfg["log_every"], plugins=[AtomicCheckpointIO()], num_sanity_val_steps=0,
        enable_progress_bar=cfg.get("progress", True), enable_model_summary=False,
    )
    try:
        with stop:
            print(f"training: {train_set!r}; {max_steps if max_steps > 0 else 'all'} steps; run folder {out}", flush=True)
            trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    except NonFiniteLoss as e:
        last = out / "last.ckpt"
        raise PygmatchError(f"stopped: {e}; the last good checkpoint is {last if last.exists() else 'not written yet'} "
                            f"(try a lower --lr or --grad-clip, then --resume last)") from None
    if trainer.global_rank == 0:
        write_curves(out)
    if stop.signum is not None:
        name = signal.Signals(stop.signum).name
        raise Interrupted(f"{name}: stopped at step {trainer.global_step}; saved {out / 'last.ckpt'} — continue with "
                          f"--config {out / 'config.yaml'} --resume last", 128 + stop.signum)
    return out
