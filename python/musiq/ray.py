"""Ray Data: score a dataset of encoded images on a pool of actors.

    import ray, musiq.ray
    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    ds = ds.map_batches(musiq.ray.MusiqScorer, fn_constructor_kwargs={"model": "koniq"},
                        concurrency=4, batch_size=16)       # num_gpus=1: one GPU per actor
    ds.drop_columns(["bytes"]).write_parquet("s3://bucket/scores/")

The images arrive as their files' bytes (`read_binary_files`), so each is decoded exactly
as the CLI decodes the file (JPEG as TensorFlow does); `read_images` would decode with PIL
instead. A bad image never fails the job: its `score` is NaN and `error` its message.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import numpy as np

from . import DEFAULT_MAX_PIXELS, DEFAULT_MAX_TOKENS, Scorer

__all__ = ["MusiqScorer"]


class MusiqScorer:
    """A callable class for `Dataset.map_batches` (Ray's actor-pool pattern).

    Each actor loads the model once. A batch (a dict of numpy arrays, a pandas DataFrame or
    a pyarrow Table: any `batch_format`) must have the column `bytes_column` (an encoded
    image per row; a missing column raises ValueError) and may have `path_column` (used to
    name the image in messages). The batch comes back with two columns added: `score`
    (float, NaN on failure) and `error` ("" or the one-line message). Every bad row, a null
    one included, is that row's error: the job goes on.

    Args:
        model, weights, device, threads, max_pixels, max_tokens, strict, precision: as for
            `musiq.Scorer`. With `num_gpus=1` in map_batches, device "auto" (or "cuda")
            uses the actor's GPU.
        bytes_column, path_column: the input columns' names (read_binary_files' defaults).
    """

    def __init__(self, model: Optional[str] = None, weights: Optional[Union[str, "os.PathLike[str]"]] = None,
                 device: str = "auto", *, threads: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_tokens: int = DEFAULT_MAX_TOKENS, strict: bool = False,
                 precision: str = "fp32", bytes_column: str = "bytes", path_column: str = "path"):
        self.scorer = Scorer(model, weights, device, threads=threads, max_pixels=max_pixels,
                             max_tokens=max_tokens, strict=strict, precision=precision)
        self.bytes_column = bytes_column
        self.path_column = path_column

    def __call__(self, batch: Any) -> Any:
        columns = _column_names(batch)
        if self.bytes_column not in columns:
            raise ValueError(f"musiq.ray.MusiqScorer: the batch has no column {self.bytes_column!r} "
                             f"(columns: {', '.join(map(str, columns))}); set bytes_column=")
        cells = _column(batch, self.bytes_column)
        paths = _column(batch, self.path_column) if self.path_column in columns else None
        names = [f"row {i}" if paths is None or _missing(paths[i]) else str(paths[i])
                 for i in range(len(cells))]
        # A null (Parquet's missing value, None, NaN) is that row's error, not the batch's.
        present = [i for i, cell in enumerate(cells) if not _missing(cell)]
        results = self.scorer.score_many_results([bytes(cells[i]) for i in present],
                                                 names=[names[i] for i in present])
        scores = np.full(len(cells), np.nan, dtype=np.float64)
        errors = np.array([f"{name}: no image (the {self.bytes_column!r} value is null)"
                           for name in names], dtype=object)
        for i, r in zip(present, results):
            scores[i] = r.score
            errors[i] = r.error
        return _with_columns(batch, scores, errors)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _column_names(batch) -> list:
    if isinstance(batch, dict):
        return list(batch)
    if hasattr(batch, "column_names"):  # a pyarrow Table
        return list(batch.column_names)
    return list(batch.columns)  # a pandas DataFrame


def _column(batch, name) -> list:
    if hasattr(batch, "column_names") and not isinstance(batch, dict):
        return batch.column(name).to_pylist()
    return list(batch[name])


def _with_columns(batch, scores, errors):
    if isinstance(batch, dict):
        return {**batch, "score": scores, "error": errors}
    if hasattr(batch, "column_names"):  # pyarrow: tables are immutable
        import pyarrow as pa
        for name, values in (("score", pa.array(scores)), ("error", pa.array(list(errors), pa.string()))):
            if name in batch.column_names:
                batch = batch.remove_column(batch.column_names.index(name))
            batch = batch.append_column(name, values)
        return batch
    batch = batch.copy()  # a pandas DataFrame
    batch["score"] = scores
    batch["error"] = errors
    return batch
