#!/usr/bin/python3
"""The C API as a user meets it: `cmake --install` into a fresh prefix, then a C11 program
(tests/api/musiq_c_check.c) built against the installed tree twice, with CMake
(find_package(musiq)) and with `cc $(pkg-config --cflags --libs musiq)`; both must give
exactly the CLI's scores and messages for the same files.

Run by ctest with MUSIQ_BIN (the CLI) and MUSIQ_BUILD_DIR (the build to install) set.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "cli"))
from fixture_models import SMALL_MODEL  # noqa: E402  (the cli.test_models fixture's)

MUSIQ = os.environ.get("MUSIQ_BIN", os.path.join(ROOT, "build", "musiq"))
BUILD = os.environ.get("MUSIQ_BUILD_DIR", os.path.join(ROOT, "build"))
IMAGES = [os.path.join(ROOT, "samples", "chelsea.png"),
          os.path.join(ROOT, "tests", "data", "chelsea_200x133_q90.jpg"),
          os.path.join(ROOT, "tests", "data", "camera_gray_459x371_q90.jpg")]


def float32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def run(*args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    if r.returncode not in kw.pop("ok_codes", (0,)):
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


class InstalledCApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="musiq-capi-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        run("cmake", "--install", BUILD, "--prefix", cls.prefix, "--component", "c_api")
        cls.model = SMALL_MODEL
        cls.bad = os.path.join(cls.tmp, "truncated.jpg")
        with open(IMAGES[1], "rb") as f:
            data = f.read()
        with open(cls.bad, "wb") as f:
            f.write(data[: len(data) // 3])
        cls.inputs = IMAGES + [cls.bad, os.path.join(cls.tmp, "missing.png")]
        cli = subprocess.run([MUSIQ, "score", "--weights", cls.model, "--device", "cpu", "-q",
                              *cls.inputs], capture_output=True, text=True, timeout=600)
        assert cli.returncode == 1, cli.stderr  # some images failed
        cls.cli = {r["path"]: r for r in map(json.loads, cli.stdout.splitlines())}
        cli = subprocess.run([MUSIQ, "score", "--weights", cls.model, "--device", "cpu", "-q",
                              "--target-size", "64", "48", IMAGES[0]],
                             capture_output=True, text=True, timeout=600)
        assert cli.returncode == 0, cli.stderr
        cls.cli_target = json.loads(cli.stdout)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def check_program(self, program):
        r = subprocess.run([program, self.model, *self.inputs], capture_output=True, text=True,
                           timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(lines[0], {"version": "0.1.0"})
        records = {x["path"]: x for x in lines[1:] if "path" in x}
        [target] = [x for x in lines[1:] if "target_size_of" in x]
        self.assertEqual(target["target_size_of"], IMAGES[0])
        self.assertEqual(float32(target["score"]), float32(self.cli_target["score"]))
        for key in ("scored_width", "scored_height", "width", "height"):
            self.assertEqual(target[key], self.cli_target[key], key)
        self.assertEqual(sorted(records), sorted(self.inputs))
        for path, cli in self.cli.items():
            mine = records[path]
            if "error" in cli:
                self.assertEqual(mine.get("error"), cli["error"], path)
            else:
                # %.9g and the CLI's JSON both round-trip a float32 exactly.
                self.assertEqual(float32(mine["score"]), float32(cli["score"]), path)
                for key in ("width", "height", "tokens"):
                    self.assertEqual(mine[key], cli[key], path)

    def test_cmake_find_package(self):
        build = os.path.join(self.tmp, "cmake-consumer")
        run("cmake", "-S", HERE, "-B", build, f"-DCMAKE_PREFIX_PATH={self.prefix}")
        run("cmake", "--build", build)
        self.check_program(os.path.join(build, "musiq_c_check"))
        run(os.path.join(build, "header_as_cpp"))

    def test_soname_is_the_headers_abi_version(self):
        with open(os.path.join(self.prefix, "include", "musiq", "musiq.h")) as f:
            [abi] = re.findall(r"^#define MUSIQ_ABI_VERSION (\d+)$", f.read(), re.M)
        dynamic = run("readelf", "-d", os.path.join(self.prefix, "lib", "libmusiq.so")).stdout
        self.assertIn(f"Library soname: [libmusiq.so.{abi}]", dynamic)

    def test_pkg_config(self):
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(self.prefix, "lib", "pkgconfig"))
        flags = run("pkg-config", "--cflags", "--libs", "musiq", env=env).stdout.split()
        program = os.path.join(self.tmp, "pkg-config-consumer")
        run("cc", "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
            os.path.join(HERE, "musiq_c_check.c"), "-o", program, *flags, "-lm")
        self.check_program(program)


if __name__ == "__main__":
    unittest.main()
