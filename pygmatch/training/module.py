"""The LightningModules of the one training loop: ``MatcherModule`` (the candidate graph network,
its loss, the validation metrics of ``eval.coco``: RANSAC homography AUC of the kept matches) and
``RefinerModule`` (the sub-pixel refiner, its Huber loss, the held-out offset errors), both with
the same optimiser and schedule (``ScheduledModule``)."""
from __future__ import annotations

import logging
import math

import lightning as L
import numpy as np
import torch

from ..data.geometry import corner_error
from ..data.homography import estimate_homography
from ..evaluation.metrics import error_auc
from ..matching.nearest import RATIO
from ..matching.select import keep_probable
from ..nn.candidate_graph import CandidateGraphConfig, CandidateGraphNet, candidate_loss
from ..refinement import LearnedRefiner, PatchRefiner, RefinerConfig

# Lightning's advertisements ("💡 Tip: ...") and its note on loading its own checkpoints bury the useful lines
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
              "lightning.pytorch.trainer.connectors.checkpoint_connector"):
    logging.getLogger(_name).addFilter(lambda record: not any(s in record.getMessage() for s in ("💡 Tip", "weights_only")))

BASELINES = ("nn", "nn-ratio")  # measured on the same validation pairs, drawn into curves.png


class NonFiniteLoss(RuntimeError):
    pass


def pair_results(batch, score: torch.Tensor | None, cfg: CandidateGraphConfig, baseline: str | None = None) -> list[dict]:
    """Per pair of a batch: the candidates the matching stage would keep (``keep_probable`` of
    ``score``; with ``baseline``, those ``nn`` or ``nn-ratio`` keeps: every mutual nearest
    neighbour, or those passing Lowe's ratio both ways), their precision within 1 px, the share of
    all within-1-px candidates kept, and the corner error of the RANSAC homography fitted to them
    (px; inf when none could be fitted)."""
    rows = []
    error = batch.error.cpu()
    to_pixels = batch.pos_scale[:, None]  # the network's positions back in image pixels
    pos0, pos1, which = (batch.pos0 / to_pixels).cpu().numpy(), (batch.pos1 / to_pixels).cpu().numpy(), batch.batch.cpu()
    if baseline is None:
        score = score.detach().float().cpu().numpy()
    else:
        chosen = batch.x[:, 3].cpu().numpy() > 0.5  # mutual
        if baseline == "nn-ratio":
            chosen &= (batch.x[:, 1:3].cpu().numpy() < RATIO).all(1)
    for g in range(batch.num_graphs):
        sel = (which == g).numpy()
        e = error[sel].numpy()
        keep = keep_probable(score[sel], cfg.threshold, cfg.min_keep, cfg.pad_from) if baseline is None else chosen[sel]
        size = tuple(int(v) for v in batch.image_size[g].tolist())
        H = estimate_homography(pos0[sel][keep].astype(np.float64), pos1[sel][keep].astype(np.float64), "ransac")
        rows.append({"kept": int(keep.sum()), "correct@1": int((e[keep] < 1).sum()), "positives": int((e < 1).sum()),
                     "error": corner_error(H, batch.H[g].cpu().numpy(), size)})
    return rows


