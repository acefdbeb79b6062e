"""``kill -9`` at random moments: ``pygmatch sfm IMAGES --out DIR --pairs exhaustive`` is run
uninterrupted once (its duration T); then ``--kills`` times, into a new folder each, started, killed
with SIGKILL at a moment drawn uniformly in (0, T) (seed ``--seed``) and run again to the end with
the same command, until ``--kills`` runs were killed (a run that finished before its moment is
reported and not counted). Each continued run's store (every dataset of ``features.h5`` and ``matches.h5``)
must equal the uninterrupted run's; the pairs stored at the kill and the pairs the continued run
matched are counted (work redone after a kill is what was in flight).

    python -m benchmarks.interruption [--images ../shared/data/sfm/sacre_coeur] [--kills 5] [--max-keypoints 4096]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from pygmatch import Pipeline, sfm
from pygmatch.evaluation.sfm import DEFAULT_MATCH_THRESHOLD
from pygmatch.files import write_text

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sfm" / "sacre_coeur"


def stored_pairs(folder: Path) -> int:
    """Pairs held by a store's complete files (``matches.h5`` and its parts), read without changing it."""
    import h5py

    files = [folder / "matches.h5", *(folder / "parts").glob("matches-*.h5")] if folder.is_dir() else []
    total = 0
    for path in files:
        if path.is_file():
            with h5py.File(path, "r") as f:
                total += sum(len(f[name0]) for name0 in f)
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.interruption", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, default=DATA)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-keypoints", type=int, default=4096)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/interruption"))
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pygmatch-interruption-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "pygmatch.commands.match", "sfm", str(args.images), "--out", str(out), "--pairs", "exhaustive",
                "--max-keypoints", str(args.max_keypoints), "--no-progress"]

    start = time.perf_counter()
    subprocess.run(command(work / "uninterrupted"), env=env, check=True, stdout=subprocess.DEVNULL)
    duration = time.perf_counter() - start
    pipe = Pipeline.load("default", max_keypoints=args.max_keypoints, match_threshold=DEFAULT_MATCH_THRESHOLD, threads=1)
    config = sfm.pipeline_config(pipe)
    reference = sfm.Store(work / "uninterrupted", config).contents()
    rng = random.Random(args.seed)
    trials = []
    k = 0
    while sum(t["killed"] for t in trials) < args.kills and k < 3 * args.kills:  # a run that ends before its moment is not a kill
        moment, target, k = rng.uniform(0, duration), work / f"killed-{k}", k + 1
        proc = subprocess.Popen(command(target), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(moment)
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        parts = len(list((target / "parts").glob("*.h5"))) if (target / "parts").is_dir() else 0
        trial = {"after_s": moment, "killed": not finished, "parts_on_disk": parts, "pairs_stored": stored_pairs(target)}
        subprocess.run(command(target), env=env, check=True, stdout=subprocess.DEVNULL)
        metrics = json.loads((target / "metrics.json").read_text())
        trial.update(resumed_matched=metrics["pairs_matched"], equal=sfm.same_contents(reference, sfm.Store(target, config).contents()))
        trials.append(trial)
        print(trial)
    shutil.rmtree(work, ignore_errors=True)
    equal = all(t["equal"] for t in trials)
    lines = ["# Interrupted with kill -9, continued", "",
             f"`python -m benchmarks.interruption --images {args.images} --kills {args.kills} --seed {args.seed} --max-keypoints "
             f"{args.max_keypoints}`: `pygmatch sfm --pairs exhaustive`, {metrics['pairs']} pairs of {len(metrics['names'])} images; "
             f"the uninterrupted run took {duration:.1f} s. Each trial starts the command into a new folder, kills it with SIGKILL at a "
             f"moment drawn uniformly in (0, {duration:.1f} s), runs the same command again to the end and compares the store with the "
             f"uninterrupted run's (every dataset of features.h5 and matches.h5); trials go on until {args.kills} runs were killed.", "",
             "| trial | killed after (s) | store parts on disk | pairs stored | pairs the continued run matched | store equal |",
             "|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {k + 1} | {t['after_s']:.1f}{'' if t['killed'] else ' (had finished)'} | {t['parts_on_disk']} | "
              f"{t['pairs_stored']} of {metrics['pairs']} | {t['resumed_matched']} | {'yes' if t['equal'] else 'NO'} |"
              for k, t in enumerate(trials)]
    lines.append("")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "report.md", "\n".join(lines))
    write_text(args.out / "metrics.json", json.dumps({"duration_s": duration, "pairs": metrics["pairs"], "trials": trials, "equal": equal},
                                                    indent=2))
    print("\n".join(lines))
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
