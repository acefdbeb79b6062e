"""Graph names <-> transforms. ``make_graph("knn", k=16)`` builds a transform from its own
parameters; ``graph_params(transform)`` gives them back (``{"name": "knn", "k": 16}``, what
configs and checkpoints record); graph flag values (``graph_from_flags``) map onto the same parameters."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import importlib

from ..errors import PygmatchError
from .names import DEFAULTS, GRAPH_NAMES


@dataclass(frozen=True)
class GraphSpec:
    """A transform class (``"module:Class"`` in this package, imported when first built, so that
    the tables cost no torch import), and which command-line flag sets which of its parameters."""

    where: str
    flags: dict[str, str]  # flag dest -> the transform's parameter
    example: str = ""
    summary: str = ""
    fixed: tuple[str, ...] = ()  # parameters without a flag (recorded, taken back, not offered on the command line)

    @property
    def cls(self) -> type:
        module, name = self.where.split(":")
        return getattr(importlib.import_module(f".{module}", __package__), name)


GRAPHS: dict[str, GraphSpec] = {
    "knn": GraphSpec("knn:KNNGraph", {"k": "k"}, "--graph knn --k 16", "k nearest keypoints in the image"),
    "radius": GraphSpec("radius:RadiusGraph", {"radius": "r", "max_neighbors": "max_neighbors"},
                        "--graph radius --radius 0.05 --max-neighbors 32", "keypoints within a radius (fraction of the longer image side)"),
    "mst": GraphSpec("mst:MSTGraph", {}, "--graph mst", "Euclidean minimum spanning tree, undirected"),
    "partition": GraphSpec("partition:PartitionGraph", {"cells": "cells", "partition": "method", "clusters": "clusters"},
                           "--graph partition --cells 4x4  (or --partition kmeans --clusters 16)", "disjoint groups, complete inside each",
                           fixed=("seed",)),
    "complete": GraphSpec("complete:CompleteGraph", {}, "--graph complete", "every keypoint to every keypoint (SuperGlue's graph)"),
    "multiscale": GraphSpec("multiscale:MultiScaleGraph", {"ks": "ks", "rings": "mode"},
                            "--graph multiscale --ks 8,16,32,all --rings disjoint", "several kNN edge sets, nested or disjoint rings"),
}
assert tuple(GRAPHS) == GRAPH_NAMES  # the names the flags offer (names.py) are these


def make_graph(name: str = "knn", **params):
    """``make_graph("knn", k=16)`` -> ``KNNGraph(k=16)``: the transform from its own parameters;
    unknown names or parameters raise a ``PygmatchError`` that lists the valid choices."""
    if name not in GRAPHS:
        raise PygmatchError(f"unknown graph {name!r}; choose from {', '.join(GRAPHS)}")
    takes = (*GRAPHS[name].flags.values(), *GRAPHS[name].fixed)
    unknown = set(params) - set(takes)
    if unknown:
        raise PygmatchError(f"graph {name!r} takes {', '.join(takes) or 'no parameters'}; got {', '.join(sorted(unknown))}")
    try:  # YAML gives lists where the transforms keep tuples (ks, cells)
        return GRAPHS[name].cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    except (ValueError, TypeError) as e:
        raise PygmatchError(f"graph {name!r}: {e}") from None


def graph_params(transform) -> dict:
    """``KNNGraph(k=16)`` -> ``{"name": "knn", "k": 16}`` (plain YAML values): what configs record."""
    name = next((n for n, spec in GRAPHS.items() if type(transform) is spec.cls), None)
    if name is None:
        raise PygmatchError(f"{transform!r} is not a registered transform ({', '.join(GRAPHS)})")
    return {"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in transform.params().items()}}


def graph_from_params(params: Mapping):
    """The transform of a recorded ``{"name": ..., **parameters}``."""
    params = dict(params)
    return make_graph(params.pop("name", "knn"), **params)


def graph_from_flags(flags: Mapping):
    """The intra-image transform of graph flag values (``--graph`` and its parameters' flags)."""
    flags = {**DEFAULTS, **dict(flags)}
    if flags["graph"] not in GRAPHS:
        raise PygmatchError(f"unknown graph {flags['graph']!r}; choose from {', '.join(GRAPHS)}")
    return make_graph(flags["graph"], **{p: flags[f] for f, p in GRAPHS[flags["graph"]].flags.items()})


def flags_from_params(graph: Mapping) -> dict:
    """The flag values that rebuild recorded graph parameters (the inverse of ``graph_from_flags``)."""
    spec = GRAPHS.get(graph.get("name"))
    if spec is None:
        raise PygmatchError(f"unknown graph {graph.get('name')!r}; choose from {', '.join(GRAPHS)}")
    return {"graph": graph["name"], **{f: graph[p] for f, p in spec.flags.items() if p in graph}}
