#!/usr/bin/python3
"""MUSIQ parameter table, validation and the HDF5 writer (weights/FORMAT.md).

Shared by tools/musiq-export, tools/musiq-make-test-model and the Python tests.
The C++ engine's table is weights/param_table.h; tests/param_table_test.cc requires
expected_params() and VARIANTS to agree with it.
Names follow the official code (google-research musiq/model/*.py), without the
`opt/target/` prefix of the checkpoints.
"""
import json
import os
import tempfile

import h5py
import numpy as np

FORMAT = "musiq-hdf5"
FORMAT_VERSION = 1

# Key order is the order of FORMAT.md; the `config` attribute is json.dumps of this.
OFFICIAL_CONFIG = {
    "patch_size": 32, "hse_grid_size": 10, "longer_side_lengths": [224, 384],
    "max_seq_len_from_original_res": -1, "hidden_size": 384, "num_layers": 14,
    "num_heads": 6, "mlp_dim": 1152, "num_classes": 1,
}
SMALL_TEST_CONFIG = dict(OFFICIAL_CONFIG, hidden_size=64, num_layers=2,
                         num_heads=2, mlp_dim=128)
VARIANTS = {"spaq": 1, "koniq": 1, "paq2piq": 1, "ava": 10}

STEM_WIDTH = 64            # RESNET_TOKEN_DIM in multiscale_transformer.py
STEM_OUT = 8 * 8 * 4 * STEM_WIDTH  # 32x32 patch -> 8x8x256 -> embedding input


