"""A pipeline's ms per pair at 1024 SIFT keypoints (default: the shipped ``default``, the candidate
graph network followed by the learned refiner) by torch thread count and OpenMP wait policy, on a
quiet CPU and beside a CPU-burning process: why ``Pipeline`` and the eval commands default to one
thread.

    python -m benchmarks.threads [--method default] [--configs 1,2,2-passive] [--repeats 20] [--warmup 3] [--burners 1] [--out benchmarks/results]

Configurations: ``N`` = ``Pipeline.load(METHOD, threads=N)``; ``N-passive`` = the same with
``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep instead of spinning; it only takes effect
when set before torch is imported, so every configuration runs in a fresh process with its own
environment); ``default`` = torch's own thread count (one per core), what pygmatch used before.
Each configuration is measured twice: on the machine as it is ("quiet": run it on an otherwise
idle machine; the load average before each measurement is recorded and a warning printed when it
is not idle), and with ``--burners`` background processes each running a single-threaded numpy
matmul loop (bounded by a deadline, and stopped as soon as the measurement ends). Timed: the
median of ``--repeats`` calls of ``Pipeline.match`` (matching and refinement; SIFT extracted once
beforehand) on a fixed pair of real SIFT keypoints (an embedded COCO image at 1280x960 and its
warp, 1024 keypoints each), after ``--warmup`` calls. Writes ``threads.md`` and ``threads.json`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def parse_config(text: str) -> tuple[int | None, bool]:
    """``"2-passive"`` -> (2, True); ``"default"`` -> (None, False)."""
    base, _, policy = text.partition("-")
    if policy not in ("", "passive"):
        raise argparse.ArgumentTypeError(f"bad configuration {text!r}: expected N, N-passive or default")
    if base == "default":
        return None, policy == "passive"
    if not base.isdigit() or int(base) < 1:
        raise argparse.ArgumentTypeError(f"bad configuration {text!r}: expected N, N-passive or default (N >= 1)")
    return int(base), policy == "passive"


def child_env(config: str) -> dict:
    """The environment of a measuring process: only this configuration's thread settings."""
    threads, passive = parse_config(config)
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = "1"  # numpy's BLAS is not what is measured
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def measure(config: str, method: str, repeats: int, warmup: int) -> dict:
    """In a process started with ``child_env(config)``: time the pipeline ``method``."""
    import numpy as np
    import torch

    from pygmatch.data import EMBEDDED_IMAGES, list_images, make_pair, pair_rng, read_gray
    from pygmatch.data.features import extract
    from pygmatch.pipeline import Features, Pipeline
    from pygmatch.threads import torch_threads

    threads, _ = parse_config(config)
    size = (1280, 960)  # large enough for 1024 SIFT keypoints in both images
    image = read_gray(list_images(EMBEDDED_IMAGES)[0], size)
    im0, im1, _ = make_pair(image, pair_rng(0, 0), 1.0)
    kp0, kp1 = extract(im0, "sift", 1024), extract(im1, "sift", 1024)
    f0, f1 = Features(im0, kp0), Features(im1, kp1)
    pipe = Pipeline.load(method, threads=threads)
    for _ in range(warmup):
        pipe.match(f0, f1)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        pipe.match(f0, f1)
        times.append((time.perf_counter() - t) * 1e3)
    with torch_threads(threads):
        used = torch.get_num_threads()  # what the matching ran with
    ms = np.array(times)
    return {"config": config, "method": method, "torch_threads": used, "wait_policy": os.environ.get("OMP_WAIT_POLICY", "(OpenMP default)"),
            "keypoints": [len(kp0), len(kp1)], "repeats": repeats, "ms_median": float(np.median(ms)),
            "ms_p10": float(np.percentile(ms, 10)), "ms_p90": float(np.percentile(ms, 90)), "ms_all": [round(float(v), 2) for v in ms]}


