#!/usr/bin/python3
"""Tests for tools/musiq-export, tools/musiq-make-test-model, tools/musiq_params.py
and tests/python/corrupt_weights.py.

Run from the repo root, with the interpreter the build is configured with (MUSIQ_PYTHON):
  /usr/bin/python3 -m unittest discover -s tests/python -p 'test_*.py'
The tools under test run with the same interpreter (sys.executable), never through their
#! line, which names Debian's python3.
Fixtures are fake official checkpoints (official config, random values, fixed
seed) written to a temp dir; each is ~108 MB, so each test writes only its own.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(REPO, "tools")
sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, TOOLS)
import musiq_params as mp  # noqa: E402

EXPORT = os.path.join(TOOLS, "musiq-export")
MAKE = os.path.join(TOOLS, "musiq-make-test-model")
CORRUPT = os.path.join(HERE, "corrupt_weights.py")


def run(script, *args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)


def fake_params(config, seed=0):
    """Random float32 values for every expected parameter (never zeros)."""
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s, dtype=np.float32) * 0.05
            for k, s in mp.expected_params(config).items()}


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.params = fake_params(mp.official_config("koniq"))

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="musiq-test-")
        self.addCleanup(shutil.rmtree, self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def npz(self, params, prefix="opt/target/", extra=None):
        """Writes `params` like an official checkpoint, with optimizer state."""
        entries = {prefix + k: v for k, v in params.items()}
        if prefix:
            # flax.optim state as in the official files; void 'V2' is how numpy
            # stores bfloat16 momentum, which must be skipped, not read.
            entries["opt/state/step"] = np.array(1000, np.int32)
            entries["opt/state/param_states/head/kernel/momentum"] = \
                np.zeros((384, 1), dtype="V2")
        entries.update(extra or {})
        path = self.path("ckpt.npz")
        np.savez(path, **entries)
        return path

    def export_fails(self, npz, variant, *needles):
        out = self.path("out.h5")
        r = run(EXPORT, "npz", npz, out, "--variant", variant)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith(f"musiq-export: {npz}: "), lines[0])
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertFalse(os.path.exists(out), "no output on failure")
        self.assertEqual([f for f in os.listdir(self.dir) if f.startswith(".tmp")], [])


class ExportTest(Base):
    def test_good_export_round_trips_bit_exactly(self):
        out = self.path("koniq.h5")
        r = run(EXPORT, "npz", self.npz(self.params), out, "--variant", "koniq")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(out, r.stdout)
        self.assertIn("koniq", r.stdout)
        self.assertIn(f"{len(self.params)} parameters", r.stdout)
        got, attrs = mp.read_h5(out)
        self.assertEqual(sorted(got), sorted(self.params))
        for k, v in self.params.items():
            self.assertEqual(got[k].dtype, np.dtype("<f4"), k)
            self.assertEqual(got[k].shape, v.shape, k)
            self.assertEqual(got[k].tobytes(), v.tobytes(), k)
        self.assertEqual(attrs["format"], "musiq-hdf5")
        self.assertEqual(attrs["format_version"], 1)
        self.assertEqual(attrs["format_version"].dtype, np.int32)
        self.assertEqual(attrs["variant"], "koniq")
        self.assertEqual(attrs["num_classes"], 1)
        self.assertEqual(attrs["num_classes"].dtype, np.int32)
        self.assertEqual(json.loads(attrs["config"]), mp.official_config("koniq"))
        self.assertIn("ckpt.npz", attrs["source"])

    def test_unprefixed_ava_checkpoint(self):
        p = fake_params(mp.official_config("ava"), seed=1)
        out = self.path("ava.h5")
        r = run(EXPORT, "npz", self.npz(p, prefix=""), out, "--variant", "ava")
        self.assertEqual(r.returncode, 0, r.stderr)
        got, attrs = mp.read_h5(out)
        self.assertEqual(attrs["num_classes"], 10)
        self.assertEqual(got["head/bias"].tobytes(), p["head/bias"].tobytes())

    def test_missing_parameter(self):
        name = "Transformer/encoderblock_3/MlpBlock_3/Dense_1/bias"
        p = {k: v for k, v in self.params.items() if k != name}
        self.export_fails(self.npz(p), "koniq", "missing", repr(name))

    def test_wrong_shape(self):
        name = "Transformer/posembed_input/pos_embedding"
        p = dict(self.params, **{name: np.ones((1, 144, 384), np.float32)})
        self.export_fails(self.npz(p), "koniq", repr(name), "(1, 144, 384)",
                          "expected (1, 100, 384)")

    def test_nan(self):
        name = "block1/unit1/conv2/kernel"
        bad = self.params[name].copy()
        bad[1, 2, 3, 4] = np.nan
        self.export_fails(self.npz(dict(self.params, **{name: bad})), "koniq",
                          repr(name), "non-finite", "(1, 2, 3, 4)")

    def test_lossy_dtype(self):
        name = "embedding/bias"
        p = dict(self.params, **{name: np.full((384,), 0.1, np.float64)})
        self.export_fails(self.npz(p), "koniq", repr(name), "float64")

    def test_unknown_extra_parameter(self):
        extra = {"opt/target/pre_logits/kernel": np.ones((384, 384), np.float32)}
        self.export_fails(self.npz(self.params, extra=extra), "koniq",
                          "unexpected parameter 'pre_logits/kernel'")

    def test_unknown_entry_beside_optimizer(self):
        extra = {"ema/head/kernel": np.ones((384, 1), np.float32)}
        self.export_fails(self.npz(self.params, extra=extra), "koniq",
                          "unexpected entry 'ema/head/kernel'")

    def test_imagenet_pretrain_refused(self):
        p = dict(self.params, **{"head/kernel": np.ones((384, 1000), np.float32),
                                 "head/bias": np.ones((1000,), np.float32)})
        self.export_fails(self.npz(p), "spaq", "pre-training", "not a quality model")

    def test_head_width_must_match_variant(self):
        self.export_fails(self.npz(self.params), "ava", "head has 1 output but",
                          "'ava' needs 10")

    def test_not_an_npz(self):
        bad = self.path("bad.npz")
        with open(bad, "wb") as f:
            f.write(b"this is not a zip archive\n" * 100)
        self.export_fails(bad, "spaq", "not an .npz file")
        with open(self.npz(self.params), "rb") as f:  # a truncated download
            half = f.read()[: 1 << 20]
        with open(bad, "wb") as f:
            f.write(half)
        self.export_fails(bad, "spaq", "not an .npz file")

    def test_missing_input(self):
        self.export_fails(self.path("nope.npz"), "spaq", "No such file")


class MakeTestModelTest(Base):
    def make(self, name, *args):
        out = self.path(name)
        r = run(MAKE, out, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return mp.read_h5(out)

    def test_deterministic_and_valid(self):
        a, attrs = self.make("a.h5", "--seed", "7", "--size", "small")
        b, _ = self.make("b.h5", "--seed", "7", "--size", "small")
        c, _ = self.make("c.h5", "--seed", "8", "--size", "small")
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertEqual(a[k].tobytes(), b[k].tobytes(), k)
        self.assertNotEqual(a["head/kernel"].tobytes(), c["head/kernel"].tobytes())
        config = json.loads(attrs["config"])
        self.assertEqual(config, dict(mp.SMALL_TEST_CONFIG, num_classes=1))
        mp.validate(a, config)
        self.assertEqual(attrs["variant"], "random")
        self.assertAlmostEqual(float(a["head/bias"][0]), 50.0, delta=1.0)
        self.assertTrue(np.all(a["Transformer/cls"] != 0))

    def test_full_ava(self):
        p, attrs = self.make("full.h5", "--seed", "1", "--num-classes", "10")
        config = mp.official_config("ava")
        self.assertEqual(json.loads(attrs["config"]), config)
        self.assertEqual(attrs["num_classes"], 10)
        mp.validate(p, config)
        self.assertLess(np.abs(p["head/bias"]).max(), 1.0)  # O(1) logits


class CorruptWeightsTest(Base):
    def setUp(self):
        super().setUp()
        self.good = self.path("good.h5")
        r = run(MAKE, self.good, "--seed", "3", "--size", "small")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.config = dict(mp.SMALL_TEST_CONFIG, num_classes=1)

    def corrupt(self, *args):
        out = self.path("bad.h5")
        r = run(CORRUPT, self.good, out, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def assert_invalid(self, path, *needles):
        params, _ = mp.read_h5(path)
        with self.assertRaises(ValueError) as cm:
            mp.validate(params, self.config)
        for n in needles:
            self.assertIn(n, str(cm.exception))
        return params

    def test_modes(self):
        name = "Transformer/encoderblock_1/MultiHeadDotProductAttention_1/out/kernel"
        self.assert_invalid(self.corrupt("--remove", "Transformer/cls"),
                            "missing parameter 'Transformer/cls'")
        with h5py.File(self.corrupt("--remove", "conv_root/kernel"), "r") as f:
            self.assertNotIn("conv_root", f)  # no empty group left behind
        p = self.assert_invalid(self.corrupt("--reshape", name), repr(name),
                                "(4096,)", "expected (2, 32, 64)")
        self.assertEqual(p[name].size, 4096)
        self.assert_invalid(self.corrupt("--reshape", "head/bias"), "'head/bias'",
                            "(1, 1)")
        self.assert_invalid(self.corrupt("--nan", name), repr(name), "non-finite")
        self.assert_invalid(self.corrupt("--rename", "head/bias", "head/b"),
                            "'head/bias'", "1 more")
        bad = self.corrupt("--truncate")
        self.assertEqual(os.path.getsize(bad), os.path.getsize(self.good) // 2)
        with self.assertRaises(OSError):
            h5py.File(bad, "r")

    def test_unknown_name_fails(self):
        r = run(CORRUPT, self.good, self.path("bad.h5"), "--nan", "no/such")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no dataset 'no/such'", r.stderr)
        self.assertFalse(os.path.exists(self.path("bad.h5")))


if __name__ == "__main__":
    unittest.main()
