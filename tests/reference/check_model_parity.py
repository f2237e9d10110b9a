#!/usr/bin/python3
"""Checks the musiq binary's scores against the NumPy reference (ctest driver).

  check_model_parity.py --musiq PATH/musiq --make-model PATH/tools/musiq-make-test-model
      --num-classes 1|10 --seed N --size full|small --workdir DIR [--rtol 1e-4]
      [--precision fp32|bf16] IMAGE...

1. Makes the weights file DIR/parity_c{C}_seed{N}_{size}.h5 with
   `python make-model OUT.h5 --seed N --size S --num-classes C`, make-model
   being a Python script run by this same interpreter (kept and reused when
   it already exists).
2. Scores every image with musiq_reference.py (beside this file; the
   reference keeps the padding tokens and masks them, the engine may drop
   them) and with `musiq score --device cpu --weights OUT.h5 IMAGE...`, which
   prints one JSON object per line with at least "path" and "score"; both at
   --precision (bf16: the reference rounds as docs/precision.md defines).
3. Compares.  Bound (default, --bound scaled):

       |engine - ref| <= rtol * max(|ref|, S)

   where S is the reference's first-order error scale of the score:
   S = sum_j |d score / d logit_j| * sum_i |cls_i * head_kernel_ij|, i.e. how
   much the score moves per unit relative error of the final CLS features.
   For a 1-class head S = sum_i |cls_i * w_i|: a random head can put the
   score near 0 by cancellation, where a plain relative bound would be
   meaningless; for 10 classes the score is in [1, 10], so |ref| dominates.
   --bound relative uses rtol * max(|ref|, 1e-3) instead.

Prints a table (image, reference, engine, abs and relative error, bound) and
exits 1 on any mismatch, missing record or failure, 0 otherwise.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import musiq_reference as ref  # noqa: E402


def make_model(args):
    os.makedirs(args.workdir, exist_ok=True)
    out = os.path.join(args.workdir, "parity_c%d_seed%d_%s.h5"
                       % (args.num_classes, args.seed, args.size))
    if os.path.exists(out):
        print("using existing %s" % out)
        return out
    tmp = "%s.tmp%d.h5" % (out[:-3], os.getpid())
    # This interpreter (the one the build is configured with), never the tool's #! line.
    cmd = [sys.executable, args.make_model, tmp, "--seed", str(args.seed),
           "--size", args.size, "--num-classes", str(args.num_classes)]
    print("$ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd)
    if r.returncode != 0 or not os.path.exists(tmp):
        if os.path.exists(tmp):
            os.remove(tmp)
        raise SystemExit("make-model failed (exit %d)" % r.returncode)
    os.replace(tmp, out)   # atomic: parallel tests never see a partial file
    return out


def run_engine(args, weights):
    cmd = [args.musiq, "score", "--device", "cpu", "--precision", args.precision,
           "--weights", weights] + list(args.images)
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.time()
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print("engine timed out after %d s" % args.timeout)
        return {}, False
    dt = time.time() - t0
    records = {}
    for line in r.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "path" in rec:
            records[rec["path"]] = rec
    if r.returncode != 0:
        print("engine exited %d; stderr:\n%s" % (r.returncode, r.stderr[-4000:]))
    else:
        print("engine: %.2f s" % dt)
    return records, r.returncode == 0


def find_record(records, path):
    if path in records:
        return records[path]
    real = os.path.realpath(path)
    for k, v in records.items():
        if os.path.realpath(k) == real:
            return v
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--musiq", required=True)
    ap.add_argument("--make-model", required=True)
    ap.add_argument("--num-classes", type=int, required=True, choices=(1, 10))
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--size", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--bound", choices=("scaled", "relative"), default="scaled")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--timeout", type=int, default=1800,
                    help="seconds allowed for the engine run")
    ap.add_argument("images", nargs="+")
    args = ap.parse_args(argv)

    weights = make_model(args)
    model = ref.load_model(weights, precision=args.precision)
    if int(model.config["num_classes"]) != args.num_classes:
        raise SystemExit("%s has num_classes %s, expected %d"
                         % (weights, model.config["num_classes"], args.num_classes))

    refs = {}
    failures = 0
    t0 = time.time()
    for path in args.images:
        try:
            refs[path] = ref.score_image(model, ref.load_image(path))
        except Exception as e:  # noqa: BLE001 - report and count as failure
            print("reference failed on %s: %s" % (path, e))
            failures += 1
    print("reference: %.2f s for %d image(s)" % (time.time() - t0, len(args.images)))

    records, ok = run_engine(args, weights)
    if not ok:
        failures += 1

    print()
    hdr = "%-40s %15s %15s %11s %11s %11s  %s" % (
        "image", "reference", "engine", "abs err", "rel err", "bound", "status")
    print(hdr)
    print("-" * len(hdr))
    for path in args.images:
        name = path if len(path) <= 40 else "..." + path[-37:]
        r = refs.get(path)
        e = find_record(records, path)
        if r is None or e is None or "score" not in e:
            print("%-40s %15s %15s %11s %11s %11s  %s" % (
                name, "-" if r is None else "%.8g" % r["score"],
                "-" if e is None or "score" not in e else e["score"], "", "", "",
                "MISSING " + ("reference" if r is None else "engine record")))
            failures += 1
            continue
        try:
            es = float(e["score"])
        except (TypeError, ValueError):
            es = float("nan")
        rs = r["score"]
        if args.bound == "scaled":
            bound = args.rtol * max(abs(rs), r["error_scale"])
        else:
            bound = args.rtol * max(abs(rs), 1e-3)
        d = abs(es - rs)
        rel = d / max(abs(rs), 1e-30)
        good = d <= bound      # NaN compares False
        status = "ok" if good else "MISMATCH"
        if e.get("precision", args.precision) != args.precision:
            status += " (precision: engine %s)" % e["precision"]
            good = False
        if "tokens" in e and e["tokens"] != r["tokens"]:
            status += " (tokens: reference %d, engine %s)" % (r["tokens"], e["tokens"])
        print("%-40s %15.8g %15.8g %11.3g %11.3g %11.3g  %s" % (
            name, rs, es, d, rel, bound, status))
        if not good:
            failures += 1
    print()
    if failures:
        print("FAILED: %d problem(s)" % failures)
        return 1
    print("all %d image(s) agree (rtol %g, bound %s)" % (len(args.images), args.rtol, args.bound))
    return 0


if __name__ == "__main__":
    sys.exit(main())