def burn(seconds: float) -> None:
    """A bounded single-threaded CPU load: numpy matmuls until the deadline."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((256, 256))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(20):
            a = a @ a
            a /= np.abs(a).max() + 1e-12


def start_burners(n: int, seconds: float) -> list[subprocess.Popen]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return [subprocess.Popen([sys.executable, "-m", "benchmarks.threads", "--burn", str(seconds)], env=env, cwd=ROOT) for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_config(config: str, args, burners: int) -> dict:
    load_before = os.getloadavg()[0]
    procs = start_burners(burners, args.burn_limit) if burners else []
    try:
        if procs:
            time.sleep(args.burn_ramp)  # the load is on before the model loads
        cmd = [sys.executable, "-m", "benchmarks.threads", "--child", config, "--method", args.method, "--repeats", str(args.repeats),
               "--warmup", str(args.warmup)]
        try:
            r = subprocess.run(cmd, env=child_env(config), cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"config": config, "background": burners, "error": f"timed out after {args.timeout} s", "load_before": load_before}
        if procs and any(p.poll() is not None for p in procs):
            print(f"warning: a burner ended before the measurement of {config} did (raise --burn-limit)", file=sys.stderr)
    finally:
        stop(procs)
    if r.returncode != 0:
        return {"config": config, "background": burners, "error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}",
                "load_before": load_before}
    result = json.loads(r.stdout.strip().splitlines()[-1])
    result.update(background=burners, load_before=load_before)
    return result


def write_results(results: list[dict], args, out: Path) -> None:
    import torch  # noqa: PLC0415  (the parent's torch only reports versions; it runs nothing)

    out.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "parallel": torch.__config__.parallel_info().splitlines()[-1].strip(),
            "method": args.method, "repeats": args.repeats, "warmup": args.warmup, "burners": args.burners,
            "date": time.strftime("%Y-%m-%d %H:%M")}
    (out / "threads.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))

    def cell(r):
        if r is None:
            return "—"
        return r.get("error", f"{r['ms_median']:.0f} ({r['ms_p10']:.0f}–{r['ms_p90']:.0f})")

    by = {(r["config"], r["background"]): r for r in results}
    lines = [
        "# Torch threads on a shared CPU",
        "",
        f"`python -m benchmarks.threads --method {args.method} --configs {','.join(args.configs)} --repeats {args.repeats} "
        f"--burners {args.burners}` ({meta['date']}; {meta['cpus']} CPUs, torch {meta['torch']}, {meta['parallel']}): the "
        f"`{args.method}` pipeline, `Pipeline.match` (matching and refinement, SIFT extracted beforehand) on 1024 + 1024 real "
        "SIFT keypoints, median ms per pair (10th–90th percentile) "
        f"over {args.repeats} calls after {args.warmup} warm-up calls; each configuration in its own process. "
        f"Busy: {args.burners} single-threaded numpy matmul process(es) running beside it.",
        "",
        "| configuration | wait policy | quiet ms/pair | busy ms/pair | busy / quiet | load before (quiet, busy) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for config in args.configs:
        q, b = by.get((config, 0)), (by.get((config, args.burners)) if args.burners else None)  # --burners 0: no busy run
        ratio = f"{b['ms_median'] / q['ms_median']:.1f}×" if q and b and "error" not in q and "error" not in b else "—"
        policy = next((r.get("wait_policy") for r in (q, b) if r and "wait_policy" in r), "")
        loads = ", ".join(f"{r['load_before']:.2f}" if r else "—" for r in (q, b))
        lines.append(f"| {config} | {policy} | {cell(q)} | {cell(b)} | {ratio} | {loads} |")
    lines += ["", "`N` = `Pipeline.load(METHOD, threads=N)`; `-passive` = `OMP_WAIT_POLICY=PASSIVE` set before torch is imported; "
              "`default` = torch's own thread count. A quiet column measured with a load average well above 0 was not quiet.", ""]
    (out / "threads.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="default", help="the pipeline timed (MATCHER[+REFINER], as eval.coco's --methods)")
    p.add_argument("--configs", default="1,2,2-passive", help="comma-separated: N, N-passive or default")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--burners", type=int, default=1, help="background CPU-burning processes of the busy runs (0: quiet runs only)")
    p.add_argument("--burn-ramp", type=float, default=1.0, help="seconds the burners run before a measurement starts")
    p.add_argument("--burn-limit", type=float, default=900.0, help="a burner stops by itself after this many seconds")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds one measurement may take")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--burn", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.burn is not None:
        burn(args.burn)
        return 0
    if args.child is not None:
        print(json.dumps(measure(args.child, args.method, args.repeats, args.warmup)))
        return 0
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in args.configs:
        try:
            parse_config(c)
        except argparse.ArgumentTypeError as e:
            p.error(str(e))
    if args.repeats < 1 or args.warmup < 0 or args.burners < 0:
        p.error("--repeats must be >= 1, --warmup and --burners >= 0")
    results = []
    for burners in ([0, args.burners] if args.burners else [0]):
        for config in args.configs:
            load = os.getloadavg()[0]
            if not burners and load > 0.5:
                print(f"warning: load average {load:.2f} before the quiet run of {config}: the machine is not quiet", file=sys.stderr)
            r = run_config(config, args, burners)
            results.append(r)
            what = "busy" if burners else "quiet"
            done = r["error"] if "error" in r else f"{r['ms_median']:.1f} ms/pair (threads {r['torch_threads']}, {r['wait_policy']})"
            print(f"{config:>12} {what:>5}: {done}", flush=True)
    write_results(results, args, args.out)
    print(f"wrote {args.out / 'threads.md'} and {args.out / 'threads.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
