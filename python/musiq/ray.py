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

    Each actor loads the model once. A batch (a dict of numpy arrays, or a pandas
    DataFrame) must have the column `bytes_column` (an encoded image per row) and may have
    `path_column` (used to name the image in messages). The batch comes back with two
    columns added: `score` (float, NaN on failure) and `error` ("" or the one-line message).

    Args:
        model, weights, device, threads, max_pixels, max_tokens: as for `musiq.Scorer`. With
            `num_gpus=1` in map_batches, device "auto" (or "cuda") uses the actor's GPU.
        bytes_column, path_column: the input columns' names (read_binary_files' defaults).
    """

    def __init__(self, model: Optional[str] = None, weights: Optional[Union[str, "os.PathLike[str]"]] = None,
                 device: str = "auto", *, threads: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_tokens: int = DEFAULT_MAX_TOKENS,
                 bytes_column: str = "bytes", path_column: str = "path"):
        self.scorer = Scorer(model, weights, device, threads=threads, max_pixels=max_pixels,
                             max_tokens=max_tokens)
        self.bytes_column = bytes_column
        self.path_column = path_column

    def __call__(self, batch: Any) -> Any:
        images = [bytes(b) for b in batch[self.bytes_column]]
        names = None
        if self.path_column in batch:
            names = [str(p) for p in batch[self.path_column]]
        results = self.scorer.score_many_results(images, names=names)
        scores = np.array([r.score for r in results], dtype=np.float64)
        errors = np.array([r.error for r in results], dtype=object)
        if isinstance(batch, dict):
            return {**batch, "score": scores, "error": errors}
        batch = batch.copy()  # a pandas DataFrame
        batch["score"] = scores
        batch["error"] = errors
        return batch
