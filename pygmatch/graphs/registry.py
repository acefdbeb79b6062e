"""Graph names <-> transforms. ``make_graph("knn", k=16)`` builds a transform from its own
parameters; ``graph_params(transform)`` gives them back (``{"name": "knn", "k": 16}``, what
configs and checkpoints record); graph flag values (``graphs_from_flags``) map onto the same parameters."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import importlib

from ..errors import PygmatchError
from .names import CROSS_NAMES, DEFAULTS, GRAPH_NAMES


@dataclass(frozen=True)
class GraphSpec:
    """A transform class (``"module:Class"`` in this package, imported when first built, so that
    the tables cost no torch import), and which command-line flag sets which of its parameters."""

    where: str
    flags: dict[str, str]  # flag dest -> the transform's parameter
    example: str = ""
    summary: str = ""

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
                           "--graph partition --cells 4x4  (or --partition kmeans --clusters 16)", "disjoint groups, complete inside each"),
    "complete": GraphSpec("complete:CompleteGraph", {}, "--graph complete", "every keypoint to every keypoint (SuperGlue; dense path)"),
    "multiscale": GraphSpec("multiscale:MultiScaleGraph", {"ks": "ks", "rings": "mode"},
                            "--graph multiscale --ks 8,16,32,all --rings disjoint", "several kNN edge sets, nested or disjoint rings"),
    "descriptor-knn": GraphSpec("descriptor_knn:DescriptorKNNGraph", {"k": "k"}, "--graph descriptor-knn --k 16",
                                "k nearest descriptors in the same image"),
}
CROSS: dict[str, GraphSpec] = {
    "complete": GraphSpec("cross:CompleteCross", {}),
    "descriptor-knn": GraphSpec("cross:DescriptorKNNCross", {"cross_k": "k"}),
}
assert tuple(GRAPHS) == GRAPH_NAMES and tuple(CROSS) == CROSS_NAMES  # the names the flags offer (names.py) are these


def _build(table: dict[str, GraphSpec], kind: str, name: str, params: dict):
    if name not in table:
        raise PygmatchError(f"unknown {kind} {name!r}; choose from {', '.join(table)}")
    takes = tuple(table[name].flags.values())
    unknown = set(params) - set(takes)
    if unknown:
        raise PygmatchError(f"{kind} {name!r} takes {', '.join(takes) or 'no parameters'}; got {', '.join(sorted(unknown))}")
    try:  # YAML gives lists where the transforms keep tuples (ks, cells)
        return table[name].cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    except (ValueError, TypeError) as e:
        raise PygmatchError(f"{kind} {name!r}: {e}") from None


def make_graph(name: str = "knn", **params):
    """``make_graph("knn", k=16)`` -> ``KNNGraph(k=16)``: the transform from its own parameters;
    unknown names or parameters raise a ``PygmatchError`` that lists the valid choices."""
    return _build(GRAPHS, "graph", name, params)


def make_cross(name: str = "complete", **params):
    """``make_cross("descriptor-knn", k=16)`` -> ``DescriptorKNNCross(k=16)``."""
    return _build(CROSS, "cross graph", name, params)


def _params(table: dict[str, GraphSpec], transform) -> dict:
    name = next((n for n, spec in table.items() if type(transform) is spec.cls), None)
    if name is None:
        raise PygmatchError(f"{transform!r} is not a registered transform ({', '.join(table)})")
    return {"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in transform.params().items()}}


def graph_params(transform) -> dict:
    """``KNNGraph(k=16)`` -> ``{"name": "knn", "k": 16}`` (plain YAML values): what configs record."""
    return _params(GRAPHS, transform)


def cross_params(transform) -> dict:
    """``CompleteCross()`` -> ``{"name": "complete"}``."""
    return _params(CROSS, transform)


def graph_from_params(params: Mapping):
    """The transform of a recorded ``{"name": ..., **parameters}``."""
    params = dict(params)
    return make_graph(params.pop("name", "knn"), **params)


def cross_from_params(params: Mapping):
    params = dict(params)
    return make_cross(params.pop("name", "complete"), **params)


def graphs_from_flags(flags: Mapping):
    """(intra-image transform, cross transform) from graph flag values (``--graph``, ``--k``, ...
    as a mapping of their names, e.g. ``vars()`` of parsed flags or a saved config of the old flat
    layout; missing flags take their defaults)."""
    flags = {**DEFAULTS, **dict(flags)}
    if flags["cross"] not in CROSS:
        raise PygmatchError(f"unknown cross graph {flags['cross']!r}; choose from {', '.join(CROSS)}")
    cross = make_cross(flags["cross"], **{p: flags[f] for f, p in CROSS[flags["cross"]].flags.items()})
    return graph_from_flags(flags), cross


def graph_from_flags(flags: Mapping):
    """The intra-image transform of graph flag values (``--graph`` and its parameters' flags)."""
    flags = {**DEFAULTS, **dict(flags)}
    if flags["graph"] not in GRAPHS:
        raise PygmatchError(f"unknown graph {flags['graph']!r}; choose from {', '.join(GRAPHS)}")
    return make_graph(flags["graph"], **{p: flags[f] for f, p in GRAPHS[flags["graph"]].flags.items()})


def flags_from_params(graph: Mapping, cross: Mapping) -> dict:
    """The flag values that rebuild recorded graph parameters (the inverse of ``graphs_from_flags``)."""
    intra_spec, cross_spec = GRAPHS.get(graph.get("name")), CROSS.get(cross.get("name"))
    if intra_spec is None:
        raise PygmatchError(f"unknown graph {graph.get('name')!r}; choose from {', '.join(GRAPHS)}")
    if cross_spec is None:
        raise PygmatchError(f"unknown cross graph {cross.get('name')!r}; choose from {', '.join(CROSS)}")
    flags = {"graph": graph["name"], "cross": cross["name"]}
    flags.update({f: graph[p] for f, p in intra_spec.flags.items() if p in graph})
    flags.update({f: cross[p] for f, p in cross_spec.flags.items() if p in cross})
    return flags


def num_edge_sets(graph: Mapping) -> int:
    """How many edge sets (model branches) the recorded graph produces: derived, never stored."""
    return len(graph["ks"]) if graph.get("name") == "multiscale" else 1
