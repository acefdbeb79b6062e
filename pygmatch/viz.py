"""Drawings: matches on image pairs, and the plots that go with the evaluation numbers."""
from __future__ import annotations

import os

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .files import save_figure, write_image  # noqa: E402

GREEN, RED = (60, 200, 60), (40, 40, 230)  # BGR


def side_by_side(image0: np.ndarray, image1: np.ndarray, gap: int = 10) -> tuple[np.ndarray, int]:
    """Both images as BGR next to each other; returns the canvas and the x offset of image 1."""
    def bgr(im):
        return cv2.cvtColor(im, cv2.COLOR_GRAY2BGR) if im.ndim == 2 else im.copy()

    a, b = bgr(image0), bgr(image1)
    h = max(a.shape[0], b.shape[0])
    canvas = np.full((h, a.shape[1] + gap + b.shape[1], 3), 255, np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] + gap :] = b
    return canvas, a.shape[1] + gap


def draw_matches(image0, image1, xy0, xy1, matches, correct=None, path: str | os.PathLike | None = None, title: str = "") -> np.ndarray:
    """Lines between matched keypoints: green when ``correct`` says so, red otherwise."""
    canvas, dx = side_by_side(image0, image1)
    correct = np.ones(len(matches), bool) if correct is None else correct
    for (i, j), ok in zip(np.asarray(matches).reshape(-1, 2), correct):
        p = tuple(int(round(v)) for v in xy0[i])
        q = (int(round(xy1[j][0])) + dx, int(round(xy1[j][1])))
        cv2.line(canvas, p, q, GREEN if ok else RED, 1, cv2.LINE_AA)
        cv2.circle(canvas, p, 2, GREEN if ok else RED, -1, cv2.LINE_AA)
        cv2.circle(canvas, q, 2, GREEN if ok else RED, -1, cv2.LINE_AA)
    if title:
        put_label(canvas, title)
    if path is not None:
        write_image(path, canvas)
    return canvas


def put_label(canvas: np.ndarray, text: str, org: tuple[int, int] = (8, 8), scale: float = 0.6, pad: int = 4) -> tuple[int, int, int, int]:
    """White text on a dark box whose top-left corner is ``org``, drawn once: readable on any
    image. (A thick dark pass under a thin white one does not outline the text: in OpenCV 5 the
    glyph advance grows with the stroke thickness, 203 px against 189 px for "default: 522/531
    correct" at thickness 3 and 1, so the two passes drift apart along the line.)
    Returns the box (x0, y0, x1, y1)."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x0, y0 = org
    x1, y1 = min(x0 + w + 2 * pad, canvas.shape[1]), min(y0 + h + base + 2 * pad, canvas.shape[0])
    canvas[y0:y1, x0:x1] = (canvas[y0:y1, x0:x1] * 0.25).astype(np.uint8)
    cv2.putText(canvas, text, (x0 + pad, y0 + pad + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return x0, y0, x1, y1


def plot_error_curves(errors: dict[str, np.ndarray], path, max_px: float = 10.0, title: str = "") -> None:
    """Cumulative corner-error curves, one per method: the curves whose areas are the AUCs."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, err in errors.items():
        err = np.sort(np.asarray(err, np.float64))
        frac = np.arange(1, len(err) + 1) / max(len(err), 1)
        ax.step(np.r_[0, np.clip(err, 0, max_px * 1.01)], np.r_[0, frac] * 100, where="post", label=name)
    ax.set(xlim=(0, max_px), ylim=(0, 100), xlabel="corner error (px)", ylabel="pairs below error (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_bars(summary: dict[str, dict], keys: list[str], path, title: str = "") -> None:
    """Grouped bars of the given summary keys (percent) per method."""
    names = list(summary)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(keys) * max(len(names), 1) / 2, 4))
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(keys))
    for k, name in enumerate(names):
        vals = [summary[name].get(key, np.nan) for key in keys]
        bars = ax.bar(x + k * width - 0.4 + width / 2, vals, width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, keys)
    ax.set(ylim=(0, 105), ylabel="%", title=title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


SCALE_COLOURS = [(230, 120, 30), (40, 170, 240), (60, 200, 60), (200, 60, 200), (40, 40, 230), (0, 200, 200)]  # BGR


def draw_graph(image: np.ndarray, data, path=None, max_complete_nodes: int = 12) -> np.ndarray:
    """Keypoints and edges on the image, one colour per edge set of a multi-scale graph (the
    first set drawn last, on top). A complete set is drawn for a few keypoints only."""
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    pos = data.pos.numpy()
    n_sets = data.scale_complete.size(1)
    for s in reversed(range(n_sets)):
        colour = SCALE_COLOURS[s % len(SCALE_COLOURS)]
        if bool(data.scale_complete[0, s]):
            chosen = np.linspace(0, len(pos) - 1, min(max_complete_nodes, len(pos))).astype(int)
            edges = [(i, j) for j in chosen for i in range(len(pos))]
        else:
            edges = data.edge_index[:, data.edge_scale == s].t().tolist()
        for i, j in edges:
            cv2.line(canvas, tuple(np.round(pos[i]).astype(int)), tuple(np.round(pos[j]).astype(int)), colour, 1, cv2.LINE_AA)
    for p in pos:
        cv2.circle(canvas, tuple(np.round(p).astype(int)), 2, (0, 0, 255), -1, cv2.LINE_AA)
    if path is not None:
        write_image(path, canvas)
    return canvas
