"""The model's configuration: defaults in one dataclass that travels inside every checkpoint."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..errors import PygmatchError
from ..graphs.registry import cross_from_params, cross_params, graphs_from_flags, graph_from_params, graph_params, num_edge_sets

CONVS = ("attention", "gat", "gatv2", "transformer")
ASSIGNMENTS = ("sinkhorn", "dual-softmax")
POSITIONAL = ("rotary", "absolute", "both")
GRAPH_UPDATES = ("static", "per-layer")

# Named sizes. "superglue" is SuperGlue's width and depth; "cpu" is the shipped model's size and the
# default of train.run (trains at ~2 pairs/s on 2 cores); "tiny" is for tests and smoke runs.
PRESETS = {
    "superglue": dict(dim=256, layers=9, heads=4),
    "small": dict(dim=128, layers=6, heads=4),
    "cpu": dict(dim=64, layers=5, heads=2),
    "tiny": dict(dim=32, layers=2, heads=2),
}


@dataclass
class MatcherConfig:
    descriptor_dim: int = 128  # 128 for SIFT, 256 for ORB
    dim: int = 256
    layers: int = 9
    heads: int = 4
    positional: str = "rotary"  # rotary: relative positions in self-attention (LightGlue); absolute: MLP (SuperGlue)
    keypoint_attrs: bool = True  # encode scale, orientation and detector score besides position
    conv: str = "attention"  # pygmatch.nn.GraphAttention, or PyG's GATConv / GATv2Conv / TransformerConv
    assignment: str = "sinkhorn"
    sinkhorn_iters: int = 50
    descriptor_prior: bool = True  # add a learnable multiple of the input descriptors' cosine similarity
    match_threshold: float = 0.2
    deep_supervision: bool = False  # loss at every layer (needed to train the early-exit heads)
    early_exit: bool = False  # inference: stop once enough keypoints are confident
    exit_confidence: float = 0.95
    exit_ratio: float = 0.95
    pruning: bool = False  # inference: drop keypoints confidently unmatchable between layers
    prune_matchability: float = 0.05
    # research variants (the notes' open questions); none changes the weights' shapes
    graph_update: str = "static"  # static | per-layer: rebuild self edges as descriptor kNN from each layer's features
    value_update: str = "every"  # every | frozen-first-N | every-N: where the attention values V come from
    dense_warmup_layers: int = 0  # skip complete self-attention edge sets in the first N layers
    # the graph transforms the model was trained with, as their own parameters (graphs.registry)
    graph: dict = field(default_factory=lambda: {"name": "complete"})
    cross: dict = field(default_factory=lambda: {"name": "complete"})
    features: str = "sift"
    max_keypoints: int = 1024

    def __post_init__(self):
        for name, choices in (("conv", CONVS), ("assignment", ASSIGNMENTS), ("positional", POSITIONAL)):
            if getattr(self, name) not in choices:
                raise PygmatchError(f"unknown {name} {getattr(self, name)!r}; choose from {', '.join(choices)}")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise PygmatchError(f"dim {self.dim} must be divisible by heads {self.heads} into an even head size")
        if self.layers < 1:
            raise PygmatchError("layers must be >= 1")
        # recorded in their canonical form ({"name": ..., the transform's parameters}): built once, read back
        self.graph, self.cross = graph_params(graph_from_params(self.graph)), cross_params(cross_from_params(self.cross))
        if self.graph_update not in GRAPH_UPDATES:
            raise PygmatchError(f"unknown graph_update {self.graph_update!r}; choose from {', '.join(GRAPH_UPDATES)}")
        self.value_schedule()
        if self.graph_update == "per-layer" and self.num_scales != 1:
            raise PygmatchError("graph_update per-layer rebuilds a single edge set; it does not combine with multi-scale graphs")
        if self.conv != "attention" and self.positional != "absolute":
            raise PygmatchError(f"--conv {self.conv} has no rotary positions: use --positional absolute")

    @property
    def num_scales(self) -> int:
        """Edge sets per image graph (multi-scale graphs: one attention branch each), from the graph."""
        return num_edge_sets(self.graph)

    def value_schedule(self) -> tuple[str, int]:
        """``value_update`` parsed: ("every", 1) by default, ("frozen-first", N) or ("every", N)."""
        text = self.value_update
        for kind in ("frozen-first", "every"):
            if text == kind == "every":
                return "every", 1
            if text.startswith(kind + "-") and text[len(kind) + 1:].isdigit() and int(text[len(kind) + 1:]) >= 1:
                return kind, int(text[len(kind) + 1:])
        raise PygmatchError(f"value_update {text!r}: expected every, frozen-first-N or every-N (N >= 1)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MatcherConfig":
        d = upgrade_flat_layout(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise PygmatchError(f"model config has unknown keys {sorted(unknown)} (from a newer pygmatch?)")
        return cls(**d)

    def architecture(self) -> dict:
        """What decides the shapes of the weights: two configs that differ here cannot share them."""
        keys = ("descriptor_dim", "dim", "layers", "heads", "positional", "keypoint_attrs", "conv", "assignment", "num_scales",
                "descriptor_prior")
        return {k: getattr(self, k) for k in keys}


def upgrade_flat_layout(d: dict) -> dict:
    """A model config of the first layout (shipped weights, older runs): ``graph`` held every graph
    flag (``{"graph": "complete", "k": 16, "ks": [...], "cross": "complete", ...}``) and
    ``num_scales`` repeated what the graph says. Returns the current layout; others pass as they are."""
    d = dict(d)
    graph = d.get("graph")
    if isinstance(graph, dict) and "name" not in graph and "graph" in graph:
        intra, cross = graphs_from_flags(graph)
        d["graph"], d["cross"] = graph_params(intra), cross_params(cross)
    if "num_scales" in d:
        stored = d.pop("num_scales")
        derived = num_edge_sets(d.get("graph", {"name": "complete"}))
        if stored != derived:
            raise PygmatchError(f"model config: num_scales {stored} does not match its graph {d.get('graph')} ({derived} edge sets)")
    return d
