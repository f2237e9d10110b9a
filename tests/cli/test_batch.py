#!/usr/bin/python3
"""musiq score on collections: inputs, formats, resume, shards, several models, bad files.

Run by ctest with MUSIQ_BIN set to the built binary; uses the small random models of the
cli.test_models fixture (fixture_models.py).
"""
import csv
import io
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

from fixture_models import SMALL_MODEL, SMALL_MODEL_10_CLASSES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MUSIQ = os.environ.get("MUSIQ_BIN", os.path.join(ROOT, "build", "musiq"))


def run(*args, stdin=None, env=None):
    return subprocess.run([MUSIQ, *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=600)


class BatchScoring(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="musiq-batch-")
        cls.model = SMALL_MODEL
        # A collection: photos at two levels, a non-image file, bad images.
        cls.photos = os.path.join(cls.tmp, "photos")
        os.makedirs(os.path.join(cls.photos, "sub"))
        for name in ("chelsea.png", "rocket.jpg"):
            shutil.copy(os.path.join(ROOT, "samples", name), cls.photos)
        for name in ("chelsea_200x133_q90.jpg", "camera_gray_459x371_q90.jpg"):
            shutil.copy(os.path.join(ROOT, "tests", "data", name), os.path.join(cls.photos, "sub"))
        with open(os.path.join(cls.photos, "notes.txt"), "w") as f:
            f.write("not an image\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def score(self, *args, **kw):
        return run("score", "--weights", self.model, "-q", *args, **kw)

    def records(self, out):
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def without_timing(self, out):
        """Records with the run-dependent "ms" field removed."""
        return [{k: v for k, v in r.items() if k != "ms"} for r in self.records(out)]

    def test_directory_recursive_sorted_with_skip_count(self):
        r = run("score", "--weights", self.model, self.photos, "-r")
        self.assertEqual(r.returncode, 0, r.stderr)
        paths = [rec["path"] for rec in self.records(r.stdout)]
        self.assertEqual(len(paths), 4)
        self.assertEqual(paths, sorted(paths))
        self.assertIn("skipped 1 files without an image extension", r.stderr)
        flat = self.score(self.photos)
        self.assertEqual(len(self.records(flat.stdout)), 2)  # no -r: top level only

    def test_files_from_file_and_stdin(self):
        files = [os.path.join(self.photos, "rocket.jpg"), os.path.join(self.photos, "chelsea.png")]
        listing = os.path.join(self.tmp, "list.txt")
        with open(listing, "w") as f:
            f.write("\n".join(files) + "\n")
        from_file = self.score("--files-from", listing)
        from_stdin = self.score("--files-from", "-", stdin="\n".join(files))
        self.assertEqual(from_file.returncode, 0, from_file.stderr)
        self.assertEqual(self.without_timing(from_file.stdout), self.without_timing(from_stdin.stdout))
        self.assertEqual([r["path"] for r in self.records(from_stdin.stdout)], sorted(files))

    def test_formats(self):
        csv_out = self.score(self.photos, "--format", "csv").stdout
        rows = list(csv.DictReader(io.StringIO(csv_out)))
        self.assertEqual(len(rows), 2)
        self.assertTrue(float(rows[0]["score"]) > 0)
        array = json.loads(self.score(self.photos, "--format", "json").stdout)
        as_float32 = lambda x: struct.pack("<f", float(x))
        self.assertEqual([as_float32(a["score"]) for a in array], [as_float32(r["score"]) for r in rows])
        table = self.score(self.photos, "--format", "table").stdout
        self.assertIn("rocket.jpg", table)

    def test_precision_is_in_every_record_and_tf32_is_refused_on_the_cpu(self):
        fp32 = self.records(self.score(self.photos, "--device", "cpu").stdout)
        bf16 = self.records(self.score(self.photos, "--device", "cpu", "--precision", "bf16").stdout)
        self.assertEqual({r["precision"] for r in fp32}, {"fp32"})
        self.assertEqual({r["precision"] for r in bf16}, {"bf16"})
        for a, b in zip(fp32, bf16):
            self.assertNotEqual(a["score"], b["score"])
            self.assertAlmostEqual(a["score"], b["score"], delta=0.05)
        rows = list(csv.DictReader(io.StringIO(self.score(
            self.photos, "--device", "cpu", "--precision", "bf16", "--format", "csv").stdout)))
        self.assertTrue(all("bf16 precision (--precision)" in r["note"] for r in rows), rows)
        refused = self.score(self.photos, "--device", "cpu", "--precision", "tf32")
        self.assertEqual(refused.returncode, 2)
        self.assertEqual(refused.stderr.strip().splitlines(),
                         ["musiq: precision tf32 is not available on the CPU (it computes fp32 or bf16)"])
        bench = run("bench", "--weights", self.model, "--device", "cpu", "--precision", "bf16",
                    "--runs", "1", "--warmup", "0", os.path.join(self.photos, "rocket.jpg"))
        self.assertEqual(bench.returncode, 0, bench.stderr)
        self.assertEqual(json.loads(bench.stdout)["precision"], "bf16")

    def test_shards_cover_the_input_exactly_once(self):
        whole = [r["path"] for r in self.records(self.score(self.photos, "-r").stdout)]
        parts = []
        for k in range(3):
            parts += [r["path"] for r in self.records(self.score(self.photos, "-r", "--shard", "%d/3" % k).stdout)]
        self.assertEqual(sorted(parts), whole)
        self.assertEqual(self.score(self.photos, "--shard", "3/3").returncode, 2)

    def test_killed_run_resumes_without_duplicates(self):
        out = os.path.join(self.tmp, "scores.csv")
        full = self.score(self.photos, "-r", "--format", "csv", "-o", out)
        self.assertEqual(full.returncode, 0, full.stderr)
        with open(out) as f:
            lines = f.readlines()
        # What a kill leaves: the first records, then half of a line.
        with open(out, "w") as f:
            f.writelines(lines[:3])
            f.write(lines[3][:10])
        again = self.score(self.photos, "-r", "--format", "csv", "-o", out)
        self.assertEqual(again.returncode, 2)
        self.assertIn("--resume", again.stderr)
        resumed = run("score", "--weights", self.model, self.photos, "-r", "--format", "csv",
                      "-o", out, "--resume")
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn("resuming: 2 images already in", resumed.stderr)
        strip_ms = lambda rows: sorted((r["path"], r["score"]) for r in csv.DictReader(rows))
        with open(out) as f:
            resumed_rows = f.readlines()
        self.assertEqual(len(resumed_rows), len(lines))
        self.assertEqual(strip_ms(resumed_rows), strip_ms(lines))

    def test_several_models_in_one_pass(self):
        weights_dir = os.path.join(self.tmp, "weights")
        os.makedirs(weights_dir, exist_ok=True)
        shutil.copy(self.model, os.path.join(weights_dir, "spaq.h5"))
        shutil.copy(SMALL_MODEL_10_CLASSES, os.path.join(weights_dir, "ava.h5"))
        env = dict(os.environ, MUSIQ_WEIGHTS_DIR=weights_dir)
        r = run("score", "--model", "spaq,ava", "-q", os.path.join(self.photos, "rocket.jpg"), env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        recs = self.records(r.stdout)
        self.assertEqual([x["model"] for x in recs], ["spaq", "ava"])
        self.assertTrue(1.0 <= recs[1]["score"] <= 10.0)

    def test_bad_files_are_reported_and_the_run_goes_on(self):
        bad = os.path.join(self.tmp, "bad")
        os.makedirs(bad, exist_ok=True)
        with open(os.path.join(ROOT, "samples", "rocket.jpg"), "rb") as f:
            jpeg = f.read()
        sof = jpeg.find(b"\xff\xc0")
        cases = {
            "truncated.jpg": jpeg[: len(jpeg) // 2],
            "zero.jpg": b"",
            "text.jpg": b"hello, this is text\n",
            # The frame header (SOF0) rewritten to declare 60000 x 60000 pixels.
            "huge.jpg": jpeg[:sof + 5] + b"\xea\x60\xea\x60" + jpeg[sof + 9:],
        }
        for name, data in cases.items():
            with open(os.path.join(bad, name), "wb") as f:
                f.write(data)
        os.mkfifo(os.path.join(bad, "pipe.jpg"))  # must not hang
        os.symlink(os.path.join(bad, "gone.jpg"), os.path.join(bad, "dangling.jpg"))
        shutil.copy(os.path.join(self.photos, "chelsea.png"), bad)
        r = run("score", "--weights", self.model, *sorted(os.path.join(bad, n) for n in os.listdir(bad)))
        self.assertEqual(r.returncode, 1, r.stderr)
        recs = {os.path.basename(x["path"]): x for x in self.records(r.stdout)}
        self.assertIn("score", recs["chelsea.png"])
        expected = {"truncated.jpg": "truncated JPEG", "zero.jpg": "empty file",
                    "text.jpg": "not a supported image", "huge.jpg": "too many pixels",
                    "pipe.jpg": "not a regular file", "dangling.jpg": "cannot open file"}
        for name, problem in expected.items():
            self.assertIn(problem, recs[name]["error"], name)
            self.assertIn(name, recs[name]["error"])
            self.assertIn(name + ": " + problem, r.stderr)

    def test_max_pixels_is_checked_before_decoding(self):
        r = self.score(os.path.join(self.photos, "rocket.jpg"), "--max-pixels", "1000")
        self.assertEqual(r.returncode, 1)
        self.assertIn("too many pixels", self.records(r.stdout)[0]["error"])

    def test_broken_weights_file_gives_one_line(self):
        broken = os.path.join(self.tmp, "broken.h5")
        with open(self.model, "rb") as f:
            data = f.read()
        with open(broken, "wb") as f:
            f.write(data[: len(data) // 2])
        r = run("score", "--weights", broken, os.path.join(self.photos, "rocket.jpg"))
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("broken.h5", r.stderr)


if __name__ == "__main__":
    unittest.main()