def official_config(variant):
    """The official config with num_classes set for `variant`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (expected one of "
                         f"{', '.join(VARIANTS)})")
    return dict(OFFICIAL_CONFIG, num_classes=VARIANTS[variant])


def check_config(config):
    """Raises ValueError unless `config` is a complete, consistent config."""
    if not isinstance(config, dict):
        raise ValueError("config must be a dict")
    keys, want = set(config), set(OFFICIAL_CONFIG)
    if keys != want:
        missing, extra = sorted(want - keys), sorted(keys - want)
        raise ValueError(f"config keys differ: missing {missing}, unexpected {extra}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    for k, v in config.items():
        if k == "longer_side_lengths":
            if not (isinstance(v, list) and all(is_int(x) and x > 0 for x in v)):
                raise ValueError(f"config {k} must be a list of positive ints, got {v!r}")
            # Official preprocessing sorts them; scale ids follow that order.
            if v != sorted(set(v)):
                raise ValueError(f"config {k} must be sorted ascending without repeats, got {v!r}")
        elif not is_int(v):
            raise ValueError(f"config {k} must be an int, got {v!r}")
        elif k != "max_seq_len_from_original_res" and v <= 0:
            raise ValueError(f"config {k} must be positive, got {v}")
    if config["patch_size"] != 32:
        raise ValueError("config patch_size must be 32 (the stem output feeds "
                         f"embedding/kernel [{STEM_OUT}, hidden]), got {config['patch_size']}")
    if config["hidden_size"] % config["num_heads"]:
        raise ValueError(f"config num_heads {config['num_heads']} does not divide "
                         f"hidden_size {config['hidden_size']}")


def expected_params(config):
    """Ordered dict name -> shape (tuple) of every parameter for `config`.

    The order is fixed (musiq-make-test-model draws values in this order).
    """
    check_config(config)
    hid, mlp, heads = config["hidden_size"], config["mlp_dim"], config["num_heads"]
    dh, g, c = hid // heads, config["hse_grid_size"], config["num_classes"]
    w, w4 = STEM_WIDTH, 4 * STEM_WIDTH
    p = {}

    def norm(name, shape):  # GroupNorm / LayerNorm: scale and bias
        p[name + "/scale"] = shape
        p[name + "/bias"] = shape

    # Patch stem (resnet.py). Old flax GroupNorm keeps [1,1,1,C] parameters.
    p["conv_root/kernel"] = (7, 7, 3, w)
    norm("gn_root", (1, 1, 1, w))
    u = "block1/unit1/"
    p[u + "conv_proj/kernel"] = (1, 1, w, w4)
    norm(u + "gn_proj", (1, 1, 1, w4))
    p[u + "conv1/kernel"] = (1, 1, w, w)
    norm(u + "gn1", (1, 1, 1, w))
    p[u + "conv2/kernel"] = (3, 3, w, w)
    norm(u + "gn2", (1, 1, 1, w))
    p[u + "conv3/kernel"] = (1, 1, w, w4)
    norm(u + "gn3", (1, 1, 1, w4))
    p["embedding/kernel"] = (STEM_OUT, hid)
    p["embedding/bias"] = (hid,)

    # Encoder (multiscale_transformer_utils.py).
    t = "Transformer/"
    p[t + "posembed_input/pos_embedding"] = (1, g * g, hid)
    p[t + "scaleembed_input/scale_embedding"] = (1, len(config["longer_side_lengths"]) + 1, hid)
    p[t + "cls"] = (1, 1, hid)
    for i in range(config["num_layers"]):
        b = f"{t}encoderblock_{i}/"
        norm(b + "LayerNorm_0", (hid,))
        a = b + "MultiHeadDotProductAttention_1/"
        for qkv in ("query", "key", "value"):
            p[a + qkv + "/kernel"] = (hid, heads, dh)
            p[a + qkv + "/bias"] = (heads, dh)
        p[a + "out/kernel"] = (heads, dh, hid)
        p[a + "out/bias"] = (hid,)
        norm(b + "LayerNorm_2", (hid,))
        p[b + "MlpBlock_3/Dense_0/kernel"] = (hid, mlp)
        p[b + "MlpBlock_3/Dense_0/bias"] = (mlp,)
        p[b + "MlpBlock_3/Dense_1/kernel"] = (mlp, hid)
        p[b + "MlpBlock_3/Dense_1/bias"] = (hid,)
    norm(t + "encoder_norm", (hid,))
    p["head/kernel"] = (hid, c)
    p["head/bias"] = (c,)
    return p


def _lossless_float32(a):
    """True if every value of `a` survives a cast to float32 unchanged."""
    if a.dtype == np.float32:
        return True
    if a.dtype.kind not in "fiu":  # bool, complex, void (e.g. bfloat16 saved by numpy), object
        return False
    if a.dtype.kind == "f" and a.dtype.itemsize <= 4:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        back = a.astype(np.float32).astype(a.dtype)
    return bool(np.array_equal(back, a, equal_nan=(a.dtype.kind == "f")))


def validate(params, config):
    """Raises ValueError (one line, naming the parameter) unless `params` matches
    expected_params(config) exactly: same names, shapes, finite values, and
    dtypes that cast losslessly to float32. Lists how many other problems exist."""
    want = expected_params(config)
    problems = []
    for name, shape in want.items():
        if name not in params:
            problems.append(f"missing parameter {name!r} (expected shape {shape})")
    for name in params:
        if name not in want:
            shape = getattr(params[name], "shape", "?")
            problems.append(f"unexpected parameter {name!r} with shape {shape}")
    for name, shape in want.items():
        if name not in params:
            continue
        a = np.asarray(params[name])
        if a.shape != shape:
            problems.append(f"parameter {name!r} has shape {a.shape}, expected {shape}")
        elif not _lossless_float32(a):
            problems.append(f"parameter {name!r} has dtype {a.dtype} that cannot be "
                            "cast losslessly to float32")
        elif a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = np.argwhere(~np.isfinite(a))
            first = tuple(int(i) for i in bad[0])
            problems.append(f"parameter {name!r} has {len(bad)} non-finite values "
                            f"(first {a[first]} at index {first})")
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ValueError(problems[0] + more)


def write_h5(path, params, config, variant, source):
    """Validates and writes `params` in the musiq-hdf5 format, atomically: a temp
    file in the target directory is renamed over `path` only once complete."""
    if variant != "random" and variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    validate(params, config)
    if variant in VARIANTS and config["num_classes"] != VARIANTS[variant]:
        raise ValueError(f"variant {variant!r} needs num_classes {VARIANTS[variant]}, "
                         f"config has {config['num_classes']}")
    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-",
                               suffix=".h5")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            # Root attributes (FORMAT.md); str -> variable-length UTF-8 string.
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int32(FORMAT_VERSION)
            f.attrs["variant"] = variant
            f.attrs["num_classes"] = np.int32(config["num_classes"])
            f.attrs["config"] = json.dumps(config)
            f.attrs["source"] = source
            for name in expected_params(config):
                # Contiguous, unfiltered little-endian float32; '/' makes groups.
                f.create_dataset(name, data=np.asarray(params[name], dtype="<f4"))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes the file 0600; give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_h5(path):
    """({dataset path: array}, {root attribute: value}) of a musiq-hdf5 file, unchecked."""
    params = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, v: params.__setitem__(k, v[()])
                     if isinstance(v, h5py.Dataset) else None)
        return params, dict(f.attrs)
