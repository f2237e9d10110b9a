#!/usr/bin/env python3
"""Python binding overhead and Ray Data throughput, on one collection, side by side.

Run with the venv that has the package and Ray (tests/python_pkg/run_in_venv.py makes
BUILD/python-venv):
    BUILD/python-venv/bin/python bench/python_binding_bench.py --musiq BUILD/musiq \
        --weights full.h5 --rounds 3 IMAGE...
Each round runs, as separate processes one after the other: the CLI (`musiq score`),
then a Python process doing Scorer(...) + score_many(...). Both wall times include
process start and model load; the images/s of the scoring alone are printed as well.
Then Ray: ray.init(num_cpus=2), read_binary_files -> map_batches(MusiqScorer) on one
actor, timed with and without Ray's start-up.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

PY_SCORE = """
import sys, time, json
t0 = time.perf_counter()
import musiq
s = musiq.Scorer(weights=sys.argv[1], device="cpu")
t1 = time.perf_counter()
scores = s.score_many(sys.argv[2:])
t2 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "score_s": t2 - t1, "scores": scores}))
"""


def cli_round(musiq, weights, images):
    t = time.perf_counter()
    r = subprocess.run([musiq, "score", "--weights", weights, "--device", "cpu", "-q", *images],
                       capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    records = [json.loads(line) for line in r.stdout.splitlines()]
    return wall, sum(x["ms"] for x in records) / 1000, [x["score"] for x in records]


def python_round(weights, images):
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PY_SCORE, weights, *images], capture_output=True,
                       text=True, check=True)
    wall = time.perf_counter() - t
    return wall, json.loads(r.stdout)


def ray_run(weights, images):
    import ray
    import musiq.ray
    d = tempfile.mkdtemp(prefix="musiq-ray-bench-")
    for p in images:
        shutil.copy(p, d)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t1 = time.perf_counter()
    ds = ray.data.read_binary_files(d, include_paths=True).map_batches(
        musiq.ray.MusiqScorer, fn_constructor_kwargs={"weights": weights, "device": "cpu"},
        concurrency=1, batch_size=4)
    rows = ds.drop_columns(["bytes"]).take_all()
    t2 = time.perf_counter()
    ray.shutdown()
    shutil.rmtree(d)
    assert len(rows) == len(images) and all(r["error"] == "" for r in rows)
    return t1 - t0, t2 - t1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--musiq", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    n = len(a.images)
    for i in range(a.rounds):
        cli_wall, cli_ms, cli_scores = cli_round(a.musiq, a.weights, a.images)
        py_wall, py = python_round(a.weights, a.images)
        assert py["scores"] == cli_scores, "Python and CLI scores differ"
        print(f"round {i}: CLI {cli_wall:.2f} s ({n / cli_wall:.3f} img/s whole process; "
              f"sum of per-image ms {cli_ms:.2f} s) | Python {py_wall:.2f} s "
              f"({n / py_wall:.3f} img/s whole process; score_many {py['score_s']:.2f} s = "
              f"{n / py['score_s']:.3f} img/s, import+load {py['load_s']:.2f} s) | "
              f"Python/CLI wall {py_wall / cli_wall:.3f}", flush=True)
    if not a.no_ray:
        start, run = ray_run(a.weights, a.images)
        print(f"ray: init {start:.1f} s, pipeline {run:.2f} s for {n} images = "
              f"{n / run:.3f} img/s (incl. actor start and model load)")


if __name__ == "__main__":
    main()
