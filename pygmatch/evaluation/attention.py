"""Looking inside the graph network: which neighbours each candidate attends to, layer by layer,
in image 0's graph and in image 1's, and how far (the attention span). Used by
``python -m eval.attention``; ``CandidateGraphNet.attention`` gives the per-edge weights.
"""
from __future__ import annotations

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..files import save_figure, write_image  # noqa: E402
from ..viz import put_label, side_by_side  # noqa: E402

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


def draw_attention(image0, image1, pos0, pos1, layer: dict, chosen: dict[str, list[int]], title: str, path=None) -> np.ndarray:
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


def attention_span(layers: list[dict], pos0, pos1) -> dict[str, list[float]]:
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


def plot_span(spans: dict[str, dict[str, list[float]]], path, title: str = "Attention span") -> None:
    """One line per (model, image); ``spans`` maps a label to ``attention_span``'s output."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, span) in enumerate(spans.items()):
        for image, style in (("0", "o-"), ("1", "s--")):
            ax.plot(range(len(span[image])), span[image], style, color=f"C{2 * i + (image == '1')}", label=f"{label}, image {image}")
    ax.set(xlabel="layer", ylabel="attention-weighted distance (px)", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
