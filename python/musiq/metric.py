"""pyiqa's interface: `musiq.create_metric("musiq-koniq")`, for code written for pyiqa.

    metric = musiq.create_metric("musiq-koniq")
    metric("photo.jpg")                 # -> array of shape (1, 1)
    metric(batch)                       # N x 3 x H x W floats in [0, 1] -> (N, 1)

Floats become the 8-bit pixels the official models were trained on as
`uint8 = floor(clip(x, 0, 1) * 255 + 0.5)`, computed in float64: round half up, so an
image that was loaded as uint8 and divided by 255 (pyiqa's and torchvision's ToTensor
convention) gets back exactly its original pixels and exactly the file's score. Values
outside [0, 1] are clipped, with a warning (0-255 floats are a common mistake); NaN or
infinity is an error.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional, Sequence, Union

import numpy as np

from . import _native

# pyiqa's `score_range` for each official model (the library's list, _native.MODEL_NAMES):
# KonIQ, SPAQ and PaQ-2-PiQ are mean opinion scores of about 0-100; AVA's is the mean of ten
# buckets, 1-10.
SCORE_RANGES = {"koniq": "~0, ~100", "spaq": "~0, ~100", "paq2piq": "~0, ~100", "ava": "1, 10"}

# pyiqa's names for them: "musiq-<model>", and "musiq", its KonIQ default.
METRIC_MODELS = {"musiq": "koniq", **{f"musiq-{m}": m for m in _native.MODEL_NAMES}}


def floats_to_uint8(x: np.ndarray) -> np.ndarray:
    """Pixels in [0, 1] (any float dtype) as uint8: floor(clip(x, 0, 1) * 255 + 0.5)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        from . import Error
        raise Error("<pixels>: NaN or infinite values in the image")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        warnings.warn(f"pixel values outside [0, 1] (from {x.min():g} to {x.max():g}) are clipped: "
                      "the metric takes RGB floats in [0, 1] (0-255 images: divide by 255)",
                      stacklevel=3)
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class Metric:
    """A callable scorer with pyiqa's conventions (see `create_metric`)."""

    lower_better = False  # higher scores are better, as pyiqa says of MUSIQ

    def __init__(self, metric_name: str, scorer):
        self.metric_name = metric_name
        self.scorer = scorer
        self.score_range = SCORE_RANGES[METRIC_MODELS[metric_name]]

    def __call__(self, target: Union[str, "os.PathLike[str]", Sequence, np.ndarray],
                 ref=None) -> np.ndarray:
        """Scores as a float32 array of shape (N, 1).

        Args:
            target: a path (one image), a list of paths, or an N x 3 x H x W (or 3 x H x W)
                float array of RGB in [0, 1], as pyiqa takes. A torch tensor works too (it
                is read through numpy, so it must be on the CPU).
            ref: pyiqa's reference image; MUSIQ is no-reference, so it must be None.
        """
        if ref is not None:
            raise ValueError("MUSIQ is a no-reference metric: call it without a reference image")
        if isinstance(target, (str, os.PathLike)):
            return np.array([[self.scorer.score(target)]], dtype=np.float32)
        if isinstance(target, (list, tuple)) and all(isinstance(t, (str, os.PathLike)) for t in target):
            return np.asarray(self.scorer.score_many(list(target)), dtype=np.float32).reshape(-1, 1)
        x = np.asarray(target)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected N x 3 x H x W (or N x 1 x H x W), got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"expected floats in [0, 1], got {x.dtype} (uint8 images: use Scorer)")
        pixels = floats_to_uint8(x).transpose(0, 2, 3, 1)  # N x H x W x C, rows contiguous
        scores = self.scorer.score_many([np.ascontiguousarray(p) for p in pixels])
        return np.asarray(scores, dtype=np.float32).reshape(-1, 1)

    def __repr__(self) -> str:
        return f"musiq.Metric({self.metric_name!r}, device={self.scorer.device!r})"


def create_metric(metric_name: str, device: Optional[str] = None, *,
                  weights: Optional[Union[str, "os.PathLike[str]"]] = None, **scorer_options) -> Metric:
    """pyiqa.create_metric for the MUSIQ metrics: "musiq" (= "musiq-koniq"),
    "musiq-koniq", "musiq-spaq", "musiq-paq2piq", "musiq-ava".

    Args:
        metric_name: one of the names above, spelled as pyiqa spells them.
        device: "cpu", "cuda" ("cuda:0" and torch.device too), or None for "auto" (pyiqa's
            default picks CUDA when present).
        weights: a weights file instead of the installed model (as Scorer's).
        scorer_options: more Scorer options (threads, max_pixels, max_tokens).
    """
    from . import Scorer
    name = metric_name.lower()
    if name not in METRIC_MODELS:
        raise ValueError(f"unknown metric {metric_name!r}: musiq provides {', '.join(METRIC_MODELS)}")
    scorer = Scorer(METRIC_MODELS[name], weights=weights, device=_device_name(device), **scorer_options)
    return Metric(name, scorer)


def _device_name(device) -> str:
    """pyiqa's device argument (None, "cpu", "cuda", "cuda:0", a torch.device) as ours."""
    name = "auto" if device is None else str(device)
    if name == "cuda:0":
        return "cuda"
    if name.startswith("cuda:"):
        raise ValueError(f"device {name!r}: musiq uses the first GPU; choose another one with "
                         "CUDA_VISIBLE_DEVICES and pass 'cuda'")
    return name
