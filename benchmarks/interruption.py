"""``kill -9`` at random moments: ``pygmatch sfm IMAGES --out DIR --pairs exhaustive`` is run
uninterrupted once (its duration T), then into a new folder and killed with SIGKILL at ``--kills``
moments drawn uniformly in (0, T) (seed ``--seed``), each time started again with the same
command, and finally left to finish. The store it ends with (every dataset of ``features.h5`` and
``matches.h5``) must equal the uninterrupted run's, and the pairs matched over all the runs are
counted (work redone after a kill is what was in flight).

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
    rng = random.Random(args.seed)
    moments = sorted(rng.uniform(0, duration) for _ in range(args.kills))
    kills = []
    for moment in moments:
        proc = subprocess.Popen(command(work / "killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(moment)
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        parts = len(list((work / "killed" / "parts").glob("*.h5"))) if (work / "killed" / "parts").is_dir() else 0
        kills.append({"after_s": moment, "killed": not finished, "parts_on_disk": parts})
        print(f"killed after {moment:.1f} s" if not finished else f"finished before {moment:.1f} s", f"({parts} parts on disk)")
    final = subprocess.run(command(work / "killed"), env=env, check=True, capture_output=True, text=True)
    metrics = json.loads((work / "killed" / "metrics.json").read_text())
    pipe = Pipeline.load("default", max_keypoints=args.max_keypoints, match_threshold=DEFAULT_MATCH_THRESHOLD, threads=1)
    config = sfm.pipeline_config(pipe)
    equal = sfm.same_contents(sfm.Store(work / "uninterrupted", config).contents(), sfm.Store(work / "killed", config).contents())
    shutil.rmtree(work, ignore_errors=True)
    lines = ["# Interrupted with kill -9, continued", "",
             f"`python -m benchmarks.interruption --images {args.images} --kills {args.kills} --seed {args.seed} --max-keypoints "
             f"{args.max_keypoints}`: `pygmatch sfm --pairs exhaustive`, {metrics['pairs']} pairs of {len(metrics['names'])} images; "
             f"the uninterrupted run took {duration:.1f} s.", "",
             "| kill | after (s) | killed | store parts on disk afterwards |", "|---:|---:|---|---:|"]
    lines += [f"| {k + 1} | {r['after_s']:.1f} | {'yes' if r['killed'] else 'no (had finished)'} | {r['parts_on_disk']} |"
              for k, r in enumerate(kills)]
    lines += ["", f"The last run matched {metrics['pairs_matched']} of {metrics['pairs']} pairs; the store it ended with "
                  f"{'equals' if equal else 'DIFFERS FROM'} the uninterrupted run's (every dataset of features.h5 and matches.h5).", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "report.md", "\n".join(lines))
    write_text(args.out / "metrics.json", json.dumps({"duration_s": duration, "kills": kills, "equal": equal,
                                                     "last_run_pairs_matched": metrics["pairs_matched"], "pairs": metrics["pairs"],
                                                     "last_run_output": final.stdout.strip()}, indent=2))
    print("\n".join(lines))
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
