#!/usr/bin/python3
"""Unit tests of musiq_reference's building blocks against straightforward
definitions (loops, explicit slicing, scalar transcriptions of the TF
kernels) and a few golden values produced by TensorFlow 2.21 (CPU).

    /usr/bin/python3 -m unittest discover -s tests/reference -p 'test_*.py'
"""

import hashlib
import math
import os
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import musiq_reference as mr  # noqa: E402

F32 = np.float32


# ----------------------------------------------------------------------------
# Brute-force scalar transcription of ScaleAndTranslate (Gaussian, antialias
# off, translate 0) from tensorflow/core/kernels/image/scale_and_translate_op.cc
# and sampling_kernels.h, one output pixel at a time.
# ----------------------------------------------------------------------------

def _kernel_scalar(x):
    x = abs(F32(x))
    if x >= F32(1.5):
        return F32(0.0)
    sigma = F32(1.5) / F32(3.0)
    return F32(math.exp(float(F32(-x * x)) / (2.0 * float(sigma) * float(sigma))))


def _taps_scalar(x, out_size, in_size):
    """(sources, normalized weights) of output index x along one axis."""
    scale = F32(F32(out_size) / F32(in_size))
    inv_scale = F32(1.0 / float(scale))
    sample = F32(F32(F32(x) + F32(0.5)) * inv_scale) + F32(-0.0)
    if sample < 0 or sample > in_size:
        return [], []
    start = int(math.ceil(F32(F32(sample - F32(1.5)) - F32(0.5))))
    end = int(math.floor(F32(F32(sample + F32(1.5)) - F32(0.5))))
    start = min(max(start, 0), in_size - 1)
    end = min(max(end, 0), in_size - 1) + 1
    raw, total = [], F32(0.0)
    for s in range(start, end):
        pos = F32(F32(F32(s) + F32(0.5)) - sample)
        w = _kernel_scalar(pos)
        total = F32(total + w)
        raw.append(w)
    if abs(total) < F32(1000.0) * np.finfo(F32).tiny:
        return list(range(start, end)), [F32(0.0)] * len(raw)
    inv = F32(F32(1.0) / total)
    return list(range(start, end)), [F32(w * inv) for w in raw]


def _resize_bruteforce(img, oh, ow):
    ih, iw, c = img.shape
    inter = np.zeros((oh, iw, c), dtype=F32)
    for y in range(oh):
        srcs, ws = _taps_scalar(y, oh, ih)
        for xx in range(iw):
            for ch in range(c):
                acc = F32(0.0)
                for s, w in zip(srcs, ws):
                    acc = F32(acc + F32(w * img[s, xx, ch]))
                inter[y, xx, ch] = acc
    out = np.zeros((oh, ow, c), dtype=F32)
    for xo in range(ow):
        srcs, ws = _taps_scalar(xo, ow, iw)
        for y in range(oh):
            for ch in range(c):
                acc = F32(0.0)
                for s, w in zip(srcs, ws):
                    acc = F32(acc + F32(w * inter[y, s, ch]))
                out[y, xo, ch] = acc
    return out


def _det_image(h, w):
    """Deterministic integer-derived test image, normalized like MUSIQ."""
    i = np.arange(h)[:, None, None]
    j = np.arange(w)[None, :, None]
    c = np.arange(3)[None, None, :]
    u8 = ((i * 37 + j * 11 + c * 101 + (i * j) % 7) % 256).astype(np.uint8)
    return mr.normalize_value_range(u8)


