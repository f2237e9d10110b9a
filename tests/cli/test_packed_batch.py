#!/usr/bin/python3
"""musiq score --batch N and musiq bench --batch N: packed forward passes.

The records of a run with --batch 3 (a bad file among the photos) equal those of
--batch 1 except for the timings; the bench JSON says its steps were packed.
Run by ctest with MUSIQ_BIN set to the built binary; uses a small random model.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from fixture_models import SMALL_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MUSIQ = os.environ.get("MUSIQ_BIN", os.path.join(ROOT, "build", "musiq"))


def run(*args):
    return subprocess.run([MUSIQ, *args], capture_output=True, text=True, timeout=600)


class PackedBatches(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="musiq-packed-")
        cls.model = SMALL_MODEL
        cls.bad = os.path.join(cls.tmp, "broken.jpg")
        with open(cls.bad, "wb") as f:
            f.write(b"\xff\xd8\xff not really a jpeg")
        cls.images = [os.path.join(ROOT, "samples", "chelsea.png"), cls.bad,
                      os.path.join(ROOT, "tests", "data", "chelsea_200x133_q90.jpg"),
                      os.path.join(ROOT, "tests", "data", "hubble_crop_768x204_q90.jpg"),
                      os.path.join(ROOT, "samples", "coffee.png")]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def records(self, batch):
        r = run("score", "--weights", self.model, "-q", "--device", "cpu", "--batch", str(batch),
                *self.images)
        self.assertEqual(r.returncode, 1, r.stderr)  # one image failed
        out = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        return [{k: v for k, v in rec.items() if k != "ms"} for rec in out]

    def test_batches_give_the_records_of_single_images(self):
        singles = self.records(1)
        self.assertEqual(len(singles), 5)
        self.assertEqual(sum("error" in rec for rec in singles), 1)
        self.assertIn("broken.jpg", [rec for rec in singles if "error" in rec][0]["error"])
        for batch in (3, 8):
            self.assertEqual(self.records(batch), singles, f"--batch {batch}")

    def test_bench_runs_packed_steps(self):
        r = run("bench", "--weights", self.model, "--device", "cpu", "--batch", "3", "--runs",
                "1", "--warmup", "0", *[p for p in self.images if p != self.bad])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["batch"], 3)
        self.assertTrue(out["batching"].startswith("packed"), out["batching"])
        self.assertEqual(len(out["images"]), 3)


if __name__ == "__main__":
    unittest.main()
