"""The research variants change the computation as described, not just run."""
import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from pygmatch.data.pair_data import make_pair_data
from pygmatch.errors import PygmatchError
from pygmatch.data.features import extract
from pygmatch.graphs import KNNGraph, MultiScaleGraph
from pygmatch.graphs.descriptor_knn import descriptor_knn_edges
from pygmatch.nn import GraphMatcher, MatcherConfig


@pytest.fixture(scope="module")
def pair_knn(image):
    kp = extract(image, "sift", 80)
    return make_pair_data(kp, kp.subset(np.arange(60)), (640, 480), KNNGraph(6), None, np.eye(3))


def record_self_calls(model):
    """(layer, value, edge_index, dense?) of every self-attention call on image 0 (side "0")."""
    calls, image0 = [], {}
    build_graph = model.image_graph

    def image_graph(data, side, *args, **kwargs):  # remember image 0's graph: its x is the conv's input
        g = build_graph(data, side, *args, **kwargs)
        if side == "0":
            image0["graph"] = g
        return g

    model.image_graph = image_graph
    for k, layer in enumerate(model.layers):
        for conv in layer.self_convs:
            def hook(mod, args, kwargs, k=k):
                x = args[0]
                if isinstance(x, tuple) and x[0] is image0["graph"].x:
                    calls.append((k, kwargs.get("value"), args[1] if len(args) > 1 else kwargs.get("edge_index"), kwargs.get("dense") is not None))
            conv.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


def build(**kw):
    torch.manual_seed(0)
    # no descriptor prior: its gate starts at 0 and would hide the features from the assignment
    return GraphMatcher(MatcherConfig(dim=32, layers=3, heads=2, graph={"name": "knn", "k": 6}, descriptor_prior=False, **kw)).eval()


def test_frozen_first_values_come_from_the_input(pair_knn):
    model = build(value_update="frozen-first-2")
    calls = record_self_calls(model)
    with torch.no_grad():
        out = model(pair_knn)
    values = [v for _, v, _, _ in calls]
    assert values[0] is not None and values[1] is values[0] and values[2] is None
    enc = model.encoder(*[pair_knn[k] for k in ("x_0",)], *_encoder_args(model, pair_knn))
    torch.testing.assert_close(values[0], enc)
    with torch.no_grad():
        assert not torch.allclose(out.log_assignment, build()(pair_knn).log_assignment)


def _encoder_args(model, data):
    from pygmatch.nn.model import side_inputs
    x, pos, batch = side_inputs(data, "0")
    return pos, data.scale_0, data.ori_0, data.score_0, batch, 1


def test_every_n_values_are_refreshed_every_n_layers(pair_knn):
    model = build(value_update="every-2")
    calls = record_self_calls(model)
    with torch.no_grad():
        model(pair_knn)
    assert calls[0][1] is None and calls[1][1] is not None and calls[2][1] is None  # refreshed at layers 0 and 2


def test_per_layer_graphs_follow_the_updated_descriptors(pair_knn):
    model = build(graph_update="per-layer")
    inputs = []
    orig = model.layers[1].self_attention

    def spy(g, **kw):
        inputs.append((g.x.detach().clone(), g.edge_sets[0].clone()))
        return orig(g, **kw)

    model.layers[1].self_attention = spy
    with torch.no_grad():
        model(pair_knn)
    x, edges = inputs[0]  # image 0 at layer 1
    assert torch.equal(edges, descriptor_knn_edges(x, 6))
    assert not torch.equal(edges, pair_knn.edge_index_0)  # not the positional kNN any more


def test_dense_warmup_skips_complete_sets(image):
    kp = extract(image, "sift", 80)
    pair = make_pair_data(kp, kp, (640, 480), MultiScaleGraph((4, "all"), "nested"), None, np.eye(3))
    model = GraphMatcher(MatcherConfig(dim=32, layers=3, heads=2, graph={"name": "multiscale", "ks": [4, "all"]}, dense_warmup_layers=2)).eval()
    calls = record_self_calls(model)
    with torch.no_grad():
        model(pair)
    dense_layers = sorted({k for k, _, _, dense in calls if dense})
    sparse_layers = sorted({k for k, _, _, dense in calls if not dense})
    assert dense_layers == [2] and sparse_layers == [0, 1, 2]


def test_bad_variant_values():
    with pytest.raises(PygmatchError, match="frozen-first-N"):
        MatcherConfig(value_update="sometimes")
    with pytest.raises(PygmatchError, match="graph_update"):
        MatcherConfig(graph_update="weekly")


def test_orthogonality_loss_pushes_branches_apart(image):
    from pygmatch.training.module import MatcherModule
    kp = extract(image, "sift", 100)
    pair = make_pair_data(kp, kp, (640, 480), MultiScaleGraph((4, 16), "nested"), None, np.eye(3))
    batch = next(iter(DataLoader([pair], batch_size=1, follow_batch=["x_0", "x_1"])))
    torch.manual_seed(0)
    module = MatcherModule(MatcherConfig(dim=32, layers=2, heads=2, graph={"name": "multiscale", "ks": [4, "all"]}).to_dict(), ortho_weight=1.0)
    for layer in module.model.layers:  # identical branches on overlapping graphs: strongly aligned outputs
        layer.self_convs[1].load_state_dict(layer.self_convs[0].state_dict())
    before = module.losses(batch, module.model(batch))["ortho"].item()
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        module.losses(batch, module.model(batch))["ortho"].backward()
        opt.step()
    after = module.losses(batch, module.model(batch))["ortho"].item()
    assert before > 0.3 and after < 0.5 * before
