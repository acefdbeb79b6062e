"""Looking inside the matcher: per-edge attention, easy/medium/hard keypoints, attention span.

Used by ``python -m eval.attention``; works for complete (dense path) and sparse graphs alike,
since the conv returns per-edge weights in both cases.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..files import save_figure, write_image  # noqa: E402
from ..data.geometry import warp_points  # noqa: E402
from ..viz import put_label, side_by_side  # noqa: E402

GROUPS = ("easy", "medium", "hard")


@dataclass
class AttentionRecord:
    """Attention of one pair: per layer, kind ("self"/"cross") and image (0/1), the edge list
    (row 0 = attended keypoint, row 1 = attending keypoint) and weights (E, heads)."""

    layers: list[dict]
    log_assignment: torch.Tensor
    matches0: np.ndarray

    def edges(self, layer: int, kind: str, image: int = 0, branch: int = 0):
        entry = self.layers[layer][kind][image]
        if kind == "self":
            entry = entry[branch]
        if entry is None:
            return None, None
        e, a = entry
        return e.numpy(), a.detach().float().numpy()


@torch.no_grad()
def record_attention(model, pair) -> AttentionRecord:
    """Run ``model`` on one ``PairData`` and keep every layer's attention."""
    was = (model.cfg.early_exit, model.cfg.pruning)
    model.cfg.early_exit = model.cfg.pruning = False  # every layer, every keypoint
    try:
        out = model(pair, return_attention=True)
    finally:
        model.cfg.early_exit, model.cfg.pruning = was
    return AttentionRecord(out.attention, out.log_assignment[0], out.matches0[0].numpy())