class ScheduledModule(L.LightningModule):
    """Adam with a linear warm-up and a cosine decay to 0 over the run (``lr``, ``warmup_steps``,
    ``total_steps`` in the hyper-parameters); a loss that is not finite stops the run.
    ``monitor``: the validation metric ``best.ckpt`` and early stopping follow (higher is better)."""

    monitor: str

    def checked(self, loss: torch.Tensor, size: int) -> torch.Tensor:
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"the loss became {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss.detach(), batch_size=size)
        self.log("loss", loss.detach(), prog_bar=True, batch_size=size, logger=False)
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.Adam(self.parameters(), lr=hp.lr)

        def schedule(step):  # linear warm-up, and a cosine decay to 0 over the run
            return min(1.0, (step + 1) / max(hp.warmup_steps, 1)) * 0.5 * (1 + math.cos(math.pi * min(step / max(hp.total_steps, 1), 1.0)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class MatcherModule(ScheduledModule):
    """The network, its loss, the validation metrics and the optimiser with its schedule.
    ``model``: the ``CandidateGraphConfig`` as a dict (saved in every checkpoint's hyper-parameters)."""

    monitor = "val/auc@3"  # the metric the shipped model is judged by

    def __init__(self, model: dict, lr: float = 2e-3, warmup_steps: int = 100, total_steps: int = 10000, kind: str = "matcher"):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = CandidateGraphConfig(**model)
        self.model = CandidateGraphNet(self.cfg)
        self._val = []
        self._baselines = {name: [] for name in BASELINES}  # measured at the first validation only: they do not learn

    def training_step(self, batch, batch_idx):
        return self.checked(candidate_loss(self.model(batch), batch.error, self.cfg), int(batch.num_graphs))

    def validation_step(self, batch, batch_idx):
        out = self.model(batch)
        bs = int(batch.num_graphs)
        self.log("val/loss", candidate_loss(out, batch.error, self.cfg), batch_size=bs, sync_dist=True)
        self._val.extend(pair_results(batch, out.score, self.cfg))
        for name, rows in self._baselines.items():
            if rows is not None:
                rows.extend(pair_results(batch, None, self.cfg, name))

    def on_validation_epoch_end(self):
        if not self._val:
            return
        rows, self._val = self._val, []
        for name, baseline in self._baselines.items():  # the baselines' lines on the curves, logged once
            if baseline:
                self.log(f"baseline/{name}/auc@3", 100 * error_auc([r["error"] for r in baseline], (3,))[0], sync_dist=True)
            self._baselines[name] = None
        auc = error_auc([r["error"] for r in rows], (1, 3, 5))
        kept = sum(r["kept"] for r in rows)
        metrics = {"val/auc@1": auc[0], "val/auc@3": auc[1], "val/auc@5": auc[2],
                   "val/precision@1": 100 * sum(r["correct@1"] for r in rows) / max(kept, 1),
                   "val/recall@1": 100 * sum(r["correct@1"] for r in rows) / max(sum(r["positives"] for r in rows), 1),
                   "val/matches": kept / len(rows)}
        metrics = {k: float(v) * (100 if k.startswith("val/auc") else 1) for k, v in metrics.items()}
        self.log_dict(metrics, sync_dist=True)
        self.log("auc3", metrics[self.monitor], prog_bar=True, logger=False, sync_dist=True)


class RefinerModule(ScheduledModule):
    """The refiner network on batches of patches ``(templates (B, t, t), windows (B, w, w), offset
    (B, 2))``: Huber loss (0.5 px) between predicted and true offsets; validation: the held-out
    candidates' mean error (px) and share within 0.5 px after refinement, beside the keypoints as
    detected and the correlation refiner (``baseline/*``, logged once). ``model``: the
    ``RefinerConfig`` as a dict."""

    monitor = "val/within_0.5"

    def __init__(self, model: dict, lr: float = 2e-3, warmup_steps: int = 200, total_steps: int = 10000, kind: str = "refiner"):
        super().__init__()
        self.save_hyperparameters()
        self.model = LearnedRefiner(RefinerConfig(**model))
        self._errors = {"val": [], "detected": [], "ncc": []}
        self._baselines_logged = False

    def training_step(self, batch, batch_idx):
        templates, windows, offset = batch
        loss = torch.nn.functional.huber_loss(self.model(templates.float(), windows.float()), offset, delta=0.5)
        return self.checked(loss, len(offset))

    def validation_step(self, batch, batch_idx):
        templates, windows, offset = batch
        templates, windows = templates.float(), windows.float()
        pred = self.model(templates, windows)
        self.log("val/loss", torch.nn.functional.huber_loss(pred, offset, delta=0.5), batch_size=len(offset), sync_dist=True)
        self._errors["val"].append((pred - offset).norm(dim=1).cpu())
        if not self._baselines_logged:
            self._errors["detected"].append(offset.norm(dim=1).cpu())
            ncc = torch.from_numpy(PatchRefiner().offsets(templates.cpu(), windows.cpu())).float()
            self._errors["ncc"].append((ncc - offset.cpu()).norm(dim=1))

    def on_validation_epoch_end(self):
        if not self._errors["val"]:
            return
        for name, parts in self._errors.items():
            if parts:
                err = torch.cat(parts)
                metrics = {"mean_px": err.mean().item(), "within_0.5": 100 * (err < 0.5).float().mean().item()}
                self.log_dict({f"{'val' if name == 'val' else 'baseline/' + name}/{k}": v for k, v in metrics.items()}, sync_dist=True)
                if name == "val":
                    self.log("within", metrics["within_0.5"], prog_bar=True, logger=False, sync_dist=True)
        self._baselines_logged = True
        self._errors = {"val": [], "detected": [], "ncc": []}
