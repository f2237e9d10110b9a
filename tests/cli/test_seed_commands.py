#!/usr/bin/python3
"""The command lines of run_musiq_gpu.py, with `musiq score` in its place.

Users of that tool run

    python run_musiq_gpu.py --image sample.jpg
    python run_musiq_gpu.py --image sample.jpg --benchmark
    python run_musiq_gpu.py --image sample.jpg --target-size 512 512
    python run_musiq_gpu.py --image sample.jpg --model ava

and parse records {"path", "score", "model", "device", "gpu_available"} and a benchmark
{"device", "gpu_available", "average_time_ms", "std_time_ms", "runs"}. Each command runs
here as `musiq score ...` on a sample photo, from the photo's directory, with small
random-weight koniq and ava models found by name in $MUSIQ_WEIGHTS_DIR, and the fields
such a parser reads are checked. The --target-size score must equal the score of the
photo resized beforehand by the independent NumPy resize (tests/reference/).
Run by ctest with MUSIQ_BIN set to the built binary.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from tf_resize_reference import resize_bilinear_antialias, to_uint8  # noqa: E402
from fixture_models import SMALL_MODEL, SMALL_MODEL_10_CLASSES  # noqa: E402

MUSIQ = os.environ.get("MUSIQ_BIN", os.path.join(ROOT, "build", "musiq"))
PHOTO = os.path.join(ROOT, "samples", "rocket.jpg")  # 640 x 427


class SeedCommands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="musiq-seed-")
        weights = os.path.join(cls.tmp, "weights")
        os.mkdir(weights)
        shutil.copy(SMALL_MODEL, os.path.join(weights, "koniq.h5"))
        shutil.copy(SMALL_MODEL_10_CLASSES, os.path.join(weights, "ava.h5"))
        cls.work = os.path.join(cls.tmp, "photos")
        os.mkdir(cls.work)
        shutil.copy(PHOTO, os.path.join(cls.work, "sample.jpg"))
        cls.env = dict(os.environ, MUSIQ_WEIGHTS_DIR=weights,
                       XDG_CACHE_HOME=os.path.join(cls.tmp, "cache"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def musiq(self, *args, cwd=None):
        r = subprocess.run([MUSIQ, *args], capture_output=True, text=True, timeout=600,
                           cwd=cwd or self.work, env=self.env)
        self.assertEqual(r.returncode, 0, f"musiq {' '.join(args)}: {r.stderr}")
        return r.stdout

    def record(self, *args):
        lines = [line for line in self.musiq(*args).splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, lines)
        return json.loads(lines[0])

    def check_seed_fields(self, rec, model):
        self.assertEqual(os.path.basename(rec["path"]), "sample.jpg")
        self.assertEqual(rec["path"], os.path.join(self.work, "sample.jpg"))
        self.assertIsInstance(rec["score"], float)
        self.assertTrue(math.isfinite(rec["score"]), rec)
        self.assertEqual(rec["model"], model)
        self.assertIn(rec["device"], ("cpu", "cuda"))
        self.assertIsInstance(rec["gpu_available"], bool)
        if rec["device"] == "cuda":
            self.assertTrue(rec["gpu_available"])

    def test_image(self):
        rec = self.record("score", "--image", "sample.jpg")
        self.check_seed_fields(rec, "koniq")
        self.assertEqual((rec["width"], rec["height"]), (640, 427))
        self.assertNotIn("scored_width", rec)
        # The same as naming the file as a path.
        self.assertEqual(self.record("score", "sample.jpg")["score"], rec["score"])

    def test_image_is_repeatable(self):
        shutil.copy(os.path.join(ROOT, "samples", "chelsea.png"), self.work)
        out = self.musiq("score", "--image", "sample.jpg", "--image", "chelsea.png")
        names = [os.path.basename(json.loads(line)["path"]) for line in out.splitlines()]
        self.assertEqual(names, ["chelsea.png", "sample.jpg"])

    def test_benchmark(self):
        bench = json.loads(self.musiq("score", "--image", "sample.jpg", "--benchmark"))
        self.assertIn(bench["device"], ("cpu", "cuda"))
        self.assertIsInstance(bench["gpu_available"], bool)
        self.assertEqual(bench["runs"], 10)
        self.assertEqual(bench["warmup"], 2)
        self.assertGreater(bench["average_time_ms"], 0)
        self.assertGreaterEqual(bench["std_time_ms"], 0)
        self.assertEqual(bench["average_time_ms"], bench["latency_ms"]["mean"])
        self.assertEqual(bench["std_time_ms"], bench["latency_ms"]["std"])
        self.assertEqual([os.path.basename(i["path"]) for i in bench["images"]], ["sample.jpg"])
        # --runs, and `musiq bench` carries the same names.
        short = json.loads(self.musiq("score", "--image", "sample.jpg", "--benchmark",
                                      "--runs", "3", "--warmup", "0"))
        self.assertEqual((short["runs"], short["warmup"]), (3, 0))
        bench = json.loads(self.musiq("bench", "sample.jpg", "--runs", "2", "--warmup", "0"))
        for field in ("device", "gpu_available", "average_time_ms", "std_time_ms", "runs"):
            self.assertIn(field, bench)

    def test_target_size(self):
        rec = self.record("score", "--image", "sample.jpg", "--target-size", "512", "512")
        self.check_seed_fields(rec, "koniq")
        self.assertEqual((rec["width"], rec["height"]), (640, 427))
        self.assertEqual((rec["scored_width"], rec["scored_height"]), (512, 512))
        # The photo's pixels as musiq decodes them, resized by the NumPy reference and
        # scored at their own size: the same score, exactly.
        dump = os.path.join(self.tmp, "sample.h5")
        self.musiq("preprocess", "sample.jpg", "--output", dump)
        with h5py.File(dump, "r") as f:
            pixels = f["pixels"][()]
        resized = to_uint8(resize_bilinear_antialias(pixels, 512, 512))
        ppm = os.path.join(self.tmp, "resized.ppm")
        with open(ppm, "wb") as f:
            f.write(b"P6\n512 512\n255\n" + resized.tobytes())
        self.assertEqual(self.record("score", ppm)["score"], rec["score"])
        self.assertNotEqual(self.record("score", "sample.jpg")["score"], rec["score"])
        # Paths may follow the option's two numbers.
        after = self.record("score", "--target-size", "512", "512", "sample.jpg")
        self.assertEqual(dict(after, ms=0), dict(rec, ms=0))

    def test_target_size_in_csv_and_refused_when_empty(self):
        out = self.musiq("score", "--image", "sample.jpg", "--target-size", "300", "200",
                         "--format", "csv")
        self.assertIn("scored at 300x200 (--target-size)", out.splitlines()[1])
        r = subprocess.run([MUSIQ, "score", "--image", "sample.jpg", "--target-size", "0", "5"],
                           capture_output=True, text=True, cwd=self.work, env=self.env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--target-size", r.stderr)

    def test_model_ava(self):
        rec = self.record("score", "--image", "sample.jpg", "--model", "ava")
        self.check_seed_fields(rec, "ava")
        self.assertGreaterEqual(rec["score"], 1.0)  # the mean of 10 buckets, 1..10
        self.assertLessEqual(rec["score"], 10.0)

    def test_info_says_whether_a_gpu_is_available(self):
        info = json.loads(self.musiq("info"))
        self.assertIsInstance(info["gpu_available"], bool)
        if info["device_auto"]["device"] == "cuda":
            self.assertTrue(info["gpu_available"])
        if not info["gpu"]["cuda_build"]:
            self.assertFalse(info["gpu_available"])


if __name__ == "__main__":
    unittest.main()
