"""What the commands share: one-line errors and warnings (``run_cli``, ``ArgumentParser``), flag
types (the library's value parsers, ``pygmatch.values``, with argparse's error messages), the
graph flags."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Callable

from .. import values
from ..errors import Interrupted, PygmatchError
from ..data.features import SPREAD_BELOW, SPREAD_CANDIDATES
from ..data.selection import SELECTIONS
from ..graphs.names import DEFAULTS, GRAPH_NAMES, METHODS, MODES, parse_ks

# --features of every command that builds pipelines by name
FEATURES_HELP = ("the keypoints: sift, orb, asift or xfeat (learned; the anchors extra: make anchors); default: those each graph "
                 "network was trained on, sift for the other matchers")


def add_selection_arg(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--selection``: which keypoints fill the budget (``Extractor``'s ``selection``); ``default``
    None: the pipelines' (``features.default_selection``)."""
    said = (f"the pipelines': SIFT's spread below {SPREAD_BELOW} keypoints, else the strongest" if default is None
            else f"{default}, the networks' training")
    p.add_argument("--selection", choices=SELECTIONS, default=default,
                   help=f"which keypoints fill the budget: the strongest, or spread over the image (ANMS among {SPREAD_CANDIDATES}x "
                        f"as many; docs/results.md) (default: {said})")


class ArgumentParser(argparse.ArgumentParser):
    """The parser of every command: a bad flag is one line, ``error: ...`` on stderr, and exit
    status 2, as every other bad input (argparse prints the usage lines before it; ``--help``
    shows them). Sub-commands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def flag_type(parse: Callable[[str], object], name: str | None = None) -> Callable[[str], object]:
    """An argparse ``type=`` from a value parser: its ``ValueError`` message becomes argparse's."""
    def parse_flag(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse_flag.__name__ = name or getattr(parse, "__name__", "value")
    return parse_flag


def int_pair(names: str, minimum: int, example: str):
    return flag_type(values.int_pair(names, minimum, example), "pair")


def positive(kind=int):
    return flag_type(values.positive(kind), kind.__name__)


def non_negative(kind=float, noun: str = "a number"):
    return flag_type(values.non_negative(kind, noun), kind.__name__)


size_type = flag_type(values.size_type, "size")
positive_int = flag_type(values.positive_int, "int")
non_negative_float = flag_type(values.non_negative_float, "float")
non_negative_int = flag_type(values.non_negative_int, "int")
probability_threshold = flag_type(values.probability_threshold, "float")
contrast_threshold = flag_type(values.contrast_threshold, "float")


def command_name(checkout: str) -> str:
    """The name a command's usage line shows, as it was started: the installed console script
    (``pygmatch-train``), ``python -m pygmatch.commands.train_run``, or the checkout's
    ``checkout`` (e.g. ``python -m train.run``)."""
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    if started.name.startswith("pygmatch-"):
        return started.name
    if started.suffix == ".py" and started.parent.name == "commands" and started.parent.parent.name == "pygmatch":
        return f"python -m pygmatch.commands.{started.stem}"
    return checkout


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run ``main``; a ``PygmatchError`` becomes ``error: ...`` on stderr and exit status 2."""
    warnings.formatwarning = _one_line_warning
    try:
        code = main(argv)
    except PygmatchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def _ks(text: str) -> tuple:
    try:
        return parse_ks(text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected increasing positive integers, optionally ending in 'all', e.g. 8,16,32,all; got {text!r}") from None


def add_graph_args(parser: argparse.ArgumentParser, k: int = DEFAULTS["k"]) -> None:
    """The graph flags shared by ``train.run`` and ``pygmatch graph`` (``pygmatch.graphs.registry.graph_from_flags``
    reads them)."""
    g = parser.add_argument_group("graph construction")
    g.add_argument("--graph", choices=GRAPH_NAMES, default=DEFAULTS["graph"], help="intra-image edge set")
    g.add_argument("--k", type=positive(int), default=k, help="knn: neighbours")
    g.add_argument("--radius", type=positive(float), default=DEFAULTS["radius"], help="radius graph: fraction of the longer image side")
    g.add_argument("--max-neighbors", type=positive(int), default=DEFAULTS["max_neighbors"], help="radius graph: cap per keypoint")
    g.add_argument("--cells", type=int_pair("COLUMNSxROWS", 1, "4x4"), default=DEFAULTS["cells"], help="partition grid COLSxROWS")
    g.add_argument("--partition", choices=METHODS, default=DEFAULTS["partition"], help="partition by grid cells or k-means")
    g.add_argument("--clusters", type=positive(int), default=DEFAULTS["clusters"], help="partition kmeans: number of groups")
    g.add_argument("--ks", type=_ks, default=DEFAULTS["ks"], help="multiscale: comma-separated k values, optionally ending in 'all'")
    g.add_argument("--rings", choices=MODES, default=DEFAULTS["rings"], help="multiscale: nested sets or disjoint rings")