def lookalikes(descriptors: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """For each keypoint, how many others in the same image have a descriptor with cosine > threshold
    (repeated structure: the points the notes expected attention to disambiguate)."""
    d = descriptors / (np.linalg.norm(descriptors, axis=1, keepdims=True) + 1e-12)
    sim = d @ d.T
    np.fill_diagonal(sim, 0)
    return (sim > threshold).sum(1)


def group_keypoints(rec: AttentionRecord, gt_matches0: np.ndarray | None = None) -> np.ndarray:
    """'easy' / 'medium' / 'hard' / '' per keypoint of image 0, by rank, so that every group is
    filled whatever the head's probability scale (dual-softmax rarely gives any pair 0.8).

    With ground truth (a synthetic pair): keypoints that have a true partner, ranked by the
    probability the final assignment gives that partner: top third easy, bottom third hard.
    Without: matched keypoints ranked by their matching score, top half easy, the rest medium;
    unmatched ones hard.
    """
    prob = rec.log_assignment[:-1, :-1].exp().numpy()
    n = prob.shape[0]
    out = np.full(n, "", dtype=object)
    if gt_matches0 is not None:
        idx = np.nonzero(gt_matches0 >= 0)[0]
        order = idx[np.argsort(-prob[idx, gt_matches0[idx]], kind="stable")]
        third = -(-len(order) // 3)
        out[order] = "medium"
        out[order[:third]], out[order[len(order) - third:]] = "easy", "hard"
    else:
        m = rec.matches0
        idx = np.nonzero(m >= 0)[0]
        order = idx[np.argsort(-prob[idx, m[idx]], kind="stable")]
        half = -(-len(order) // 2)
        out[order[:half]], out[order[half:]], out[m < 0] = "easy", "medium", "hard"
    return out


def choose_keypoints(groups: np.ndarray, looks: np.ndarray, per_group: int = 2) -> dict[str, list[int]]:
    """A few keypoints of each group, those with the most look-alikes first."""
    chosen = {}
    for g in GROUPS:
        idx = np.nonzero(groups == g)[0]
        chosen[g] = idx[np.argsort(-looks[idx], kind="stable")][:per_group].tolist()
    return chosen


GROUP_COLOURS = {"easy": (60, 200, 60), "medium": (0, 165, 255), "hard": (40, 40, 230)}  # BGR


def draw_weighted_edges(canvas: np.ndarray, p: tuple[int, int], ends: np.ndarray, weights: np.ndarray, colour: np.ndarray) -> None:
    """Lines from ``p`` to each of ``ends`` (K, 2) px, wider and brighter the larger its weight
    (``weights`` (K,)) against the largest."""
    if not len(weights):
        return
    top = weights.max()
    for q, weight in zip(ends, weights):
        strength = weight / top
        cv2.line(canvas, p, tuple(np.round(q).astype(int)), tuple(int(c) for c in colour * (0.35 + 0.65 * strength)), 1 + int(3 * strength),
                 cv2.LINE_AA)


def draw_attention(image0, image1, xy0, xy1, rec: AttentionRecord, layer: int, kind: str, chosen: dict[str, list[int]],
                   head: int | None = None, path=None) -> np.ndarray:
    """For each chosen keypoint of image 0, the edges whose weight is above that keypoint's mean
    incoming weight (the notes' rule), width and brightness by weight; head-averaged or one head."""
    canvas, dx = side_by_side(image0, image1)
    canvas = (canvas * 0.6).astype(np.uint8)
    e, a = rec.edges(layer, kind, 0)
    if e is not None:
        w = a.mean(1) if head is None else a[:, head]
        src_xy = (xy0 if kind == "self" else xy1 + np.array([dx, 0]))
        for group, points in chosen.items():
            colour = np.array(GROUP_COLOURS[group])
            for i in points:
                sel = np.nonzero(e[1] == i)[0]
                if not sel.size:
                    continue
                keep = sel[w[sel] > w[sel].mean()]
                draw_weighted_edges(canvas, tuple(np.round(xy0[i]).astype(int)), src_xy[e[0, keep]], w[keep], colour)
                cv2.circle(canvas, tuple(np.round(xy0[i]).astype(int)), 6, tuple(int(c) for c in colour), 2, cv2.LINE_AA)
    label = f"layer {layer} {kind} {'mean of heads' if head is None else f'head {head}'}  green easy / orange medium / red hard"
    put_label(canvas, label, scale=0.55)
    if path is not None:
        write_image(path, canvas)
    return canvas


def attention_span(rec: AttentionRecord, xy0: np.ndarray, xy1: np.ndarray, H_0to1: np.ndarray | None = None) -> dict:
    """Mean attention-weighted distance (px) from each keypoint of image 0 to what it attends to,
    per layer: 'self' in image 0; 'cross' in image 1, from the keypoint's true position there
    (H·x) when the homography is known, else from its own pixel position. Keypoints that attend to
    nothing in a layer (pruned, or no edges) are left out of its mean.

    'uniform_self' / 'uniform_cross' are the same distances under uniform attention over every
    keypoint: a layer whose span is near them is not local at all, one far below them is what a
    kNN graph could express."""
    anchor = warp_points(xy0, H_0to1) if H_0to1 is not None else xy0
    span = {"self": [], "cross": []}
    for layer in range(len(rec.layers)):
        for kind, src, dst in (("self", xy0, xy0), ("cross", xy1, anchor)):
            e, a = rec.edges(layer, kind, 0)
            if e is None or not e.size:
                span[kind].append(float("nan"))
                continue
            w = a.mean(1)
            d = np.linalg.norm(src[e[0]] - dst[e[1]], axis=1)
            per_node = np.bincount(e[1], weights=w * d, minlength=len(xy0))
            attends = np.bincount(e[1], minlength=len(xy0)) > 0
            span[kind].append(float(per_node[attends].mean()))
    for kind, src, dst in (("self", xy0, xy0), ("cross", xy1, anchor)):
        span[f"uniform_{kind}"] = float(np.linalg.norm(dst[:, None] - src[None], axis=-1).mean()) if len(src) and len(dst) else float("nan")
    return span


def plot_span(spans: dict[str, dict], path, title: str = "Attention span") -> None:
    """One line per (model, kind); ``spans`` maps a label to attention_span's output. Dotted
    lines: the span of uniform attention (of the first model's pair)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, span) in enumerate(spans.items()):
        for kind, style in (("self", "o-"), ("cross", "s--")):
            ax.plot(range(len(span[kind])), span[kind], style, color=f"C{2 * i + (kind == 'cross')}", label=f"{label} {kind}")
    first = next(iter(spans.values()), {})
    for j, kind in enumerate(("self", "cross")):
        if f"uniform_{kind}" in first:
            ax.axhline(first[f"uniform_{kind}"], color=f"C{j}", ls=":", lw=1, label=f"uniform attention, {kind}")
    ax.set(xlabel="layer", ylabel="attention-weighted distance (px)", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


# The candidate graph network (``pygmatch.nn.candidate_graph``): its nodes are candidates (a keypoint of
# image 0 with one of image 1), attending to their neighbours in image 0's graph and in image 1's.

CANDIDATE_GROUPS = {"correct": (60, 200, 60), "wrong": (40, 40, 230), "kept": (60, 200, 60), "dropped": (40, 40, 230)}  # BGR


def choose_candidates(score: np.ndarray, error: np.ndarray | None, threshold: float, per_group: int = 2) -> dict[str, list[int]]:
    """Candidates to draw: with the true reprojection ``error`` (px) the most confident correct ones
    (< 1 px) and the most confident wrong ones (> 3 px), else the most confident kept (score above
    ``threshold``) and the most confident dropped ones."""
    order = np.argsort(-score, kind="stable")
    if error is not None:
        groups = {"correct": error[order] < 1.0, "wrong": error[order] > 3.0}
    else:
        groups = {"kept": score[order] > threshold, "dropped": score[order] <= threshold}
    return {g: [int(i) for i in order[sel][:per_group]] for g, sel in groups.items()}


def draw_candidate_attention(image0, image1, pos0, pos1, layer: dict, chosen: dict[str, list[int]], title: str, path=None) -> np.ndarray:
    """One layer of a candidate graph network: for each chosen candidate, its neighbours in image 0's
    graph (left) and in image 1's (right) whose weight (mean of heads, all scales) is above the
    candidate's mean, width and brightness by weight; the candidate itself circled in both images."""
    canvas, dx = side_by_side(image0, image1)
    canvas = (canvas * 0.6).astype(np.uint8)
    for image, pos, shift in (("0", np.asarray(pos0), 0), ("1", np.asarray(pos1), dx)):
        sets = [(e.numpy(), w.float().numpy().mean(1)) for e, w in layer[image] if w is not None]
        if not sets:
            continue
        e = np.concatenate([s[0] for s in sets], 1)
        w = np.concatenate([s[1] for s in sets])
        for group, nodes in chosen.items():
            colour = np.array(CANDIDATE_GROUPS[group])
            for i in nodes:
                sel = np.nonzero(e[1] == i)[0]
                p = tuple(np.round(pos[i] + [shift, 0]).astype(int))
                keep = sel[w[sel] > w[sel].mean()] if sel.size > 1 else sel
                draw_weighted_edges(canvas, p, pos[e[0, keep]] + [shift, 0], w[keep], colour)
                cv2.circle(canvas, p, 6, tuple(int(c) for c in colour), 2, cv2.LINE_AA)
    put_label(canvas, title, scale=0.55)
    if path is not None:
        write_image(path, canvas)
    return canvas


def candidate_attention_span(layers: list[dict], pos0, pos1) -> dict[str, list[float]]:
    """Per layer, the mean over candidates of the attention-weighted distance (px) to the neighbours
    they attend to, in image 0's graph and in image 1's (mean of heads, all scales)."""
    span = {"0": [], "1": []}
    for layer in layers:
        for image, pos in (("0", torch.as_tensor(np.asarray(pos0))), ("1", torch.as_tensor(np.asarray(pos1)))):
            total, count = 0.0, 0
            for e, w in layer[image]:
                if w is None or e.size(1) == 0:
                    continue
                d = torch.linalg.vector_norm(pos[e[0]] - pos[e[1]], dim=1).double()
                n = int(e[1].max()) + 1
                per_node = torch.zeros(n, dtype=torch.float64).index_add_(0, e[1], w.double().mean(1) * d)
                attended = torch.zeros(n, dtype=torch.bool).index_fill_(0, e[1], True)
                total, count = total + float(per_node[attended].sum()), count + int(attended.sum())
            span[image].append(total / count if count else float("nan"))
    return span
