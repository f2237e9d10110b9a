#!/usr/bin/python3
"""Runs the Python package's tests as a user would: `pip install .[ray,test]` into a venv
kept under the build directory (created on first use; later runs reinstall incrementally),
then pytest on tests/python_pkg/. Any pytest outcome but "all passed" fails, including
"no tests collected" (exit code 5) and a skipped Ray test.

    run_in_venv.py BUILD_DIR [PYTEST ARGS...]      (ctest: python_pkg.pytest; MUSIQ_BIN set)
"""
import os
import shutil
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Build requirements (installed first: the package builds without isolation, so a rerun
# reuses its CMake build directory) and what the tests import.
PREREQUISITES = ["scikit-build-core>=0.10", "nanobind>=2.0", "pytest", "pillow"]


def step(what, *args, **kw):
    print(f"python_pkg: {what}", flush=True)
    r = subprocess.run(args, **kw)
    if r.returncode:
        sys.exit(f"python_pkg: {what} failed (exit {r.returncode}); pip needs PyPI (network)")


def main():
    build = os.path.abspath(sys.argv[1])
    env_dir = os.path.join(build, "python-venv")
    python = os.path.join(env_dir, "bin", "python")
    stamp = os.path.join(env_dir, "musiq-prerequisites")
    wanted = "\n".join(PREREQUISITES)
    if not os.path.exists(stamp) or open(stamp).read() != wanted:
        shutil.rmtree(env_dir, ignore_errors=True)
        venv.create(env_dir, with_pip=True)
        step("installing " + " ".join(PREREQUISITES), python, "-m", "pip", "install", "-q",
             *PREREQUISITES)
        with open(stamp, "w") as f:
            f.write(wanted)
    settings = [f"--config-settings=build-dir={os.path.join(build, 'python-build')}"]
    if shutil.which("ccache"):
        settings += [f"--config-settings=cmake.define.CMAKE_{lang}_COMPILER_LAUNCHER=ccache"
                     for lang in ("CXX", "CUDA")]
    step("pip install .[ray,test]", python, "-m", "pip", "install", "-q",
         "--no-build-isolation", *settings, f"{ROOT}[ray,test]")
    # The tools the tests start (musiq-make-test-model: numpy, h5py) run with this
    # interpreter, the configured one (MUSIQ_PYTHON), not the venv's or their #! line.
    env = dict(os.environ, MUSIQ_REQUIRE_RAY="1", MUSIQ_PYTHON=sys.executable)
    r = subprocess.run([python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        "-W", "ignore::DeprecationWarning", *sys.argv[2:],
                        os.path.join(ROOT, "tests", "python_pkg")], env=env, cwd=build)
    if r.returncode == 5:
        sys.exit("python_pkg: pytest collected no tests")
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
