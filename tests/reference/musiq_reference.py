#!/usr/bin/python3
"""Independent NumPy reference of the official MUSIQ forward pass.

Written from ../../../shared/MUSIQ_SPEC.md and the official sources
(google-research/musiq/model/{preprocessing,multiscale_transformer,
multiscale_transformer_utils,resnet}.py, TensorFlow's
core/kernels/image/{scale_and_translate_op.cc,sampling_kernels.h,
resize_nearest_neighbor_op.cc}, old flax.nn normalization/attention),
without looking at the C++ engine.  It is used in CI to check the engine.

Everything is computed in float32, like the official model (or, with
precision "bf16" or "tf32", with the products' inputs rounded to bfloat16 or tf32 as
../../docs/precision.md defines it).  The float32
operation order of the TensorFlow preprocessing kernels is reproduced step by
step (see the comments), so that the preprocessing is bit-exact to TF as far
as the TF source goes (TF's own build may contract multiply-adds into FMAs,
which can change a resized pixel by an ulp).

Library use:
    import musiq_reference as mr
    model = mr.load_model("model.h5")
    img = mr.load_image("photo.png")                # uint8 [H, W, 3]
    patches, spatial, scale, mask = mr.preprocess(img, model.config)
    result = mr.score_image(model, img)             # dict: score, tokens, ...

CLI:
    musiq_reference.py --weights MODEL.h5 IMAGE...
prints one JSON object per line: {"path": ..., "score": ..., "tokens": N},
tokens = number of non-padding tokens + 1 (CLS).  Only lossless inputs
(PNG, BMP, ...) are accepted; JPEG is refused because PIL's JPEG decoder is
not TensorFlow's.

Only numpy, h5py and PIL are used.
"""

import argparse
import json
import math
import sys

import numpy as np

F32 = np.float32

# The official default configuration (run_predict_image.py), in the layout of
# the `config` attribute of our HDF5 weights files (weights/FORMAT.md).
DEFAULT_CONFIG = {
    "patch_size": 32,
    "hse_grid_size": 10,
    "longer_side_lengths": [224, 384],
    "max_seq_len_from_original_res": -1,
    "hidden_size": 384,
    "num_layers": 14,
    "num_heads": 6,
    "mlp_dim": 1152,
    "num_classes": 1,
}

# Stem constants fixed by the official code (multiscale_transformer.py,
# resnet.py): RESNET_TOKEN_DIM = 64, resnet_emb.num_layers = 5 -> one
# bottleneck unit "block1/unit1" of width 64 (output 256).
STEM_WIDTH = 64
GN_GROUPS = 32
GN_ROOT_EPS = 1e-6   # flax.nn.GroupNorm default epsilon (gn_root passes none)
GN_UNIT_EPS = 1e-4   # resnet.ResidualUnit passes epsilon=1e-4
WS_EPS = 1e-5        # resnet.StdConv: weight_standardize(..., eps=1e-5)
LN_EPS = 1e-6        # flax.nn.LayerNorm default epsilon
MASK_LOGIT = -1e10   # flax.nn.attention: attention bias for masked pairs


# ----------------------------------------------------------------------------
# Image decoding (our policy, not the official one: the official pipeline
# uses tf.image.decode_jpeg and assumes 3 channels).
# ----------------------------------------------------------------------------

class ImageError(ValueError):
    pass


