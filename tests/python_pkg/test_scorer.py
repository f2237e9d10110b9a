"""musiq.Scorer against the CLI, on the same files: the same float32 scores, the same
messages."""
import json
import os
import pathlib
import subprocess
import threading

import numpy as np
import pytest
from PIL import Image

import musiq
from conftest import MUSIQ_BIN, PHOTOS, cli_records


def test_files_score_exactly_as_the_cli(scorer, collection, cli):
    for path, record in cli.items():
        if "error" in record:
            continue
        assert scorer.score(path) == record["score"], path  # CLI JSON: the float32 exactly
    path = PHOTOS[0]
    assert scorer.score(pathlib.Path(path)) == cli[str(collection / os.path.basename(path))]["score"]


def test_score_many_equals_the_cli_and_reports_each_failure(scorer, cli):
    paths = sorted(cli)
    results = scorer.score_many_results(paths, threads=2)
    assert len(results) == len(paths)
    for path, r in zip(paths, results):
        if "error" in cli[path]:
            assert r.error == cli[path]["error"] and np.isnan(r.score), path
        else:
            assert (r.error, r.score, r.width, r.height, r.tokens) == (
                "", cli[path]["score"], cli[path]["width"], cli[path]["height"],
                cli[path]["tokens"]), path
    good = [p for p in paths if "error" not in cli[p]]
    assert scorer.score_many(good) == [cli[p]["score"] for p in good]
    with pytest.raises(musiq.Error):
        scorer.score_many(paths)


def test_bad_input_raises_error_with_the_cli_message(scorer, collection, cli):
    for name in ("truncated.jpg", "notes.png", "empty.jpg"):
        path = str(collection / name)
        with pytest.raises(musiq.Error) as e:
            scorer.score(path)
        assert str(e.value) == cli[path]["error"]
        assert str(e.value).startswith(path + ": ")
    missing = str(collection / "missing.jpg")
    with pytest.raises(musiq.Error, match="missing.jpg: "):
        scorer.score(missing)
    with pytest.raises(musiq.Error, match="^<encoded image>: empty file$"):
        scorer.score(b"")
    assert issubclass(musiq.Error, Exception)


def test_png_array_equals_file(scorer):
    for path in (PHOTOS[0], PHOTOS[4]):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        expected = scorer.score(path)
        assert scorer.score(rgb) == expected
        rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
        assert scorer.score(rgba) == expected  # alpha dropped
        assert scorer.score(np.asfortranarray(rgb)) == expected  # not C-contiguous
        padded = np.zeros((rgb.shape[0], rgb.shape[1] + 5, 3), np.uint8)
        padded[:, :-5] = rgb
        assert scorer.score(padded[:, :-5]) == expected  # strided rows, no copy
        assert scorer.score(rgb[::-1][::-1]) == expected  # negative strides


def test_gray_array_equals_gray_png(scorer, tmp_path):
    gray = np.asarray(Image.open(PHOTOS[0]).convert("L"))
    png = tmp_path / "gray.png"
    Image.fromarray(gray).save(png)
    assert scorer.score(gray) == scorer.score(np.dstack([gray] * 3)) == scorer.score(png)
    assert scorer.score(gray[:, :, None]) == scorer.score(png)  # H x W x 1


def test_jpeg_bytes_equal_file(scorer):
    for path in (PHOTOS[2], PHOTOS[3]):  # 4:2:0 colour, gray
        data = open(path, "rb").read()
        assert scorer.score(data) == scorer.score(path)
        assert scorer.score(bytearray(data)) == scorer.score(path)


def test_bad_arguments(scorer, model):
    with pytest.raises(TypeError):
        scorer.score(12)
    with pytest.raises(TypeError):
        scorer.score(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError):
        scorer.score(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError):
        musiq.Scorer(weights=model, device="tpu")
    with pytest.raises(musiq.Error, match="nonexistent.h5"):
        musiq.Scorer(weights="/nonexistent.h5")
    with pytest.raises(musiq.Error, match="no-such-model"):
        musiq.Scorer("no-such-model")


def test_properties(scorer, model):
    assert scorer.device == "cpu"
    assert scorer.model == "random"  # a weights file is labelled by its variant, as the CLI does
    assert scorer.random_weights
    assert scorer.weights_path == model


