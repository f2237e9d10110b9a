"""musiq.ray.MusiqScorer in a real local Ray (2 CPUs) over a directory of photos with bad
files: every score equals the CLI's, every bad file has the CLI's message and NaN."""
import math
import os

import pytest

if os.environ.get("MUSIQ_REQUIRE_RAY"):  # the ctest runner installs Ray: never skip there
    import ray
else:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install .[ray])")
import musiq.ray  # noqa: E402
from conftest import PHOTOS  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_map_batches_scores_as_the_cli(local_ray, model, collection, cli):
    ds = ray.data.read_binary_files(str(collection), include_paths=True)
    ds = ds.map_batches(musiq.ray.MusiqScorer, fn_constructor_kwargs={"weights": model,
                        "device": "cpu"}, concurrency=1, batch_size=4)
    rows = ds.drop_columns(["bytes"]).take_all()
    assert len(rows) == len(cli)
    by_path = {}
    for row in rows:
        # Ray's paths may lack the leading "/" of a local filesystem path.
        path = row["path"] if row["path"].startswith("/") else "/" + row["path"]
        by_path[path] = row
    assert sorted(by_path) == sorted(cli)
    for path, record in cli.items():
        row = by_path[path]
        if "error" in record:
            assert math.isnan(row["score"]), path
            assert row["error"].endswith(record["error"].split(": ", 1)[1]), (row, record)
        else:
            assert row["score"] == record["score"] and row["error"] == "", (row, record)


def test_pandas_batches(model, collection, cli):
    import pandas as pd
    paths = sorted(cli)
    df = pd.DataFrame({"bytes": [open(p, "rb").read() for p in paths], "path": paths})
    out = musiq.ray.MusiqScorer(weights=model, device="cpu")(df)
    for path, score, error in zip(out["path"], out["score"], out["error"]):
        assert error == cli[path].get("error", "")
        assert (score == cli[path]["score"]) if not error else math.isnan(score)


def test_read_webdataset_feeds_the_members_bytes(local_ray, model, tmp_path):
    """docs/usage.md's recipe: read_webdataset(decoder=None) into MusiqScorer(bytes_column="jpg")
    scores each member exactly as the CLI scores the same file."""
    import tarfile
    from conftest import PHOTOS, cli_records
    jpegs = [p for p in PHOTOS if p.endswith(".jpg")]
    shard = tmp_path / "shard-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for i, path in enumerate(jpegs):
            tar.add(path, arcname=f"{i:08d}.jpg")
    expected = cli_records(model, jpegs)
    ds = ray.data.read_webdataset(str(shard), decoder=None)
    ds = ds.map_batches(musiq.ray.MusiqScorer,
                        fn_constructor_kwargs={"weights": model, "device": "cpu",
                                               "bytes_column": "jpg", "path_column": "__key__"},
                        concurrency=1, batch_size=4)
    rows = {row["__key__"]: row for row in ds.select_columns(["__key__", "score", "error"]).take_all()}
    assert sorted(rows) == [f"{i:08d}" for i in range(len(jpegs))]
    for i, path in enumerate(jpegs):
        row = rows[f"{i:08d}"]
        assert (row["score"], row["error"]) == (expected[path]["score"], ""), path


def test_precision_reaches_the_actors_scorer(model):
    import pandas as pd
    path = PHOTOS[0]
    df = pd.DataFrame({"bytes": [open(path, "rb").read()], "path": [path]})
    bf16 = musiq.ray.MusiqScorer(weights=model, device="cpu", precision="bf16")
    assert bf16.scorer.precision == "bf16"
    assert bf16(df)["score"][0] == musiq.Scorer(weights=model, device="cpu",
                                               precision="bf16").score(path)
