"""musiq.create_metric: pyiqa's names and conventions, and exactly how floats become pixels."""
import numpy as np
import pytest
from PIL import Image

import musiq
from musiq.metric import floats_to_uint8
from conftest import PHOTOS


def test_names_as_pyiqa_spells_them(model):
    for name, variant in [("musiq", "koniq"), ("musiq-koniq", "koniq"), ("musiq-spaq", "spaq"),
                          ("musiq-paq2piq", "paq2piq"), ("musiq-ava", "ava")]:
        assert musiq.metric.METRIC_MODELS[name] == variant
    assert set(musiq.metric.SCORE_RANGES) == set(musiq._native.MODEL_NAMES)
    with pytest.raises(ValueError, match="musiq-koniq"):
        musiq.create_metric("niqe")


def test_float_batch_equals_the_files(model, scorer):
    metric = musiq.create_metric("musiq-koniq", weights=model, device="cpu")
    assert metric.lower_better is False
    paths = [PHOTOS[0], PHOTOS[0]]
    rgb = np.asarray(Image.open(PHOTOS[0]).convert("RGB"))
    # pyiqa's / torchvision's ToTensor: uint8 / 255 as float32, N x 3 x H x W.
    batch = np.stack([rgb, rgb[::-1]]).transpose(0, 3, 1, 2).astype(np.float32) / 255
    scores = metric(batch)
    assert scores.shape == (2, 1) and scores.dtype == np.float32
    assert scores[0, 0] == np.float32(scorer.score(paths[0]))
    assert scores[1, 0] == np.float32(scorer.score(rgb[::-1]))
    assert metric(PHOTOS[0]).tolist() == [[np.float32(scorer.score(PHOTOS[0]))]]
    assert metric(batch[0]).shape == (1, 1)  # 3 x H x W


def test_float_to_uint8_rule():
    # floor(clip(x, 0, 1) * 255 + 0.5): round half up, clipped.
    x = np.array([-0.3, 0.0, 0.49 / 255, 0.5 / 255, 1.5 / 255, 254.5 / 255, 1.0, 7.0])
    with pytest.warns(UserWarning, match="clipped"):
        assert floats_to_uint8(x).tolist() == [0, 0, 0, 1, 2, 255, 255, 255]
    every = np.arange(256, dtype=np.uint8)
    for dtype in (np.float16, np.float32, np.float64):
        assert (floats_to_uint8(every.astype(dtype) / dtype(255)) == every).all(), dtype
    with pytest.raises(musiq.Error, match="NaN"):
        floats_to_uint8(np.array([0.5, np.nan]))


def test_pyiqa_conventions(model, scorer):
    metric = musiq.create_metric("musiq-koniq", "cpu", weights=model)
    assert metric.score_range == "~0, ~100"
    assert musiq.metric._device_name("cuda:0") == "cuda"
    assert musiq.metric._device_name(None) == "auto"
    with pytest.raises(ValueError, match="first GPU"):
        musiq.metric._device_name("cuda:1")
    assert metric(PHOTOS[0], None).shape == (1, 1)
    with pytest.raises(ValueError, match="no-reference"):
        metric(PHOTOS[0], PHOTOS[1])
    scores = metric([PHOTOS[0], PHOTOS[2]])
    assert scores.shape == (2, 1)
    assert scores[1, 0] == np.float32(scorer.score(PHOTOS[2]))
    with pytest.warns(UserWarning, match="outside"):
        floats_to_uint8(np.array([0.0, 255.0]))