class TestResize(unittest.TestCase):

    def test_matches_bruteforce_transcription(self):
        rng = np.random.default_rng(0)
        cases = [(17, 13, 7, 5), (5, 6, 11, 9), (9, 9, 9, 9), (1, 4, 3, 1),
                 (40, 3, 9, 2), (2, 2, 1, 1), (23, 31, 23, 12), (4, 4, 2, 2)]
        for ih, iw, oh, ow in cases:
            img = (rng.random((ih, iw, 3)) * 2 - 1).astype(F32)
            got = mr.resize_gaussian(img, oh, ow)
            want = _resize_bruteforce(img, oh, ow)
            self.assertEqual(got.dtype, F32)
            self.assertTrue(np.array_equal(got, want), (ih, iw, oh, ow))

    def test_tap_at_radius_has_zero_weight(self):
        # 4 -> 2: sample of output 0 is 1.0, taps 0, 1, 2 at distances
        # 0.5, 0.5, 1.5; the kernel is 0 at |x| >= radius.
        starts, w = mr.compute_spans(2, 4, F32(2) / F32(4))
        self.assertEqual(starts.tolist(), [0, 1])
        # span_size = min(5, in) = 4; the op zero-fills past the span
        self.assertEqual(w[0].tolist(), [0.5, 0.5, 0.0, 0.0])

    def test_same_size_resize_blurs(self):
        img = np.zeros((5, 5, 3), F32)
        img[2, 2] = 1
        out = mr.resize_gaussian(img, 5, 5)
        self.assertLess(out[2, 2, 0], 0.9)
        self.assertGreater(out[2, 1, 0], 0.0)

    def test_constant_image_stays_constant(self):
        img = np.full((50, 37, 3), F32(0.25))
        out = mr.resize_gaussian(img, 11, 8)
        np.testing.assert_allclose(out, 0.25, rtol=1e-6)

    def test_golden_tensorflow(self):
        # sha256 of the little-endian float32 output of
        # tf.image.resize(x, size, method=GAUSSIAN) in TensorFlow 2.21 CPU.
        golden = {
            (1024, 7, 224, 5): "dfe9b3638607116ff32ba5cdbbd48b86c7377bb0bde0aa326d91a8e308e9d951",
            (61, 1000, 13, 212): "b9fb556c7167e5fb0bd89c45be8751d001dad368498fccbd978c32685c4421cb",
            (768, 1024, 168, 224): "20aac01ce52e82687a9805a8af13b33c3f918b0df6fca3f4dfb06dde88885016",
            (33, 33, 33, 33): "522ec56c2c12faba5b9c906cd863d5aa8b499242a5e5ee84a09ac64935964783",
            (4, 4, 2, 2): "3501e42f6a5843fee5fd65b0f8df32e53c5b867c35ee377773f49d6711e5be10",
        }
        first = {(1024, 7, 224, 5): [-0.45148205757141113, 0.3406746983528137, -0.4097816050052643]}
        for (h, w, oh, ow), digest in golden.items():
            out = mr.resize_gaussian(_det_image(h, w), oh, ow).astype("<f4")
            if (h, w, oh, ow) in first:
                self.assertEqual(out.ravel()[:3].tolist(), first[(h, w, oh, ow)])
            self.assertEqual(hashlib.sha256(out.tobytes()).hexdigest(), digest, (h, w, oh, ow))


