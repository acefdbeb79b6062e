"""``python -m train.candidate_graph --bank BANK --out candidate_graph.pt``: train the candidate graph
network (``pygmatch.nn.candidate_graph``: descriptor candidates judged by message passing over their
graphs in both images, in pixels) from a feature bank (``python -m train.bank``). The bank's last
``--val-pairs`` pairs are held out and measured every ``--val-every`` steps; the model is written
then too (so a long run can be evaluated while it trains), with a ``.json`` record beside it."""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from pygmatch.commands.flags import add_graph_args, non_negative, non_negative_int, positive, probability_threshold, run_cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.candidate_graph", description=__doc__)
    p.add_argument("--bank", nargs="+", required=True, metavar="BANK[:D,D]",
                   help="feature banks (python -m train.bank), SIFT; BANK:1,2 takes only its pairs of difficulties 1 and 2")
    p.add_argument("--out", type=Path, required=True, help="weights file to write (.pt); a .json of the run is written beside it")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--snapshots", action="store_true",
                   help="also keep the model of every measurement as OUT-PAIRS.pt (PAIRS: training pairs seen), for learning curves")
    p.add_argument("--pairs", type=positive(int), default=None, help="train on each bank's first N pairs (default: all but --val-pairs)")
    p.add_argument("--val-pairs", type=non_negative_int, default=100, help="each bank's last N pairs, held out to follow the training")
    p.add_argument("--val-every", type=positive(int), default=200, help="steps between held-out measurements (and saves)")
    p.add_argument("--epochs", type=positive(int), default=10)
    p.add_argument("--max-minutes", type=positive(float), default=None, help="stop after this long (the lr schedule follows it)")
    p.add_argument("--lr", type=positive(float), default=2e-3)
    p.add_argument("--batch-size", type=positive(int), default=4, help="pairs per step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=positive(int), default=1, help="processes building the candidate graphs")
    p.add_argument("--dim", type=positive(int), default=64)
    p.add_argument("--layers", type=positive(int), default=4)
    p.add_argument("--heads", type=positive(int), default=2)
    p.add_argument("--candidates", choices=("mutual", "top2"), default="mutual")
    p.add_argument("--no-messages", action="store_true", help="ablation: no attention messages, uniform-weight motion fits")
    p.add_argument("--ortho-weight", type=non_negative(float), default=0.0, help="multiscale: orthogonality loss between the scales' messages")
    p.add_argument("--threshold", type=probability_threshold, default=0.5, help="inference: keep candidates above this probability")
    p.add_argument("--min-keep", type=non_negative_int, default=20, help="inference: and at least this many of the most probable ...")
    p.add_argument("--pad-from", type=non_negative_int, default=10,
                   help="inference: ... when at least this many pass on their own (fewer: the images do not overlap; 0: always)")
    add_graph_args(p, cross=False, k=8)  # over the candidates' positions in each image
    return p


def main(argv=None) -> int:
    import torch  # noqa: PLC0415 (keeps --help fast)

    from pygmatch.data.bank import FeatureBank  # noqa: PLC0415
    from pygmatch.errors import PygmatchError  # noqa: PLC0415
    from pygmatch.graphs.registry import graph_from_flags, graph_params  # noqa: PLC0415
    from pygmatch.files import make_parent_folder, writable_file, write_text  # noqa: PLC0415
    from pygmatch.matching.candidate_graph import CandidateGraphMatching  # noqa: PLC0415
    from pygmatch.nn.candidate_graph import CandidateGraphConfig  # noqa: PLC0415
    from pygmatch.training.candidate_graph import bank_graphs, fit_candidate_graph  # noqa: PLC0415

    args = parser().parse_args(argv)
    writable_file(args.out, "--out", example="candidate_graph.pt")
    if args.out.exists() and not args.overwrite:
        raise PygmatchError(f"--out {args.out}: already exists; choose another --out or pass --overwrite to replace it")
    cfg = CandidateGraphConfig(dim=args.dim, layers=args.layers, heads=args.heads, graph=graph_params(graph_from_flags(vars(args))),
                               candidates=args.candidates, messages=not args.no_messages, ortho_weight=args.ortho_weight,
                               threshold=args.threshold, min_keep=args.min_keep, pad_from=args.pad_from)
    torch.set_num_threads(1)
    banks = []
    for spec in args.bank:
        path, _, ds = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
        difficulties = tuple(float(d) for d in ds.split(",")) if ds else None
        total = len(FeatureBank(path))
        n_train = min(args.pairs or total, total - args.val_pairs)
        if n_train < 1:
            raise PygmatchError(f"{path}: holds {total} pairs, not more than --val-pairs {args.val_pairs}")
        banks.append((path, difficulties, total, n_train))
    start = time.perf_counter()
    train, val = [], []
    for path, difficulties, total, n_train in banks:
        train += bank_graphs(path, cfg, 0, n_train, args.workers, difficulties=difficulties)
        if args.val_pairs:
            val += bank_graphs(path, cfg, total - args.val_pairs, total, args.workers, difficulties=difficulties)
    n_train = sum(b[3] for b in banks)
    prep = time.perf_counter() - start
    print(f"{len(train)} training graphs ({sum(d.num_nodes for d in train)} candidates) from {n_train} bank pairs, "
          f"{len(val)} held-out, built in {prep / 60:.1f} min", flush=True)
    record = {"banks": [{"bank": b[0], "difficulties": b[1], "pairs": b[3]} for b in banks], "pairs": n_train, "graphs": len(train),
              "val_pairs": args.val_pairs, "epochs": args.epochs, "max_minutes": args.max_minutes,
              "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed, "config": asdict(cfg), "prepare_minutes": round(prep / 60, 2),
              "threads": 1}
    make_parent_folder(args.out)

    def checkpoint(model, history, final):
        rec = {**record, "curve": history.rows, "train_minutes": history.rows[-1]["minutes"] if history.rows else 0,
               "pairs_seen": history.rows[-1]["pairs"] if history.rows else 0, "finished": final,
               "parameters": sum(p.numel() for p in model.parameters())}
        CandidateGraphMatching(model).save(args.out, training=rec)
        if args.snapshots and history.rows:
            CandidateGraphMatching(model).save(args.out.with_name(f"{args.out.stem}-{history.rows[-1]['pairs']:07d}.pt"), training=rec)
        write_text(args.out.with_suffix(".json"), json.dumps(rec, indent=2))
        model.train()

    fit_candidate_graph(train, cfg, args.epochs, args.lr, args.batch_size, args.seed, val or None, args.val_every, args.max_minutes, checkpoint,
                        log=lambda line: print(line, flush=True))
    print(f"wrote {args.out} ({(time.perf_counter() - start) / 60:.1f} min in all)")
    return 0


def cli() -> None:
    """The ``pygmatch-candidate-graph`` console script."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