def load_image(path):
    """Decodes a lossless image file to uint8 [H, W, 3].

    Grayscale is replicated to 3 channels, alpha is dropped.  JPEG is refused.
    """
    from PIL import Image

    with open(path, "rb") as f:
        head = f.read(4)
    if head[:3] == b"\xff\xd8\xff":
        raise ImageError("%s: JPEG input is not supported by the reference "
                         "(PIL's JPEG decoder differs from TensorFlow's); "
                         "use a lossless format such as PNG" % path)
    with Image.open(path) as im:
        if im.format in ("JPEG", "MPO"):
            raise ImageError("%s: JPEG input is not supported by the reference"
                             % path)
        im.load()
        mode = im.mode
        if mode in ("RGB", "L"):
            pass
        elif mode == "1":
            im = im.convert("L")
        elif mode == "LA":
            im = im.getchannel("L")
        elif mode in ("RGBA", "RGBX"):
            im = im.convert("RGB")                 # drops alpha / padding
        elif mode in ("P", "PA"):
            im = im.convert("RGBA").convert("RGB")  # palette, alpha dropped
        else:
            raise ImageError("%s: unsupported PIL image mode %r (need 8-bit "
                             "gray, gray+alpha, palette, RGB or RGBA)"
                             % (path, mode))
        a = np.asarray(im, dtype=np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ImageError("%s: unexpected decoded shape %r" % (path, a.shape))
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------------------
# Preprocessing (musiq/model/preprocessing.py)
# ----------------------------------------------------------------------------

def normalize_value_range(image_u8):
    """preprocessing.normalize_value_range with its defaults, in float32.

    image = (x - 0) / (255 - 0); image = vmin + image * (vmax - vmin)
    i.e. float32(float32(x / 255) * 2) + (-1), each op rounded to float32.
    """
    x = np.asarray(image_u8).astype(F32)
    x = (x - F32(0.0)) / (F32(255.0) - F32(0.0))
    x = F32(-1.0) + x * F32(2.0)
    return x.astype(F32)


def resize_dims(h, w, longer_side_length):
    """preprocessing.resize_preserve_aspect_ratio: (rh, rw), float32 math.

    ratio = float32(L) / float32(max(h, w)); rh = round_half_even(float32(h) *
    ratio).  Our policy: a side that would round to 0 becomes 1 (the official
    code would fail in ScaleAndTranslate).
    """
    ratio = F32(longer_side_length) / F32(max(h, w))
    rh = int(np.round(F32(h) * ratio))   # np.round on float32: half to even
    rw = int(np.round(F32(w) * ratio))
    return max(rh, 1), max(rw, 1)


def gaussian_kernel(x):
    """sampling_kernels.h GaussianKernelFunc(radius 1.5, sigma 0.5).

    x = |x|; 0 if x >= radius; else exp(-x*x / (2.0*sigma*sigma)) where
    -x*x is a float product and the division and exp are in double (2.0 is a
    double literal), and the result is returned as float.
    """
    x = np.abs(np.asarray(x, dtype=F32))
    neg_x2 = ((-x) * x).astype(F32)
    sigma = F32(1.5) / F32(3.0)
    denom = 2.0 * float(sigma) * float(sigma)          # double: 0.5
    w = np.exp(neg_x2.astype(np.float64) / denom).astype(F32)
    return np.where(x >= F32(1.5), F32(0.0), w).astype(F32)


def compute_spans(output_size, input_size, scale):
    """ComputeSpansCore of scale_and_translate_op.cc, Gaussian kernel,
    antialias off (kernel_scale 1), translate 0.

    Returns (starts int64 [out], weights float32 [out, span_size]) where taps
    of output x are sources starts[x] + j with weight weights[x, j]; weights
    past the span are 0 (the op zero-fills them).
    """
    radius = F32(1.5)
    kernel_scale = F32(1.0)
    inv_scale = F32(1.0 / float(F32(scale)))    # `const float inv_scale = 1.0 / scale;`
    inv_translate = -inv_scale * F32(0.0)       # -0.0f
    span_size = min(2 * int(math.ceil(float(radius * kernel_scale))) + 1,
                    int(input_size))
    one_over_kernel_scale = F32(1.0) / kernel_scale

    x = np.arange(output_size)
    col_f = x.astype(F32) + F32(0.5)
    sample_f = (col_f * inv_scale).astype(F32) + inv_translate
    outside = (sample_f < 0) | (sample_f > F32(input_size))

    # ceil(sample_f - Radius()*kernel_scale - 0.5f), evaluated left to right.
    rk = radius * kernel_scale
    start = np.ceil(((sample_f - rk).astype(F32) - F32(0.5)).astype(F32))
    end = np.floor(((sample_f + rk).astype(F32) - F32(0.5)).astype(F32))
    start = np.clip(start.astype(np.int64), 0, input_size - 1)
    end = np.clip(end.astype(np.int64), 0, input_size - 1) + 1
    this_span = end - start
    if np.any(this_span[~outside] > span_size):
        raise RuntimeError("Span is too large")

    total = np.zeros(output_size, dtype=F32)
    raw = np.zeros((output_size, span_size), dtype=F32)
    for j in range(span_size):
        source = start + j
        valid = (j < this_span) & ~outside
        kernel_pos = ((source.astype(F32) + F32(0.5)).astype(F32)
                      - sample_f).astype(F32)
        wj = gaussian_kernel((kernel_pos * one_over_kernel_scale).astype(F32))
        wj = np.where(valid, wj, F32(0.0)).astype(F32)
        raw[:, j] = wj
        total = (total + wj).astype(F32)        # sequential float sum
    ok = (np.abs(total) >= F32(1000.0) * np.finfo(F32).tiny) & ~outside
    one_over_total = np.where(ok, F32(1.0) / np.where(ok, total, F32(1.0)),
                              F32(0.0)).astype(F32)
    weights = (raw * one_over_total[:, None]).astype(F32)
    starts = np.where(outside, 0, start)
    return starts.astype(np.int64), weights


def _gather_axis(image, starts, weights, axis):
    """GatherRows / GatherColumns: out = sum_j w[j] * in[start + j] along
    `axis`, accumulated in float32 from 0 in tap order (no FMA)."""
    in_size = image.shape[axis]
    out = None
    for j in range(weights.shape[1]):
        idx = np.minimum(starts + j, in_size - 1)  # weight is 0 past the span
        taken = np.take(image, idx, axis=axis)
        shape = [1] * image.ndim
        shape[axis] = len(starts)
        term = (weights[:, j].reshape(shape) * taken).astype(F32)
        out = term if out is None else (out + term).astype(F32)
    return out


def resize_gaussian(image, out_h, out_w):
    """tf2.image.resize(image, (out_h, out_w), GAUSSIAN), antialias False:
    ScaleAndTranslate with scale = float32(out) / float32(in), translate 0.
    Rows (height) first into a [out_h, in_w, C] buffer, then columns."""
    image = np.asarray(image, dtype=F32)
    in_h, in_w = image.shape[:2]
    row_scale = F32(out_h) / F32(in_h)
    col_scale = F32(out_w) / F32(in_w)
    col_starts, col_w = compute_spans(out_w, in_w, col_scale)
    row_starts, row_w = compute_spans(out_h, in_h, row_scale)
    inter = _gather_axis(image, row_starts, row_w, axis=0)
    return _gather_axis(inter, col_starts, col_w, axis=1)


def extract_patches_same(image, patch_size):
    """tf.image.extract_patches, size = stride = patch_size, rates 1, SAME.

    Returns [count_h * count_w, p*p*C] in row-major patch order, each patch
    vector in (row, col, channel) order; padding is zeros, top/left gets
    floor(pad_total / 2)."""
    h, w, c = image.shape
    p = patch_size
    ch, cw = -(-h // p), -(-w // p)
    pad_h, pad_w = ch * p - h, cw * p - w
    padded = np.zeros((ch * p, cw * p, c), dtype=F32)
    padded[pad_h // 2:pad_h // 2 + h, pad_w // 2:pad_w // 2 + w] = image
    x = padded.reshape(ch, p, cw, p, c).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(x.reshape(ch * cw, p * p * c)), ch, cw


def legacy_nearest_indices(in_size, out_size):
    """resize_nearest_neighbor, align_corners False, half_pixel_centers False:
    scale = float(in) / float(out); src = min(floorf(float(dst) * scale),
    in - 1), all float32."""
    scale = F32(in_size) / F32(out_size)
    dst = np.arange(out_size).astype(F32)
    src = np.floor((dst * scale).astype(F32)).astype(np.int64)
    return np.minimum(src, in_size - 1)


def hashed_spatial_index(grid_size, count_h, count_w):
    """preprocessing.get_hashed_spatial_pos_emb_index: [count_h * count_w]."""
    hh = legacy_nearest_indices(grid_size, count_h)
    hw = legacy_nearest_indices(grid_size, count_w)
    return (hh[:, None] * grid_size + hw[None, :]).reshape(-1)


def _tokens_of_scale(image, patch_size, grid_size, scale_id, max_seq_len):
    """_extract_patches_and_positions_from_image for one image (n_crops 1).

    max_seq_len >= 0: pad with all-zero rows (patch 0, spatial 0, scale 0,
    mask 0) or cut to max_seq_len; < 0: keep all patches."""
    patches, ch, cw = extract_patches_same(image, patch_size)
    n = patches.shape[0]
    spatial = hashed_spatial_index(grid_size, ch, cw)
    scale = np.full(n, scale_id, dtype=np.int64)
    mask = np.ones(n, dtype=np.int64)
    if max_seq_len is not None and max_seq_len >= 0:
        keep = min(n, max_seq_len)
        out_p = np.zeros((max_seq_len, patches.shape[1]), dtype=F32)
        out_s = np.zeros(max_seq_len, dtype=np.int64)
        out_c = np.zeros(max_seq_len, dtype=np.int64)
        out_m = np.zeros(max_seq_len, dtype=np.int64)
        out_p[:keep], out_s[:keep] = patches[:keep], spatial[:keep]
        out_c[:keep], out_m[:keep] = scale[:keep], mask[:keep]
        return out_p, out_s, out_c, out_m
    return patches, spatial, scale, mask


def preprocess(image_uint8, config=None):
    """Multi-scale patches of one uint8 [H, W, 3] image.

    Returns (patches float32 [N, p*p*3], spatial int64 [N], scale int64 [N],
    mask int64 [N]): tokens of the resized scales (sorted longer-side
    lengths, each padded/cut to ceil(L/p)^2), then of the native resolution
    (all patches when max_seq_len_from_original_res < 0, none when null).
    """
    cfg = dict(DEFAULT_CONFIG)
    if config:
        cfg.update(config)
    image = np.asarray(image_uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("preprocess expects [H, W, 3], got %r" % (image.shape,))
    p = int(cfg["patch_size"])
    g = int(cfg["hse_grid_size"])
    lengths = sorted(int(v) for v in cfg["longer_side_lengths"])
    native = cfg.get("max_seq_len_from_original_res", -1)

    x = normalize_value_range(image)
    h, w = x.shape[:2]
    parts = []
    for scale_id, length in enumerate(lengths):
        rh, rw = resize_dims(h, w, length)
        resized = resize_gaussian(x, rh, rw)
        max_seq_len = int(math.ceil(length / p) ** 2)
        parts.append(_tokens_of_scale(resized, p, g, scale_id, max_seq_len))
    if native is not None:
        parts.append(_tokens_of_scale(x, p, g, len(lengths), int(native)))
    patches = np.concatenate([q[0] for q in parts], axis=0)
    spatial = np.concatenate([q[1] for q in parts])
    scale = np.concatenate([q[2] for q in parts])
    mask = np.concatenate([q[3] for q in parts])
    return patches, spatial, scale, mask


# ----------------------------------------------------------------------------
# Model building blocks (one function per layer)
# ----------------------------------------------------------------------------

def identity(x):
    return x


def round_low_bits(x, bits):
    """float32 -> the nearest float32 whose low `bits` bits are zero (ties to even); NaN
    stays NaN."""
    x = np.asarray(x, dtype=F32)
    u = x.view(np.uint32).astype(np.uint64)
    kept = (0xFFFFFFFF >> bits) << bits
    rounded = ((u + (1 << (bits - 1)) - 1 + ((u >> bits) & 1)) & kept).astype(np.uint32)
    out = rounded.view(F32)
    return np.where(np.isnan(x), x, out).astype(F32)


def round_to_bf16(x):
    """float32 -> the nearest bfloat16 (ties to even), kept as float32; NaN stays NaN."""
    return round_low_bits(x, 16)


def round_to_tf32(x):
    """float32 -> the nearest tf32 (10 stored mantissa bits, ties to even), kept as float32."""
    return round_low_bits(x, 13)


ROUNDING = {"fp32": None, "bf16": round_to_bf16, "tf32": round_to_tf32}


def weight_standardize(w, dtype=F32):
    """resnet.weight_standardize(w, axis=[0, 1, 2], eps=1e-5):
    w = w - mean(w); w = w / (std(w) + eps), population std."""
    w = np.asarray(w, dtype=dtype)
    w = w - w.mean(axis=(0, 1, 2))
    return (w / (w.std(axis=(0, 1, 2)) + dtype(WS_EPS))).astype(dtype)


def same_padding(size, k, s):
    """TF/XLA SAME padding: (out, pad_before, pad_after)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def conv2d_same(x, w, stride, rnd=identity):
    """NHWC x HWIO convolution, SAME padding, no bias (im2col + matmul); rnd is applied
    to the input (the kernel is given as the precision wants it)."""
    x = rnd(x)
    n, h, wd, c = x.shape
    kh, kw, ci, co = w.shape
    assert ci == c
    if kh == 1 and kw == 1 and stride == 1:
        return (x.reshape(-1, c) @ w.reshape(c, co)).reshape(n, h, wd, co)
    oh, pt, pb = same_padding(h, kh, stride)
    ow, pl, pr = same_padding(wd, kw, stride)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    win = win[:, ::stride, ::stride][:, :oh, :ow]        # [n, oh, ow, c, kh, kw]
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * c)
    return (cols @ w.reshape(kh * kw * ci, co)).reshape(n, oh, ow, co)


def group_norm(x, scale, bias, num_groups, eps):
    """flax.nn.GroupNorm on NHWC: per example and group, statistics over
    (H, W, channels of the group); var = E[x^2] - E[x]^2;
    x = (x - mean) * rsqrt(var + eps); x = x * scale + bias."""
    dt = x.dtype.type
    n, h, w, c = x.shape
    xg = x.reshape(n, h, w, num_groups, c // num_groups)
    axes = (1, 2, 4)
    mean = xg.mean(axis=axes, keepdims=True)
    mean_sq = np.square(xg).mean(axis=axes, keepdims=True)
    var = mean_sq - np.square(mean)
    xg = (xg - mean) * (dt(1.0) / np.sqrt(var + dt(eps)))
    x = xg.reshape(n, h, w, c)
    return x * np.asarray(scale, dt).reshape(1, 1, 1, c) + \
        np.asarray(bias, dt).reshape(1, 1, 1, c)


def relu(x):
    return np.maximum(x, x.dtype.type(0))


def max_pool_same(x, k, s):
    """flax.nn.max_pool(x, (k, k), strides=(s, s), padding='SAME');
    padding is -inf, so it never wins."""
    n, h, w, c = x.shape
    oh, pt, pb = same_padding(h, k, s)
    ow, pl, pr = same_padding(w, k, s)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-np.inf)
    out = None
    for i in range(k):
        for j in range(k):
            v = xp[:, i:i + (oh - 1) * s + 1:s, j:j + (ow - 1) * s + 1:s]
            out = v if out is None else np.maximum(out, v)
    return out


def dense(x, kernel, bias=None, rnd=identity):
    y = rnd(x) @ kernel
    return y if bias is None else y + bias


def layer_norm(x, scale, bias, eps=LN_EPS):
    """flax.nn.LayerNorm: var = E[x^2] - E[x]^2; mul = rsqrt(var+eps)*scale;
    y = (x - mean) * mul + bias."""
    dt = x.dtype.type
    mean = x.mean(axis=-1, keepdims=True)
    mean_sq = np.square(x).mean(axis=-1, keepdims=True)
    var = mean_sq - np.square(mean)
    mul = (dt(1.0) / np.sqrt(var + dt(eps))) * scale
    return (x - mean) * mul + bias


def gelu_tanh(x):
    """jax.nn.gelu (approximate=True):
    x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))."""
    dt = x.dtype.type
    c = dt(np.sqrt(2.0 / np.pi))
    cdf = dt(0.5) * (dt(1.0) + np.tanh(c * (x + dt(0.044715) * (x ** 3))))
    return x * cdf


def softmax_lse(logits, axis=-1):
    """exp(x - logsumexp(x)), as flax.nn.dot_product_attention normalizes."""
    m = logits.max(axis=axis, keepdims=True)
    lse = m + np.log(np.exp(logits - m).sum(axis=axis, keepdims=True))
    return np.exp(logits - lse)


def multi_head_self_attention(x, mask, p, num_heads, query_chunk=256, rnd=identity):
    """flax.nn.SelfAttention (MultiHeadDotProductAttention) with
    padding_mask=mask: q, k, v = DenseGeneral(x) [L, heads, head_dim];
    q /= sqrt(head_dim); logits = q.k + bias, bias = 0 where
    mask[q] * mask[k] > 0 else -1e10; softmax over keys; out =
    DenseGeneral over (heads, head_dim).  Queries are processed in chunks
    (softmax rows are independent, so this is exact).  With rnd (bf16), the
    scaled q, k, v and the unnormalised probabilities exp(logit - max) are
    rounded, and the product is divided by the float32 sum of the unrounded
    ones (docs/precision.md)."""
    dt = x.dtype.type
    L, D = x.shape
    hd = D // num_heads
    q = dense(x, p["query/kernel"].reshape(D, D), p["query/bias"].reshape(D), rnd)
    k = dense(x, p["key/kernel"].reshape(D, D), p["key/bias"].reshape(D), rnd)
    v = dense(x, p["value/kernel"].reshape(D, D), p["value/bias"].reshape(D), rnd)
    q = q.reshape(L, num_heads, hd).transpose(1, 0, 2)      # [H, L, hd]
    k = k.reshape(L, num_heads, hd).transpose(1, 0, 2)
    v = v.reshape(L, num_heads, hd).transpose(1, 0, 2)
    q = rnd(q / dt(np.sqrt(hd)))
    k, v = rnd(k), rnd(v)
    maskf = np.asarray(mask, dtype=dt)
    out = np.empty((num_heads, L, hd), dtype=dt)
    for s in range(0, L, query_chunk):
        e = min(L, s + query_chunk)
        logits = q[:, s:e] @ k.transpose(0, 2, 1)           # [H, c, L]
        pair = maskf[s:e, None] * maskf[None, :]
        bias = np.where(pair > 0, dt(0.0), dt(MASK_LOGIT)).astype(dt)
        logits = logits + bias[None]
        if rnd is identity:
            out[:, s:e] = softmax_lse(logits, axis=-1) @ v
        else:
            ex = np.exp(logits - logits.max(axis=-1, keepdims=True))
            out[:, s:e] = (rnd(ex) @ v) / ex.sum(axis=-1, keepdims=True)
    y = out.transpose(1, 0, 2).reshape(L, D)
    return dense(y, p["out/kernel"].reshape(D, D), p["out/bias"], rnd)


def encoder_block(x, mask, p, num_heads, rnd=identity):
    """Encoder1DBlock (pre-norm): x + Attn(LN(x)), then + MLP(LN(.))."""
    y = layer_norm(x, p["LayerNorm_0/scale"], p["LayerNorm_0/bias"])
    y = multi_head_self_attention(y, mask, _sub(p, "MultiHeadDotProductAttention_1/"),
                                  num_heads, rnd=rnd)
    x = y + x
    y = layer_norm(x, p["LayerNorm_2/scale"], p["LayerNorm_2/bias"])
    y = dense(y, p["MlpBlock_3/Dense_0/kernel"], p["MlpBlock_3/Dense_0/bias"], rnd)
    y = gelu_tanh(y)
    y = dense(y, p["MlpBlock_3/Dense_1/kernel"], p["MlpBlock_3/Dense_1/bias"], rnd)
    return y + x


def _sub(params, prefix):
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def patch_stem(patches, p, patch_size, rnd=identity):
    """conv_root (StdConv 7x7/2) -> gn_root -> relu -> max_pool 3x3/2 SAME ->
    block1/unit1 (bottleneck with projection) -> flatten (h, w, c).

    p holds the weight-standardized conv kernels."""
    n = patches.shape[0]
    x = patches.reshape(n, patch_size, patch_size, 3)
    x = conv2d_same(x, p["conv_root/kernel"], 2, rnd)
    x = group_norm(x, p["gn_root/scale"], p["gn_root/bias"], GN_GROUPS, GN_ROOT_EPS)
    x = relu(x)
    x = max_pool_same(x, 3, 2)
    u = "block1/unit1/"
    residual = conv2d_same(x, p[u + "conv_proj/kernel"], 1, rnd)
    residual = group_norm(residual, p[u + "gn_proj/scale"], p[u + "gn_proj/bias"],
                          GN_GROUPS, GN_UNIT_EPS)
    y = conv2d_same(x, p[u + "conv1/kernel"], 1, rnd)
    y = relu(group_norm(y, p[u + "gn1/scale"], p[u + "gn1/bias"], GN_GROUPS, GN_UNIT_EPS))
    y = conv2d_same(y, p[u + "conv2/kernel"], 1, rnd)
    y = relu(group_norm(y, p[u + "gn2/scale"], p[u + "gn2/bias"], GN_GROUPS, GN_UNIT_EPS))
    y = conv2d_same(y, p[u + "conv3/kernel"], 1, rnd)
    y = group_norm(y, p[u + "gn3/scale"], p[u + "gn3/bias"], GN_GROUPS, GN_UNIT_EPS)
    x = relu(residual + y)
    return x.reshape(n, -1)


# ----------------------------------------------------------------------------
# Weights and the full model
# ----------------------------------------------------------------------------

STEM_CONVS = ["conv_root/kernel", "block1/unit1/conv_proj/kernel",
              "block1/unit1/conv1/kernel", "block1/unit1/conv2/kernel",
              "block1/unit1/conv3/kernel"]


def expected_shapes(cfg):
    """Parameter names and shapes of the official model for a config."""
    D, M, C = cfg["hidden_size"], cfg["mlp_dim"], cfg["num_classes"]
    H = cfg["num_heads"]
    hd = D // H
    g = cfg["hse_grid_size"]
    n_scales = len(cfg["longer_side_lengths"]) + \
        (0 if cfg.get("max_seq_len_from_original_res", -1) is None else 1)
    feat = (cfg["patch_size"] // 4) ** 2 * STEM_WIDTH * 4
    s = {
        "conv_root/kernel": (7, 7, 3, 64), "gn_root/scale": (1, 1, 1, 64),
        "gn_root/bias": (1, 1, 1, 64),
        "embedding/kernel": (feat, D), "embedding/bias": (D,),
        "Transformer/posembed_input/pos_embedding": (1, g * g, D),
        "Transformer/scaleembed_input/scale_embedding": (1, n_scales, D),
        "Transformer/cls": (1, 1, D),
        "Transformer/encoder_norm/scale": (D,), "Transformer/encoder_norm/bias": (D,),
        "head/kernel": (D, C), "head/bias": (C,),
    }
    u = "block1/unit1/"
    for name, shape, ch in (("conv_proj", (1, 1, 64, 256), 256), ("conv1", (1, 1, 64, 64), 64),
                            ("conv2", (3, 3, 64, 64), 64), ("conv3", (1, 1, 64, 256), 256)):
        s[u + name + "/kernel"] = shape
        gn = {"conv_proj": "gn_proj", "conv1": "gn1", "conv2": "gn2", "conv3": "gn3"}[name]
        s[u + gn + "/scale"] = (1, 1, 1, ch)
        s[u + gn + "/bias"] = (1, 1, 1, ch)
    for i in range(cfg["num_layers"]):
        b = "Transformer/encoderblock_%d/" % i
        for ln in ("LayerNorm_0", "LayerNorm_2"):
            s[b + ln + "/scale"] = (D,)
            s[b + ln + "/bias"] = (D,)
        a = b + "MultiHeadDotProductAttention_1/"
        for q in ("query", "key", "value"):
            s[a + q + "/kernel"] = (D, H, hd)
            s[a + q + "/bias"] = (H, hd)
        s[a + "out/kernel"] = (H, hd, D)
        s[a + "out/bias"] = (D,)
        s[b + "MlpBlock_3/Dense_0/kernel"] = (D, M)
        s[b + "MlpBlock_3/Dense_0/bias"] = (M,)
        s[b + "MlpBlock_3/Dense_1/kernel"] = (M, D)
        s[b + "MlpBlock_3/Dense_1/bias"] = (D,)
    return s


class Model:
    """Parameters (float32, conv kernels weight-standardized) + config.  With
    precision "bf16" (or "tf32") every Dense and conv kernel but the head's is rounded
    to bfloat16 (tf32) after the standardization, and `rnd` rounds the products'
    other inputs."""

    def __init__(self, params, config, dtype=F32, precision="fp32"):
        if precision not in ROUNDING:
            raise ValueError("precision must be fp32, bf16 or tf32, not %r" % precision)
        if precision != "fp32" and dtype != F32:
            raise ValueError("%s rounds float32 values: use dtype float32" % precision)
        self.config = dict(config)
        self.dtype = dtype
        self.precision = precision
        self.rnd = ROUNDING[precision] or identity
        self.raw = params
        self.params = {}
        for k, v in params.items():
            v = np.asarray(v, dtype=dtype)
            if k in STEM_CONVS:
                v = weight_standardize(v, dtype)
            if k.endswith("/kernel") and k != "head/kernel":
                v = self.rnd(v)
            self.params[k] = v


def load_model(path, dtype=F32, precision="fp32"):
    import h5py

    params = {}
    with h5py.File(path, "r") as f:
        cfg = f.attrs["config"]
        if isinstance(cfg, bytes):
            cfg = cfg.decode("utf-8")
        cfg = json.loads(str(cfg))

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                params[name] = np.asarray(obj[()], dtype=F32)
        f.visititems(visit)
        nc = int(f.attrs.get("num_classes", cfg["num_classes"]))
    if nc != int(cfg["num_classes"]):
        raise ValueError("num_classes attribute %d != config %r" % (nc, cfg["num_classes"]))
    want = expected_shapes(cfg)
    problems = []
    for k, shape in want.items():
        if k not in params:
            problems.append("missing %s %r" % (k, shape))
        elif tuple(params[k].shape) != tuple(shape):
            problems.append("%s: shape %r, expected %r" % (k, params[k].shape, shape))
    for k in params:
        if k not in want:
            problems.append("unexpected dataset %s %r" % (k, params[k].shape))
    if problems:
        raise ValueError("%s does not match its config:\n  %s" % (path, "\n  ".join(problems)))
    return Model(params, cfg, dtype, precision)


def forward(model, patches, spatial, scale, mask, stem_chunk=256):
    """The model on one preprocessed image; returns (logits [C], info)."""
    p, cfg, dt, rnd = model.params, model.config, model.dtype, model.rnd
    ps = int(cfg["patch_size"])
    n = patches.shape[0]
    patches = np.asarray(patches, dtype=dt)
    feats = []
    for s in range(0, n, stem_chunk):
        feats.append(patch_stem(patches[s:s + stem_chunk], p, ps, rnd))
    x = np.concatenate(feats, axis=0) if feats else np.zeros((0, p["embedding/kernel"].shape[0]), dt)
    x = dense(x, p["embedding/kernel"], p["embedding/bias"], rnd)
    T = "Transformer/"
    x = x + p[T + "posembed_input/pos_embedding"][0][np.asarray(spatial, np.int64)]
    x = x + p[T + "scaleembed_input/scale_embedding"][0][np.asarray(scale, np.int64)]
    x = np.concatenate([p[T + "cls"][0], x], axis=0)
    m = np.concatenate([[1], np.asarray(mask, np.int64)])
    for i in range(int(cfg["num_layers"])):
        x = encoder_block(x, m, _sub(p, T + "encoderblock_%d/" % i), int(cfg["num_heads"]),
                          rnd)
    x = layer_norm(x, p[T + "encoder_norm/scale"], p[T + "encoder_norm/bias"])
    cls = x[0]
    logits = dense(cls, p["head/kernel"], p["head/bias"])
    # |cls_i * W_ij| summed over i: the scale of the float rounding error of
    # logit j propagated from a relative error of the CLS features.
    head_mag = (np.abs(cls.astype(np.float64))[:, None]
                * np.abs(p["head/kernel"].astype(np.float64))).sum(axis=0)
    return logits, {"head_magnitude": head_mag, "cls": cls}


def score_from_logits(logits):
    """num_classes 1: the output; > 1: softmax, sum p_i * i for i = 1..C
    (run_predict_image.run_model_single_image)."""
    dt = logits.dtype.type
    c = logits.shape[-1]
    if c == 1:
        return logits[0]
    e = np.exp(logits - logits.max())
    probs = e / e.sum()
    return (probs * np.arange(1, c + 1, dtype=dt)).sum()


def error_scale(logits, head_magnitude):
    """First-order scale of the score's error: sum_j |d score / d logit_j| *
    head_magnitude_j.  A relative error e of the final CLS features moves
    the score by about e * error_scale, whatever the score itself is (it can
    be near 0 for a 1-class model through cancellation in the head)."""
    lg = np.asarray(logits, dtype=np.float64)
    c = lg.shape[-1]
    if c == 1:
        return float(head_magnitude[0])
    e = np.exp(lg - lg.max())
    probs = e / e.sum()
    idx = np.arange(1, c + 1, dtype=np.float64)
    s = float((probs * idx).sum())
    # d score / d logit_j = p_j * (j - score)
    return float(np.sum(np.abs(probs * (idx - s)) * head_magnitude))


def score_image(model, image_uint8):
    """Preprocess + forward + score for one uint8 [H, W, 3] image."""
    patches, spatial, scale, mask = preprocess(image_uint8, model.config)
    logits, info = forward(model, patches, spatial, scale, mask)
    score = score_from_logits(logits)
    return {
        "score": float(score),
        "tokens": int(np.sum(mask)) + 1,
        "sequence_length": int(len(mask)) + 1,
        "logits": [float(v) for v in logits],
        "error_scale": error_scale(logits, info["head_magnitude"]),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True, help="MUSIQ HDF5 weights file")
    ap.add_argument("--float64", action="store_true",
                    help="run the model (not the preprocessing) in float64, "
                         "to estimate float32 rounding noise")
    ap.add_argument("--precision", choices=tuple(ROUNDING), default="fp32",
                    help="bf16 / tf32: the products' inputs rounded to bfloat16 / tf32 "
                         "(docs/precision.md)")
    ap.add_argument("--verbose", action="store_true",
                    help="also print logits, sequence length, error scale")
    ap.add_argument("images", nargs="+")
    args = ap.parse_args(argv)
    model = load_model(args.weights, np.float64 if args.float64 else F32, args.precision)
    rc = 0
    for path in args.images:
        try:
            img = load_image(path)
        except (ImageError, OSError) as e:
            print("musiq_reference: %s" % e, file=sys.stderr)
            rc = 1
            continue
        r = score_image(model, img)
        rec = {"path": path, "score": r["score"], "tokens": r["tokens"]}
        if args.verbose:
            rec.update({k: r[k] for k in ("logits", "sequence_length", "error_scale")})
        print(json.dumps(rec), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
