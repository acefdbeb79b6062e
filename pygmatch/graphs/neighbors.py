"""Neighbour search backends for the graph transforms.

Order of preference, chosen per call: ``pyg-lib`` (PyG's ``knn_graph``/``radius_graph``) or
``torch-cluster`` when installed; otherwise ``scipy.spatial.cKDTree`` for CPU tensors and
chunked ``torch.cdist`` + ``topk`` for GPU tensors. Every backend returns edges in PyG's
``source_to_target`` convention: ``edge_index[0]`` is the neighbour (the message source),
``edge_index[1]`` the node whose neighbourhood it is; no self-loops.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
import torch_geometric.typing as pyg_typing

try:  # optional accelerator, deprecated upstream but still common
    import torch_cluster  # type: ignore
except ImportError:  # pragma: no cover - depends on the environment
    torch_cluster = None

BACKENDS = ("auto", "scipy", "torch", "pyg")
_CHUNK = 2048  # rows of the distance matrix held at once by the torch backend


def accelerated_backend() -> str | None:
    """``"pyg-lib"``, ``"torch-cluster"`` or None: what ``backend="auto"`` uses besides the built-ins."""
    if pyg_typing.WITH_KNN and pyg_typing.WITH_RADIUS:
        return "pyg-lib"
    return "torch-cluster" if torch_cluster is not None else None


def _resolve(backend: str, pos: torch.Tensor) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "auto":
        if accelerated_backend() is not None:
            return "pyg"
        return "torch" if pos.is_cuda else "scipy"
    return backend


def _empty(device) -> torch.Tensor:
    return torch.zeros(2, 0, dtype=torch.long, device=device)


def knn_table(pos: torch.Tensor, k: int, use_torch: bool | None = None) -> torch.Tensor:
    """(n, min(k, n−1)) indices of each point's nearest other points, nearest first.

    Exact duplicates of a point count as neighbours at distance 0; the point itself never does.
    ``use_torch`` (default: for GPU tensors) takes chunked ``cdist`` + ``topk`` instead of a k-d tree.
    """
    n = pos.size(0)
    kk = min(k, n - 1)
    if kk <= 0:
        return torch.zeros(n, 0, dtype=torch.long, device=pos.device)
    if pos.is_cuda if use_torch is None else use_torch:
        rows = []
        for start in range(0, n, _CHUNK):
            d = torch.cdist(pos[start : start + _CHUNK], pos)
            d[torch.arange(d.size(0)), torch.arange(start, start + d.size(0))] = float("inf")
            rows.append(d.topk(kk, largest=False).indices)
        return torch.cat(rows)
    pts = pos.detach().cpu().double().numpy()
    _, idx = cKDTree(pts).query(pts, k=kk + 1)
    idx = idx.reshape(n, kk + 1)
    # Drop the point itself; with duplicates it may sit anywhere in the row or not at all.
    is_self = idx == np.arange(n)[:, None]
    drop = np.where(is_self.any(1), is_self.argmax(1), kk)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(n), drop] = False
    return torch.from_numpy(idx[keep].reshape(n, kk)).to(pos.device)


def table_to_edges(table: torch.Tensor) -> torch.Tensor:
    """Neighbour table (n, k) -> edge_index with the neighbour as source."""
    n, k = table.shape
    target = torch.arange(n, device=table.device).repeat_interleave(k)
    return torch.stack([table.reshape(-1), target])


def knn_edges(pos: torch.Tensor, k: int, backend: str = "auto") -> torch.Tensor:
    """Each node receives edges from its ``k`` nearest other nodes (all others when n ≤ k)."""
    if pos.size(0) < 2 or k < 1:
        return _empty(pos.device)
    backend = _resolve(backend, pos)
    if backend == "pyg":
        return _knn_accelerated(pos, min(k, pos.size(0) - 1))
    return table_to_edges(knn_table(pos, k, use_torch=backend == "torch"))


def radius_edges(pos: torch.Tensor, r: float, max_neighbors: int = 32, backend: str = "auto") -> torch.Tensor:
    """Edges from every other node within distance ``r`` (inclusive), at most the
    ``max_neighbors`` nearest per node. Nodes with nobody near stay isolated."""
    n = pos.size(0)
    if n < 2 or max_neighbors < 1:
        return _empty(pos.device)
    backend = _resolve(backend, pos)
    if backend == "pyg":
        return _radius_accelerated(pos, r, max_neighbors)
    if backend == "torch":
        table = knn_table(pos, max_neighbors, use_torch=True)
        dist = (pos[table] - pos[:, None]).norm(dim=-1)
        edges = table_to_edges(table)
        return edges[:, (dist <= r).reshape(-1)]
    pts = pos.detach().cpu().double().numpy()
    kk = min(max_neighbors, n - 1)
    dist, idx = cKDTree(pts).query(pts, k=kk + 1, distance_upper_bound=r * (1 + 1e-9))
    dist, idx = dist.reshape(n, kk + 1), idx.reshape(n, kk + 1)
    target = np.repeat(np.arange(n), kk + 1).reshape(n, kk + 1)
    valid = np.isfinite(dist) & (idx != target)
    # With more than max_neighbors in range, the self entry may have been crowded out by
    # duplicates: keep at most max_neighbors per row either way.
    valid &= np.cumsum(valid, axis=1) <= kk
    edges = np.stack([idx[valid], target[valid]])
    return torch.from_numpy(edges).long().to(pos.device)


def knn_bruteforce(pos: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: full distance matrix + topk (what the benchmark compares against)."""
    n = pos.size(0)
    if n < 2 or k < 1:
        return _empty(pos.device)
    d = torch.cdist(pos.double(), pos.double())
    d.fill_diagonal_(float("inf"))
    return table_to_edges(d.topk(min(k, n - 1), largest=False).indices)


def radius_bruteforce(pos: torch.Tensor, r: float, max_neighbors: int) -> torch.Tensor:
    n = pos.size(0)
    if n < 2:
        return _empty(pos.device)
    d = torch.cdist(pos.double(), pos.double())
    d.fill_diagonal_(float("inf"))
    dist, idx = d.topk(min(max_neighbors, n - 1), largest=False)
    edges = table_to_edges(idx)
    return edges[:, (dist <= r * (1 + 1e-9)).reshape(-1)]


def _knn_accelerated(pos: torch.Tensor, k: int) -> torch.Tensor:  # pragma: no cover - optional dependency
    if pyg_typing.WITH_KNN:
        from torch_geometric.nn import knn_graph

        return knn_graph(pos, k, loop=False)
    return torch_cluster.knn_graph(pos, k, loop=False)


def _radius_accelerated(pos: torch.Tensor, r: float, max_neighbors: int) -> torch.Tensor:  # pragma: no cover
    if pyg_typing.WITH_RADIUS:
        from torch_geometric.nn import radius_graph

        return radius_graph(pos, r * (1 + 1e-9), loop=False, max_num_neighbors=max_neighbors)
    return torch_cluster.radius_graph(pos, r * (1 + 1e-9), loop=False, max_num_neighbors=max_neighbors)
