"""What an evaluation writes: markdown tables, ``report.md``, ``metrics.json``, the per-pair
corner errors and the plots."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import viz
from ..errors import PygmatchError
from ..files import make_folder, write_text, write_with
from .evaluate import EvalResult
from .metrics import AUC_THRESHOLDS


COLUMNS = [("P", "precision"), ("P@1", "precision@1"), ("R", "recall")] + [(f"AUC@{t}", f"auc@{t}") for t in AUC_THRESHOLDS] + \
    [(f"DLT@{t}", f"dlt_auc@{t}") for t in AUC_THRESHOLDS] + [("matches", "matches"), ("ms/pair", "ms_per_pair")]
GROUP_COLUMNS = [("P", "precision"), ("P@1", "precision@1"), ("R", "recall")] + \
    [(f"AUC@{t}", f"auc@{t}") for t in AUC_THRESHOLDS] + [("DLT@3", "dlt_auc@3"), ("matches", "matches"), ("pairs", "pairs"), ("failed", "failed")]


def _cell(value) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    return f"{value:.1f}"


def format_rows(rows: list[tuple[list[str], dict]], labels: list[str], columns=COLUMNS) -> str:
    """A markdown table: each row is ``(label cells, summary)``; ``columns`` are (heading, key)."""
    widths = [max(len(label), *(len(r[0][i]) for r in rows)) for i, label in enumerate(labels)]
    cols = [(c.rjust(6), key) for c, key in columns]
    head = "| " + " | ".join(label.ljust(w) for label, w in zip(labels, widths)) + " | " + " | ".join(c for c, _ in cols) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|" + "|".join("-" * (len(c) + 1) + ":" for c, _ in cols) + "|"
    lines = [head, rule]
    for cells, s in rows:
        values = [_cell(s[key]).rjust(len(c)) for c, key in cols]
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(cells, widths)) + " | " + " | ".join(values) + " |")
    return "\n".join(lines)


def format_table(summary: dict[str, dict], columns=COLUMNS) -> str:
    """A markdown table, one row per method."""
    return format_rows([([name], s) for name, s in summary.items()], ["method"], columns)


def format_group_table(groups: dict[str, dict[str, dict]], label: str, extra: dict[str, str] | None = None,
                       extra_label: str = "", columns=GROUP_COLUMNS) -> str:
    """One row per (group, method) of ``summarize_groups``; ``extra`` adds a column per group."""
    labels = [label] + ([extra_label] if extra is not None else []) + ["method"]
    rows = [([group] + ([extra[group]] if extra is not None else []) + [name], s)
            for group, by_method in groups.items() for name, s in by_method.items()]
    return format_rows(rows, labels, columns)


# what an evaluation writes into its --out folder (eval.hpatches adds by_sequence.json, eval.pose writes pose_errors.npz)
REPORT_FILES = ("report.md", "metrics.json", "corner_errors.npz", "corner_error.png", "precision_recall.png", "by_sequence.json",
                "pose_errors.npz")


def _previous_report(out: Path) -> list[Path]:
    """The files of an earlier evaluation in ``out``: its report files, then its match drawings."""
    previous = [out / name for name in REPORT_FILES if (out / name).is_file()]
    drawings = sorted((out / "matches").glob("*.png")) if (out / "matches").is_dir() else []
    return previous + drawings


def clear_previous_report(out: Path, overwrite: bool = False, remove: bool = True) -> None:
    """Before an evaluation writes into ``out``: an earlier evaluation there is refused unless
    ``overwrite``, and then removed (its files and match drawings), so that no stale drawing of
    another method stays beside the new report. Other files in the folder are left alone.
    ``remove=False`` only checks (a command does that before any work, and removes just before
    it writes, so that a failed start loses nothing)."""
    out = Path(out)
    previous = _previous_report(out)
    if not previous:
        return
    if not overwrite:
        raise PygmatchError(f"--out {out}: holds an earlier evaluation ({previous[0].name}); "
                            f"give another --out or --overwrite to replace it")
    for path in previous if remove else []:
        path.unlink()


def default_out(default: Path, overwrite: bool = False) -> Path:
    """Where an evaluation goes when no ``--out`` is given: ``default`` (replaced with
    ``overwrite``), or, when it holds an earlier evaluation, the first of ``default-2``,
    ``default-3``, ... that holds none, said in a line: the command works as the README prints it,
    however often it is run, and nothing earlier is lost."""
    default = Path(default)
    out, n = default, 1
    while (not overwrite and _previous_report(out)) or (out.exists() and not out.is_dir()):
        n += 1
        out = default.with_name(f"{default.name}-{n}")
    if out != default:
        print(f"{default} holds an earlier evaluation; this one goes to {out} (--out DIR to choose the folder, "
              f"--overwrite to replace {default})", flush=True)
    return out


def write_report(result: EvalResult, out: Path, context: str = "", sections: list[str] = ()) -> None:
    make_folder(out)
    write_text(out / "metrics.json", json.dumps(result.summary, indent=2))
    # Per-pair errors (inf = no homography), so models can be compared pair by pair later
    # (pygmatch.evaluation.metrics.auc_difference).
    write_with(out / "corner_errors.npz", lambda path: np.savez(path, **result.errors))
    viz.plot_error_curves(result.errors, out / "corner_error.png", title="RANSAC corner error")
    viz.plot_bars(result.summary, ["precision", "recall", "auc@3", "auc@5"], out / "precision_recall.png")
    any_method = next(iter(result.summary.values()))
    lines = [
        "# pygmatch evaluation",
        "",
        context,
        f"Pairs evaluated: {any_method['pairs']}, skipped: {len(result.skipped)}. "
        f"Keypoint extraction: {result.extract_ms:.1f} ms per image (median). "
        "P (P@1): % of matches within 3 px (1 px) of the true homography's reprojection; R: % of ground-truth matches found; "
        "AUC of the corner-error curve at 1/3/5/10 px with RANSAC (3 px) and with weighted DLT."
        + (" oracle@PX rows are ceilings, not matchers: the ground-truth matches at PX px, computed with the true homography."
           if any(name.startswith("oracle@") for name in result.summary) else "")
        + (" nn-oracle@PX rows keep the mutual nearest neighbours within PX px of the truth: how far a perfect selection among"
           " nn's candidates can go." if any(name.startswith("nn-oracle@") for name in result.summary) else ""),
        "",
        format_table(result.summary),
        "",
        "![corner error](corner_error.png) ![precision/recall](precision_recall.png)",
        "",
        *sections,
    ]
    if result.skipped:
        lines += ["## Skipped", ""] + [f"- {s}" for s in result.skipped] + [""]
    write_text(out / "report.md", "\n".join(lines))