def test_two_threads_score_at_once(scorer, cli):
    paths = [p for p in sorted(cli) if "error" not in cli[p]]
    out = {}
    start = threading.Barrier(2)

    def work(name, items):
        start.wait()
        out[name] = [scorer.score(p) for p in items]

    threads = [threading.Thread(target=work, args=("a", paths)),
               threading.Thread(target=work, args=("b", paths[::-1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out["a"] == [cli[p]["score"] for p in paths]
    assert out["b"] == [cli[p]["score"] for p in paths[::-1]]


def test_score_many_releases_the_gil(scorer, cli):
    """Another Python thread keeps running while score_many works."""
    paths = [p for p in sorted(cli) if "error" not in cli[p]][:2]
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    before = ticks
    scorer.score_many(paths)
    during = ticks - before
    done.set()
    counter.join()
    assert during > 1000


def test_token_budget_refuses_costly_images_of_every_kind(model):
    # 400x300 pixels make 49 + 144 + 130 + 1 = 324 tokens, over a budget of 200; 64x64 make 198.
    small_budget = musiq.Scorer(weights=model, device="cpu", max_tokens=200)
    pixels = np.random.default_rng(5).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    with pytest.raises(musiq.Error, match="too costly.*--max-tokens"):
        small_budget.score(pixels)
    with pytest.raises(musiq.Error, match="too costly"):
        small_budget.score(PHOTOS[0])
    assert np.isfinite(small_budget.score(pixels[:64, :64]))


def test_score_tar_equals_the_cli_on_the_same_shard(scorer, model, collection, tmp_path):
    """Members score as the extracted files, bit for bit, and as `musiq score shard.tar`."""
    import tarfile
    shard = tmp_path / "shard-000000.tar"
    names = sorted(p.name for p in collection.iterdir())
    with tarfile.open(shard, "w") as tar:
        for i, name in enumerate(names):
            tar.add(collection / name, arcname=f"{i:08d}.{name.split('.', 1)[1]}")
        tar.add(collection / names[0], arcname="00000099.json")  # not an image: skipped
    results = list(scorer.score_tar(shard))
    assert [key for key, _ in results] == [f"{i:08d}" for i in range(len(names))]
    files = cli_records(model, [collection / n for n in names])
    r = subprocess.run([MUSIQ_BIN, "score", "--weights", model, "--device", "cpu", "-q", str(shard)],
                       capture_output=True, text=True, timeout=900)
    members = {rec["key"]: rec for rec in map(json.loads, r.stdout.splitlines())}
    for (key, result), name in zip(results, names):
        on_disk = files[str(collection / name)]
        if "error" in on_disk:
            assert result.error and np.isnan(result.score), name
            assert "error" in members[key]
            continue
        assert (result.score, result.width, result.height, result.tokens) == (
            on_disk["score"], on_disk["width"], on_disk["height"], on_disk["tokens"]), name
        assert result.score == members[key]["score"], name


def test_score_tar_raises_after_the_readable_members_of_a_truncated_shard(scorer, tmp_path):
    import tarfile
    shard = tmp_path / "cut.tar"
    with tarfile.open(shard, "w") as tar:
        tar.add(PHOTOS[2], arcname="a.jpg")
        tar.add(PHOTOS[3], arcname="b.jpg")
    data = shard.read_bytes()
    cut = tmp_path / "cut-short.tar"
    cut.write_bytes(data[: 512 + os.path.getsize(PHOTOS[2]) + 2048])
    seen = []
    with pytest.raises(musiq.Error, match="cut-short.tar: unreadable tar"):
        for key, result in scorer.score_tar(cut, batch=1):
            seen.append((key, result.ok))
    assert seen == [("a", True)]


def test_target_size_scores_as_the_cli(model):
    cli = subprocess.run([MUSIQ_BIN, "score", "--weights", model, "--device", "cpu", "-q",
                          "--target-size", "96", "80", PHOTOS[0]],
                         capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr
    want = json.loads(cli.stdout)
    resized = musiq.Scorer(weights=model, device="cpu", target_size=(96, 80))
    [r] = resized.score_many_results([PHOTOS[0]])
    assert np.float32(r.score) == np.float32(want["score"])
    assert (r.width, r.height, r.scored_width, r.scored_height) == (
        want["width"], want["height"], 96, 80)
    # Pixels in memory are resized the same way.
    assert resized.score(np.asarray(Image.open(PHOTOS[0]).convert("RGB"))) == r.score
    with pytest.raises(ValueError, match="target_size"):
        musiq.Scorer(weights=model, device="cpu", target_size=(96, 0))


def test_gpu_available_is_a_bool(scorer):
    assert isinstance(scorer.gpu_available, bool)


def test_precision_bf16_scores_near_fp32_and_says_so(model):
    fp32 = musiq.Scorer(weights=model, device="cpu")
    bf16 = musiq.Scorer(weights=model, device="cpu", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert "precision='bf16'" in repr(bf16)
    a, b = fp32.score(PHOTOS[0]), bf16.score(PHOTOS[0])
    assert a != b and abs(a - b) < 0.05
    with pytest.raises(musiq.Error, match="^precision tf32 is not available on the CPU"):
        musiq.Scorer(weights=model, device="cpu", precision="tf32")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, tf32"):
        musiq.Scorer(weights=model, device="cpu", precision="fp16")