class TestPreprocessingPieces(unittest.TestCase):

    def test_normalize(self):
        u8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
        x = mr.normalize_value_range(u8)
        self.assertEqual(x.dtype, F32)
        want = (F32(-1.0) + (u8.astype(F32) / F32(255.0)) * F32(2.0)).astype(F32)
        self.assertTrue(np.array_equal(x, want))
        self.assertEqual(x[0, 0, 0], -1.0)
        self.assertEqual(x[-1, -1, 0], 1.0)

    def test_resize_dims(self):
        self.assertEqual(mr.resize_dims(1024, 768, 224), (224, 168))
        self.assertEqual(mr.resize_dims(768, 1024, 384), (288, 384))
        self.assertEqual(mr.resize_dims(512, 512, 224), (224, 224))
        # round half to even in float32: 3 * (224 / 448) = 1.5 -> 2;
        # 5 * (224/448) = 2.5 -> 2
        self.assertEqual(mr.resize_dims(3, 448, 224), (2, 224))
        self.assertEqual(mr.resize_dims(5, 448, 224), (2, 224))
        # our policy for extreme aspect ratios: never 0
        self.assertEqual(mr.resize_dims(1, 5000, 224), (1, 224))

    def test_patches_against_slicing(self):
        rng = np.random.default_rng(1)
        for h, w in ((100, 77), (32, 64), (1, 1), (65, 31), (64, 96)):
            img = rng.random((h, w, 3)).astype(F32)
            got, ch, cw = mr.extract_patches_same(img, 32)
            self.assertEqual((ch, cw), (math.ceil(h / 32), math.ceil(w / 32)))
            top = (ch * 32 - h) // 2
            left = (cw * 32 - w) // 2
            k = 0
            for i in range(ch):
                for j in range(cw):
                    patch = np.zeros((32, 32, 3), F32)
                    for r in range(32):
                        for c in range(32):
                            y, x = i * 32 + r - top, j * 32 + c - left
                            if 0 <= y < h and 0 <= x < w:
                                patch[r, c] = img[y, x]
                    self.assertTrue(np.array_equal(got[k], patch.reshape(-1)), (h, w, i, j))
                    k += 1

    def test_hashed_index(self):
        # small counts: the float32 rule equals the exact rational floor
        for count in range(1, 200):
            exact = np.minimum(np.arange(count) * 10 // count, 9)
            self.assertTrue(np.array_equal(mr.legacy_nearest_indices(10, count), exact), count)
        # count 205 (a native side of 6529..6560 px): float32 differs from
        # the rational rule; these values were checked against TF 2.21
        # tf.compat.v1.image.resize(NEAREST_NEIGHBOR).
        idx = mr.legacy_nearest_indices(10, 205)
        self.assertEqual(idx[[41, 82, 164]].tolist(), [1, 3, 7])
        idx = mr.legacy_nearest_indices(10, 266)
        self.assertEqual(int(idx[133]), 4)
        sp = mr.hashed_spatial_index(10, 3, 4)
        self.assertEqual(sp.tolist(), [0, 2, 5, 7, 30, 32, 35, 37, 60, 62, 65, 67])

    def test_preprocess_layout(self):
        img = np.zeros((768, 1024, 3), np.uint8)
        patches, spatial, scale, mask = mr.preprocess(img)
        self.assertEqual(patches.shape, (49 + 144 + 768, 3072))
        # 224 -> 168x224: 6x7 = 42 real of 49; 384 -> 288x384: 9x12 = 108 of 144
        self.assertEqual(int(mask[:49].sum()), 42)
        self.assertEqual(int(mask[49:193].sum()), 108)
        self.assertEqual(int(mask[193:].sum()), 768)
        self.assertTrue(np.all(scale[:42] == 0) and np.all(scale[49:49 + 108] == 1))
        self.assertTrue(np.all(scale[193:] == 2))
        # padding rows are all zero: patch, spatial 0, scale 0, mask 0
        self.assertTrue(np.all(patches[42:49] == 0) and np.all(spatial[42:49] == 0))
        self.assertTrue(np.all(scale[42:49] == 0) and np.all(mask[42:49] == 0))
        # black image normalizes to -1; SAME padding pixels are 0
        self.assertEqual(float(patches[193].min()), -1.0)
        # 168 rows -> 6 patch rows, pad 24: top 12 rows of the first patch are 0
        first = patches[0].reshape(32, 32, 3)
        self.assertTrue(np.all(first[:12] == 0))
        self.assertTrue(np.all(first[12:] != 0))


class TestLayers(unittest.TestCase):

    def test_group_norm_against_loop(self):
        rng = np.random.default_rng(2)
        x = (rng.standard_normal((3, 4, 5, 64)) * 2 + 0.5).astype(F32)
        scale = rng.standard_normal(64).astype(F32).reshape(1, 1, 1, 64)
        bias = rng.standard_normal(64).astype(F32).reshape(1, 1, 1, 64)
        got = mr.group_norm(x, scale, bias, 32, 1e-4)
        want = np.zeros(x.shape)
        xd = x.astype(np.float64)
        for n in range(3):
            for g in range(32):
                ch = slice(2 * g, 2 * g + 2)
                v = xd[n, :, :, ch]
                m = v.mean()
                var = ((v - m) ** 2).mean()
                want[n, :, :, ch] = (v - m) / np.sqrt(var + 1e-4)
        want = want * scale.reshape(64) + bias.reshape(64)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

    def test_weight_standardize(self):
        rng = np.random.default_rng(3)
        w = (rng.standard_normal((3, 3, 8, 5)) + 0.3).astype(F32)
        got = mr.weight_standardize(w)
        for o in range(5):
            v = w[..., o].astype(np.float64)
            want = (v - v.mean()) / (v.std() + 1e-5)     # population std
            np.testing.assert_allclose(got[..., o], want, rtol=1e-5, atol=1e-6)

    def test_conv_against_loop(self):
        rng = np.random.default_rng(4)
        for (h, k, s, ci, co) in ((32, 7, 2, 3, 8), (8, 3, 1, 4, 6), (8, 1, 1, 4, 3), (9, 3, 2, 2, 2)):
            x = rng.standard_normal((2, h, h, ci)).astype(F32)
            w = rng.standard_normal((k, k, ci, co)).astype(F32)
            got = mr.conv2d_same(x, w, s)
            oh = math.ceil(h / s)
            pad = max((oh - 1) * s + k - h, 0)
            before = pad // 2
            want = np.zeros((2, oh, oh, co))
            for n in range(2):
                for i in range(oh):
                    for j in range(oh):
                        for di in range(k):
                            for dj in range(k):
                                y, xx = i * s + di - before, j * s + dj - before
                                if 0 <= y < h and 0 <= xx < h:
                                    want[n, i, j] += x[n, y, xx].astype(np.float64) @ w[di, dj]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

    def test_max_pool_against_loop(self):
        rng = np.random.default_rng(5)
        x = rng.standard_normal((2, 16, 16, 3)).astype(F32) - 5   # all negative-ish
        got = mr.max_pool_same(x, 3, 2)
        self.assertEqual(got.shape, (2, 8, 8, 3))
        for i in range(8):
            for j in range(8):
                # SAME 16 -> 8: pad 0 before, 1 after (padding never wins)
                win = x[:, 2 * i:min(2 * i + 3, 16), 2 * j:min(2 * j + 3, 16)]
                np.testing.assert_array_equal(got[:, i, j], win.max(axis=(1, 2)))

    def test_layer_norm_and_gelu(self):
        rng = np.random.default_rng(6)
        x = (rng.standard_normal((4, 32)) * 3 + 1).astype(F32)
        s = rng.standard_normal(32).astype(F32)
        b = rng.standard_normal(32).astype(F32)
        xd = x.astype(np.float64)
        want = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-6) * s + b
        np.testing.assert_allclose(mr.layer_norm(x, s, b), want, rtol=1e-4, atol=1e-5)
        g = mr.gelu_tanh(x)
        want = 0.5 * xd * (1 + np.tanh(np.sqrt(2 / np.pi) * (xd + 0.044715 * xd ** 3)))
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6)


