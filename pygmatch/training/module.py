"""``MatcherModule``: the model, its loss (deep supervision, orthogonality), the validation
metrics of ``eval.coco``, the optimiser and its schedule."""
from __future__ import annotations

import logging
import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from ..evaluation.metrics import pair_metrics, summarize
from ..nn.config import MatcherConfig
from ..nn.loss import assignment_nll, orthogonality
from ..nn.model import GraphMatcher

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

    b0 = batch.x_0_batch if "x_0_batch" in batch else torch.zeros(batch.x_0.size(0), dtype=torch.long)
    b1 = batch.x_1_batch if "x_1_batch" in batch else torch.zeros(batch.x_1.size(0), dtype=torch.long)
    loc0, loc1 = local(b0), local(b1)
    i, j = batch.gt_matches
    pairs = torch.stack([b0[i], loc0[i], loc1[j]])
    un0 = torch.zeros(num_pairs, n, dtype=torch.bool, device=b0.device)
    un1 = torch.zeros(num_pairs, m, dtype=torch.bool, device=b0.device)
    un0[b0, loc0] = batch.gt_unmatched_0
    un1[b1, loc1] = batch.gt_unmatched_1
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
        la = out.log_assignment
        pairs, un0, un1 = dense_ground_truth(batch, la.size(0), la.size(1) - 1, la.size(2) - 1)
        terms = {"nll": assignment_nll(la, pairs, un0, un1)}
        total = terms["nll"]
        layers = out.training.layer_log_assignments
        if layers:
            final0 = la[:, :-1].argmax(-1)
            final1 = la[:, :, :-1].argmax(-2)
            deep, conf, match = [], [], []
            matched0 = torch.zeros_like(un0)
            matched0[pairs[0], pairs[1]] = True
            matched1 = torch.zeros_like(un1)
            matched1[pairs[0], pairs[2]] = True
            m0, m1 = out.mask0, out.mask1
            for k, (lak, (p0, p1)) in enumerate(zip(layers, out.training.point_logits)):
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
        if self.hparams.ortho_weight > 0 and len(out.training.branches[0][0]) > 1:
            per_layer = [orthogonality(m0) + orthogonality(m1) for m0, m1 in out.training.branches]
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
        if len(out.training.branches[0][0]) > 1:  # how similar the multi-scale branches are
            cos = [F.cosine_similarity(a, b, dim=-1).abs().mean() for m0, _ in out.training.branches for a, b in zip(m0[:-1], m0[1:])]
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
    b0, b1 = out.batch0.cpu(), out.batch1.cpu()
    pos0, pos1 = batch.pos_0.cpu().numpy(), batch.pos_1.cpu().numpy()
    gt = batch.gt_matches.cpu()
    for b in range(out.matches0.size(0)):
        sel0, sel1 = (b0 == b).nonzero().flatten(), (b1 == b).nonzero().flatten()
        s0, t0 = (int(sel0[0]) if sel0.numel() else 0), (int(sel1[0]) if sel1.numel() else 0)
        n = sel0.numel()
        m0 = out.matches0[b, :n].cpu().numpy()
        i = np.nonzero(m0 >= 0)[0]
        matches = np.stack([i, m0[i]], 1)
        scores = out.matching_scores0[b, :n].detach().float().cpu().numpy()[i]
        gt0 = np.full(n, -1)
        in_pair = (gt[0] >= s0) & (gt[0] < s0 + n)
        gt0[(gt[0, in_pair] - s0).numpy()] = (gt[1, in_pair] - t0).numpy()
        size = tuple(int(v) for v in batch.image_size_0.reshape(-1, 2)[b].tolist())
        results.append(pair_metrics(matches, scores, pos0[s0:s0 + n], pos1[t0:t0 + sel1.numel()], gt0,
                                    batch.H_0to1[b].cpu().double().numpy(), size))
    return results
