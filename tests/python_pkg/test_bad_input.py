"""What a hostile but realistic Python user tries: broken weights, names that are not
UTF-8, empty and huge arrays, zero limits, NUL in paths, Ctrl-C in a long call, bad rows
in Ray batches."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import musiq
import musiq.ray
from conftest import PHOTOS


@pytest.fixture(scope="module")
def inf_model(model, tmp_path_factory):
    """The small model with every head weight 3e38: its scores overflow to -inf. (h5py runs
    in the tools' interpreter, MUSIQ_PYTHON: the package's venv has no h5py.)"""
    path = str(tmp_path_factory.mktemp("inf") / "inf-head.h5")
    shutil.copy(model, path)
    subprocess.run([os.environ.get("MUSIQ_PYTHON", sys.executable), "-c",
                    "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); f.visititems(lambda n, o: "
                    "o.__setitem__(Ellipsis, 3e38) if isinstance(o, h5py.Dataset) and "
                    "n.startswith('head') else None); f.close()", path], check=True)
    return path


def test_non_finite_scores_are_errors_on_every_surface(inf_model):
    scorer = musiq.Scorer(weights=inf_model, device="cpu")
    with pytest.raises(musiq.Error, match="non-finite score"):
        scorer.score(PHOTOS[0])
    results = scorer.score_many_results([PHOTOS[0], open(PHOTOS[2], "rb").read()])
    assert [r.ok for r in results] == [False, False]
    assert all(np.isnan(r.score) and "non-finite score" in r.error for r in results)
    metric = musiq.create_metric("musiq-koniq", weights=inf_model, device="cpu")
    with pytest.raises(musiq.Error, match="non-finite score"):
        metric(np.full((1, 3, 40, 40), 0.5, np.float32))
    out = musiq.ray.MusiqScorer(weights=inf_model, device="cpu")(
        {"bytes": np.array([open(PHOTOS[2], "rb").read()], dtype=object)})
    assert np.isnan(out["score"][0]) and "non-finite score" in out["error"][0]


def test_names_that_are_not_utf8(scorer, tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9-\xff.png"
    shutil.copy(PHOTOS[0], raw)
    expected = scorer.score(PHOTOS[0])
    [entry] = [e for e in os.scandir(os.fsencode(str(tmp_path))) if e.name.endswith(b".png")]
    surrogate = os.fsdecode(raw)
    assert scorer.score(surrogate) == expected
    assert scorer.score(entry) == expected  # os.PathLike giving bytes
    missing = os.fsdecode(os.fsencode(str(tmp_path)) + b"/gone-\xff.png")
    results = scorer.score_many_results([surrogate, missing, PHOTOS[0]])
    assert results[0].score == expected and results[2].score == expected
    assert results[1].error.startswith(missing + ": ")  # the name comes back as it went in


def test_nul_in_a_path_is_refused(scorer):
    with pytest.raises(musiq.Error, match="cannot contain a NUL byte"):
        scorer.score(PHOTOS[0] + "\0junk")


def test_empty_and_oversized_arrays_are_per_image_errors(scorer):
    good = np.zeros((40, 50, 3), np.uint8)
    results = scorer.score_many_results([np.zeros((0, 5, 3), np.uint8), good,
                                         np.zeros((4, 0), np.uint8)])
    assert "no pixels (5x0)" in results[0].error and results[1].ok
    assert "no pixels (0x4)" in results[2].error
    with pytest.raises(musiq.Error, match="no pixels"):
        musiq.create_metric("musiq", weights=scorer.weights_path, device="cpu")(
            np.zeros((1, 3, 0, 8), np.float32))
    # 1 x (2^32 + 64) pixels, without the memory: a broadcast row.
    wide = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (1, 2**32 + 64, 3))
    with pytest.raises(musiq.Error, match="too many pixels"):
        scorer.score(wide)


def test_decoder_warnings_are_reported_and_strict_refuses_them(model):
    with open(os.path.join(os.path.dirname(__file__), "..", "data", "chelsea_200x133_q90.jpg"),
              "rb") as f:
        jpeg = f.read()
    cut = jpeg[: len(jpeg) * 2 // 3] + b"\xff\xd9"  # libjpeg fills the rest in and warns
    lenient = musiq.Scorer(weights=model, device="cpu").score_many_results([cut])[0]
    assert lenient.ok and "premature end of data segment" in lenient.warning
    strict = musiq.Scorer(weights=model, device="cpu", strict=True)
    refused, clean = strict.score_many_results([cut, jpeg])
    assert not refused.ok and "(refused by strict mode)" in refused.error
    assert clean.ok and clean.warning == ""
    with pytest.raises(musiq.Error, match="decoder warning"):
        strict.score(cut)


def test_zero_limits_mean_the_defaults(model):
    scorer = musiq.Scorer(weights=model, device="cpu", max_pixels=0, max_tokens=0)
    assert np.isfinite(scorer.score(PHOTOS[0]))
    with pytest.raises(ValueError, match="max_pixels must be positive"):
        musiq.Scorer(weights=model, device="cpu", max_pixels=-1)
    with pytest.raises(ValueError, match="max_tokens"):
        musiq.Scorer(weights=model, device="cpu", max_tokens=2**70)
    with pytest.raises(TypeError, match="whole number"):
        musiq.Scorer(weights=model, device="cpu", max_tokens=1.5)


def test_score_many_refuses_one_image_as_a_collection(scorer):
    with pytest.raises(TypeError, match="for one image use score"):
        scorer.score_many(PHOTOS[0])
    with pytest.raises(TypeError, match="for one image use score"):
        scorer.score_many(np.zeros((40, 50, 3), np.uint8))


def test_path_given_as_bytes_gets_a_hint(scorer):
    with pytest.raises(musiq.Error, match="pass a path as str"):
        scorer.score(os.fsencode(PHOTOS[0]))


def test_ctrl_c_stops_score_many_within_a_batch(scorer):
    paths = [PHOTOS[0]] * 16
    start = time.monotonic()
    scorer.score_many(paths, threads=2)
    per_batch = time.monotonic() - start  # two packed batches of 8
    many = [PHOTOS[0]] * 800
    timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        scorer.score_many(many, threads=2)
    elapsed = time.monotonic() - start
    timer.join()
    assert elapsed < 0.2 + 2 * per_batch + 1.0, (elapsed, per_batch)


def test_ray_batches_with_bad_rows(model):
    import pandas as pd
    import pyarrow as pa
    good = open(PHOTOS[2], "rb").read()
    scorer = musiq.ray.MusiqScorer(weights=model, device="cpu")
    expected = musiq.Scorer(weights=model, device="cpu").score(good)
    df = pd.DataFrame({"bytes": [good, None, float("nan"), b""], "path": ["a", "b", None, "d"]})
    out = scorer(df)
    assert out["score"][0] == expected and out["error"][0] == ""
    assert "b: no image" in out["error"][1] and "row 2: no image" in out["error"][2]
    assert out["error"][3] == "d: empty file"
    assert np.isnan(out["score"][1:]).all()
    table = pa.table({"bytes": [good, None], "path": ["a", "b"]})
    out = scorer(table)
    assert out.column("score").to_pylist()[0] == expected
    assert out.column("error").to_pylist() == ["", "b: no image (the 'bytes' value is null)"]
    with pytest.raises(ValueError, match="no column 'bytes'"):
        scorer({"data": np.array([good], dtype=object)})


def test_nul_in_a_weights_path_is_refused(model):
    with pytest.raises(musiq.Error, match="NUL byte"):
        musiq.Scorer(weights=model + "\0junk", device="cpu")