def _tiny_model(num_classes=1, seed=7):
    cfg = dict(mr.DEFAULT_CONFIG, hidden_size=16, num_layers=2, num_heads=2,
               mlp_dim=24, num_classes=num_classes)
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in mr.expected_shapes(cfg).items():
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        v = rng.standard_normal(shape) / math.sqrt(max(fan_in, 1))
        if name.endswith("/scale"):
            v = 1 + 0.1 * rng.standard_normal(shape)
        params[name] = v.astype(F32)
    return mr.Model(params, cfg)


class TestModel(unittest.TestCase):

    def test_padding_tokens_do_not_matter(self):
        """Keeping the padded tokens (masked) equals dropping them, and their
        content is irrelevant: an independent check of the masking."""
        model = _tiny_model()
        rng = np.random.default_rng(8)
        img = (rng.random((70, 45, 3)) * 255).astype(np.uint8)
        p, s, c, m = mr.preprocess(img, model.config)
        self.assertGreater(int((m == 0).sum()), 0)
        full, _ = mr.forward(model, p, s, c, m)
        keep = m == 1
        dropped, _ = mr.forward(model, p[keep], s[keep], c[keep], m[keep])
        np.testing.assert_allclose(full, dropped, rtol=1e-5, atol=1e-6)
        p2, s2, c2 = p.copy(), s.copy(), c.copy()
        p2[~keep] = rng.standard_normal(p2[~keep].shape).astype(F32)
        s2[~keep] = 99
        c2[~keep] = 2
        noisy, _ = mr.forward(model, p2, s2, c2, m)
        np.testing.assert_allclose(full, noisy, rtol=1e-5, atol=1e-6)

    def test_float32_close_to_float64(self):
        model32 = _tiny_model(10)
        model64 = mr.Model(model32.raw, model32.config, np.float64)
        img = (np.random.default_rng(9).random((64, 80, 3)) * 255).astype(np.uint8)
        r32 = mr.score_image(model32, img)
        r64 = mr.score_image(model64, img)
        self.assertTrue(1.0 <= r32["score"] <= 10.0)
        self.assertAlmostEqual(r32["score"], r64["score"], delta=1e-4)
        # 64x80: 224 -> 179x224 (6x7 = 42 patches), 384 -> 307x384 (10x12 =
        # 120), native 2x3 = 6; + CLS
        self.assertEqual(r32["tokens"], 42 + 120 + 6 + 1)
        self.assertEqual(r32["sequence_length"], 49 + 144 + 6 + 1)

    def test_score_from_logits(self):
        self.assertEqual(mr.score_from_logits(np.array([3.5], F32)), F32(3.5))
        lg = np.zeros(10, F32)
        self.assertAlmostEqual(float(mr.score_from_logits(lg)), 5.5, places=5)
        lg[9] = 100
        self.assertAlmostEqual(float(mr.score_from_logits(lg)), 10.0, places=5)


