#!/usr/bin/python3
"""Measures what --precision bf16 (and tf32) cost in accuracy, and fails past stated bounds.

  check_precision_error.py --musiq PATH/musiq --make-model PATH/tools/musiq-make-test-model
      --workdir DIR [--images N] [--max-score-error F] [--min-spearman R]
      [--max-cls-error E] [--max-tf32-cls-error E] [--json FILE]

On a full-size random model with 1 class (a stand-in for spaq, koniq and paq2piq, scores
on 0-100) and one with 10 classes (ava, scores on 1-10), both seeded:
1. makes N varied PNG images (default 64) from the photos in samples/ and tests/data/:
   each photo scaled to a longer side of 384 and 224 pixels, and two crops of it;
2. scores them all with `musiq score --device cpu` at --precision fp32 and bf16;
3. reports, per model: the largest |score(bf16) - score(fp32)| as a fraction of the
   score range (100, or 9 for 1-10), and Spearman's rank correlation of the two;
4. with the NumPy reference (musiq_reference.py, fp32, bf16 and tf32) on three of the
   images: the relative error of the CLS features before the head, ||cls_bf16 - cls_fp32||
   / ||cls_fp32||, the largest of the three, and the same for tf32 (a GPU precision, so
   the CLI cannot score it on the CPU: the reference stands in for it).
Exits 1 when a bound is passed: the score error above --max-score-error, Spearman below
--min-spearman, the CLS error above --max-cls-error (--max-tf32-cls-error for tf32).
"""

import argparse
import glob
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import musiq_reference as ref  # noqa: E402
from check_model_parity import find_record  # noqa: E402

SEED = 20261207
MODELS = ((1, 100.0), (10, 9.0))  # classes, score range


def make_images(workdir, count):
    sources = sorted(glob.glob(os.path.join(ROOT, "samples", "*.png")) +
                     glob.glob(os.path.join(ROOT, "samples", "*.jpg")) +
                     glob.glob(os.path.join(ROOT, "tests", "data", "*.png")) +
                     glob.glob(os.path.join(ROOT, "tests", "data", "*.jpg")))
    out_dir = os.path.join(workdir, "images")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for src in sources:
        photo = Image.open(src).convert("RGB")
        w, h = photo.size
        variants = []
        for side in (384, 224):
            scale = side / max(w, h)
            variants.append(photo.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                         Image.BILINEAR))
        small = variants[0]
        sw, sh = small.size
        variants.append(small.crop((0, 0, max(1, sw * 2 // 3), max(1, sh * 2 // 3))))
        variants.append(small.crop((sw // 4, sh // 5, sw, sh)))
        for i, v in enumerate(variants):
            path = os.path.join(out_dir, "%s_%d.png" % (os.path.splitext(os.path.basename(src))[0], i))
            if not os.path.exists(path):
                v.save(path)
            paths.append(path)
    if len(paths) < count:
        raise SystemExit("only %d images from the photos, %d asked" % (len(paths), count))
    return paths[:count]


def make_model(args, classes):
    path = os.path.join(args.workdir, "precision_c%d_seed%d.h5" % (classes, SEED))
    if not os.path.exists(path):
        tmp = path + ".tmp%d.h5" % os.getpid()
        subprocess.run([sys.executable, args.make_model, tmp, "--seed", str(SEED), "--size",
                        "full", "--num-classes", str(classes)], check=True)
        os.replace(tmp, path)
    return path


def scores(args, weights, precision, images):
    cmd = [args.musiq, "score", "--device", "cpu", "--precision", precision, "--weights",
           weights, "-q"] + images
    r = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True, check=True)
    records = {}
    for line in r.stdout.splitlines():
        rec = json.loads(line)
        records[rec["path"]] = rec
    out = []
    for path in images:
        rec = find_record(records, path)
        if rec is None or "score" not in rec or rec.get("precision") != precision:
            raise SystemExit("no %s score for %s" % (precision, path))
        out.append(rec["score"])
    return np.array(out, dtype=np.float64)


def spearman(a, b):
    def ranks(x):
        r = np.empty(len(x))
        r[np.argsort(x, kind="stable")] = np.arange(len(x))
        return r
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def cls_errors(weights, images):
    """{"bf16": e, "tf32": e}: the largest relative CLS error over `images`."""
    worst = {"bf16": 0.0, "tf32": 0.0}
    models = {p: ref.load_model(weights, precision=p) for p in ("fp32", *worst)}
    for path in images:
        image = ref.load_image(path)
        cls = {}
        for p, model in models.items():
            patches, spatial, scale, mask = ref.preprocess(image, model.config)
            cls[p] = ref.forward(model, patches, spatial, scale, mask)[1]["cls"].astype(np.float64)
        for p in worst:
            worst[p] = max(worst[p], float(np.linalg.norm(cls[p] - cls["fp32"]) /
                                           np.linalg.norm(cls["fp32"])))
    return worst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--musiq", required=True)
    ap.add_argument("--make-model", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--max-score-error", type=float, default=float("inf"))
    ap.add_argument("--min-spearman", type=float, default=-1.0)
    ap.add_argument("--max-cls-error", type=float, default=float("inf"))
    ap.add_argument("--max-tf32-cls-error", type=float, default=float("inf"))
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args(argv)
    if args.images < 50:
        raise SystemExit("--images: at least 50")
    os.makedirs(args.workdir, exist_ok=True)
    images = make_images(args.workdir, args.images)
    results, failures = {}, []
    for classes, score_range in MODELS:
        weights = make_model(args, classes)
        fp32 = scores(args, weights, "fp32", images)
        bf16 = scores(args, weights, "bf16", images)
        error = float(np.max(np.abs(bf16 - fp32)) / score_range)
        rho = spearman(fp32, bf16)
        results["classes_%d" % classes] = {
            "images": len(images), "score_range": score_range,
            "max_score_error_fraction": error, "spearman": rho,
            "fp32_score_spread": float(np.ptp(fp32))}
        print("%2d classes: %d images, max |bf16 - fp32| = %.3g of the range %g, "
              "Spearman %.5f (fp32 scores spread over %.3g)"
              % (classes, len(images), error, score_range, rho, np.ptp(fp32)), flush=True)
        if error > args.max_score_error:
            failures.append("%d classes: score error %.3g > %g" % (classes, error, args.max_score_error))
        if rho < args.min_spearman:
            failures.append("%d classes: Spearman %.5f < %g" % (classes, rho, args.min_spearman))
    probes = [images[0], images[len(images) // 2], images[-1]]
    cls = cls_errors(make_model(args, 1), probes)
    results["cls_relative_error"] = cls["bf16"]
    results["tf32_cls_relative_error"] = cls["tf32"]
    print("CLS features (NumPy reference, %d images): largest relative error %.3g in bf16, "
          "%.3g in tf32" % (len(probes), cls["bf16"], cls["tf32"]))
    if cls["bf16"] > args.max_cls_error:
        failures.append("CLS relative error %.3g > %g" % (cls["bf16"], args.max_cls_error))
    if cls["tf32"] > args.max_tf32_cls_error:
        failures.append("tf32 CLS relative error %.3g > %g" % (cls["tf32"], args.max_tf32_cls_error))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    for failure in failures:
        print("FAILED: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
