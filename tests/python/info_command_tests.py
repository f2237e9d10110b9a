#!/usr/bin/python3
"""`musiq info` as a user runs it: valid JSON, the devices, a weights file's details.

  MUSIQ_BIN=build/musiq /usr/bin/python3 tests/python/info_command_tests.py
  (ctest: cli.info)
"""
import hashlib
import json
import os
import subprocess
import tempfile
import unittest

import h5py

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WEIGHTS = os.path.join(REPO, "tests", "fixtures", "weight_formats", "official_small.h5")
MUSIQ = os.environ.get("MUSIQ_BIN") or os.path.join(REPO, "build", "musiq")


def info(*args, env=None):
    return subprocess.run([MUSIQ, "info", *args], capture_output=True, text=True, env=env)


@unittest.skipUnless(os.path.exists(MUSIQ), f"no musiq CLI at {MUSIQ} (set MUSIQ_BIN)")
class InfoTest(unittest.TestCase):
    def test_devices(self):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, XDG_CACHE_HOME=cache, MUSIQ_WEIGHTS_DIR="")
            r = info(env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertGreaterEqual(j["cpu"]["threads"], 1)
        self.assertGreaterEqual(j["cpu"]["hardware_threads"], 1)
        self.assertIn("OpenBLAS", j["cpu"]["blas"])
        self.assertIn(j["cpu"]["cpu_kernels"], ("avx512", "avx2", "baseline"))
        self.assertIn(j["cpu"]["bf16_kernel"], ("amx", "avx512_bf16", "plain"))
        self.assertEqual(j["precisions"],
                         {"cpu": ["fp32", "bf16"], "cuda": ["fp32", "bf16", "tf32"]})
        plain = info(env=dict(env, MUSIQ_CPU_BF16="plain"))
        self.assertEqual(json.loads(plain.stdout)["cpu"]["bf16_kernel"], "plain")
        gpu = j["gpu"]
        self.assertIsInstance(gpu["cuda_build"], bool)
        if gpu["available"]:  # a machine with a GPU
            self.assertTrue(gpu["devices"])
            for d in gpu["devices"]:
                self.assertTrue(d["name"])
                self.assertGreater(d["memory_bytes"], 0)
                self.assertRegex(d["compute_capability"], r"^\d+\.\d+$")
            self.assertRegex(gpu["driver_version"], r"^\d+\.\d+$")
        else:  # here: no device, and the reason why
            self.assertEqual(gpu["devices"], [])
            self.assertTrue(gpu["problem"])
            self.assertEqual(j["device_auto"]["device"], "cpu")
            self.assertTrue(j["device_auto"]["reason"])
        if gpu["cuda_build"]:
            self.assertRegex(gpu["runtime_version"], r"^\d+\.\d+$")
            self.assertIn("header", gpu["cublas"])
            self.assertIn("library", gpu["cudnn"])
        self.assertEqual(j["models"], {"spaq": None, "koniq": None, "paq2piq": None,
                                       "ava": None})
        self.assertEqual(j["weights_cache"], os.path.join(cache, "musiq"))
        self.assertNotIn("weights", j)

    def test_cpu_kernels_forced_lower(self):
        r = info(env=dict(os.environ, MUSIQ_CPU_ISA="baseline"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["cpu"]["cpu_kernels"], "baseline")
        r = info(env=dict(os.environ, MUSIQ_CPU_ISA="avx1024"))
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("MUSIQ_CPU_ISA=avx1024", r.stderr)

    def test_weights_details_and_checksum(self):
        r = info("--weights", WEIGHTS)
        self.assertEqual(r.returncode, 0, r.stderr)
        w = json.loads(r.stdout)["weights"]
        with open(WEIGHTS, "rb") as f:
            self.assertEqual(w["sha256"], hashlib.sha256(f.read()).hexdigest())
        with h5py.File(WEIGHTS, "r") as f:
            config = json.loads(f.attrs["config"])
            sizes = []
            f.visititems(lambda k, v: sizes.append(v.size) if isinstance(v, h5py.Dataset)
                         else None)
        self.assertEqual(w["config"], config)
        self.assertEqual(w["variant"], "random")
        self.assertTrue(w["random_weights"])
        self.assertEqual(w["tensors"], len(sizes))
        self.assertEqual(w["parameter_count"], sum(sizes))
        self.assertEqual(w["bytes"], os.path.getsize(WEIGHTS))
        self.assertIn("musiq-make-test-model", w["source"])

    def test_installed_model_listed(self):
        with tempfile.TemporaryDirectory() as d:
            os.symlink(WEIGHTS, os.path.join(d, "ava.h5"))
            r = info(env=dict(os.environ, MUSIQ_WEIGHTS_DIR=d))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["models"]["ava"], os.path.join(d, "ava.h5"))

    def test_bad_weights_one_line(self):
        with tempfile.NamedTemporaryFile(suffix=".h5") as f:
            f.write(b"not hdf5\n")
            f.flush()
            r = info("--weights", f.name)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, "")
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn(f.name, r.stderr)


if __name__ == "__main__":
    unittest.main()
