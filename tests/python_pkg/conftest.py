"""Shared fixtures: a small random model (never downloaded weights: ctest's fixture
cli.test_models makes it into $MUSIQ_TEST_MODELS), the CLI's own records for reference
scores, a directory of photos with bad files.

MUSIQ_BIN names the CLI (ctest sets it; default build/musiq); MUSIQ_PYTHON the interpreter
that runs the repository's Python tools (run_in_venv.py sets it)."""
import json
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MUSIQ_BIN = os.environ.get("MUSIQ_BIN", os.path.join(ROOT, "build", "musiq"))
PHOTOS = [os.path.join(ROOT, "samples", "chelsea.png"),
          os.path.join(ROOT, "samples", "coffee.png"),
          os.path.join(ROOT, "tests", "data", "chelsea_200x133_q90.jpg"),
          os.path.join(ROOT, "tests", "data", "camera_gray_459x371_q90.jpg"),
          os.path.join(ROOT, "tests", "data", "coffee_portrait_267x400.png"),
          os.path.join(ROOT, "tests", "data", "astronaut_portrait_301x509_q92_422.jpg")]


@pytest.fixture(scope="session")
def model():
    return os.path.join(os.environ["MUSIQ_TEST_MODELS"], "small.h5")


@pytest.fixture(scope="session")
def collection(tmp_path_factory):
    """A directory of photos and three bad files (truncated JPEG, text, empty)."""
    d = tmp_path_factory.mktemp("photos")
    for p in PHOTOS:
        shutil.copy(p, d)
    data = open(PHOTOS[2], "rb").read()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (d / "notes.png").write_bytes(b"not an image at all\n")
    (d / "empty.jpg").write_bytes(b"")
    return d


def cli_records(model, paths):
    """The CLI's record per path (score or error)."""
    r = subprocess.run([MUSIQ_BIN, "score", "--weights", model, "--device", "cpu", "-q",
                        *map(str, paths)], capture_output=True, text=True, timeout=900)
    assert r.returncode in (0, 1), r.stderr
    return {rec["path"]: rec for rec in map(json.loads, r.stdout.splitlines())}


@pytest.fixture(scope="session")
def cli(model, collection):
    return cli_records(model, sorted(collection.iterdir()))


@pytest.fixture(scope="session")
def scorer(model):
    import musiq
    return musiq.Scorer(weights=model, device="cpu")