class TestImageLoading(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def _path(self, name):
        return os.path.join(self.dir.name, name)

    def test_policies(self):
        from PIL import Image
        rng = np.random.default_rng(10)
        rgba = (rng.random((9, 7, 4)) * 255).astype(np.uint8)
        Image.fromarray(rgba, "RGBA").save(self._path("a.png"))
        got = mr.load_image(self._path("a.png"))
        self.assertTrue(np.array_equal(got, rgba[:, :, :3]))
        gray = rgba[:, :, 0]
        Image.fromarray(gray, "L").save(self._path("g.png"))
        got = mr.load_image(self._path("g.png"))
        self.assertEqual(got.shape, (9, 7, 3))
        self.assertTrue(all(np.array_equal(got[:, :, k], gray) for k in range(3)))
        Image.fromarray(rgba[:, :, :3], "RGB").save(self._path("b.bmp"))
        self.assertTrue(np.array_equal(mr.load_image(self._path("b.bmp")), rgba[:, :, :3]))
        Image.fromarray(rgba[:, :, :3], "RGB").save(self._path("j.jpg"))
        with self.assertRaises(mr.ImageError):
            mr.load_image(self._path("j.jpg"))
        # a JPEG with a misleading name is refused too
        os.rename(self._path("j.jpg"), self._path("j.png"))
        with self.assertRaises(mr.ImageError):
            mr.load_image(self._path("j.png"))


if __name__ == "__main__":
    unittest.main()
