#!/usr/bin/python3
"""Weights from pyiqa .pth files and TensorFlow SavedModels, without torch or TF.

Fixtures: tests/fixtures/weight_formats/ (written by tools/make-weight-format-fixtures
with real torch.save and tf.saved_model.save from ONE seeded official-layout model).
Checks: the two readers on every layout they meet; both exports equal the official
file bit for bit; the engine's scores from the three files are identical (needs the
CLI: $MUSIQ_BIN, else build/musiq); broken copies (renamed, missing parameter, damaged
bytes) fail with one line naming the problem.

  /usr/bin/python3 tests/python/weight_formats_tests.py   (ctest: python.weight_formats)
"""
import io
import json
import os
import pickletools
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zipfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(REPO, "tools")
FIX = os.path.join(REPO, "tests", "fixtures", "weight_formats")
sys.dont_write_bytecode = True
sys.path.insert(0, TOOLS)
import musiq_formats as mf  # noqa: E402
import musiq_params as mp  # noqa: E402
import tf_checkpoint as tfc  # noqa: E402
import torch_checkpoint as tc  # noqa: E402

EXPORT = os.path.join(TOOLS, "musiq-export")
OFFICIAL = os.path.join(FIX, "official_small.h5")
PTH = os.path.join(FIX, "pyiqa_small.pth")
SAVEDMODEL = os.path.join(FIX, "savedmodel_small")
PHOTOS = [os.path.join(REPO, "samples", "chelsea.png"),
          os.path.join(REPO, "samples", "astronaut.png")]


def run(*cmd, env=None):
    return subprocess.run([sys.executable, *cmd] if cmd[0].startswith(TOOLS) else cmd,
                          capture_output=True, text=True, env=env)


def flip_bits(path, offset, mask):
    """Damages one byte of `path` in place: byte at `offset` XOR `mask`."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


def official_config():
    with h5py.File(OFFICIAL, "r") as f:
        return f.attrs["config"]


# ---- Editing a torch.save zip without torch ----------------------------------------

def rewrite_pth(src, dst, rename=None, drop=None):
    """Copies a zip-format .pth, editing its data.pkl at the opcode level: `rename`
    (old, new) renames a state-dict key; `drop` removes one key and its value (not
    the first: later entries refer to memo items the first one defines)."""
    with zipfile.ZipFile(src) as z:
        entries = [(i, z.read(i)) for i in z.infolist()]
    pkl_index = next(n for n, (i, _) in enumerate(entries) if i.filename.endswith("/data.pkl"))
    data = entries[pkl_index][1]
    keys = set(tc.load(src))
    ops = list(pickletools.genops(data))
    ends = [p for _, _, p in ops[1:]] + [len(data)]
    out, skipping = io.BytesIO(), False
    for n, (op, arg, pos) in enumerate(ops):
        raw = data[pos:ends[n]]
        is_key = op.name in ("BINUNICODE", "SHORT_BINUNICODE") and arg in keys
        if drop is not None and is_key:
            skipping = arg == drop
        if skipping and op.name == "SETITEMS":
            skipping = False  # the last key's value ends at the closing SETITEMS
        if skipping:
            continue
        if rename is not None and is_key and arg == rename[0]:
            b = rename[1].encode()
            raw = b"X" + struct.pack("<I", len(b)) + b
        out.write(raw)
    entries[pkl_index] = (entries[pkl_index][0], out.getvalue())
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        for info, blob in entries:
            z.writestr(info, blob)


def tensor_pickle(numel, size, stride, offset=0, wrap=None):
    """A protocol-2 pickle of one tensor as torch writes it, by hand (optionally in a
    dict {wrap[0]: {wrap[1]: tensor}})."""
    def s(text):
        b = text.encode()
        return b"X" + struct.pack("<I", len(b)) + b

    def ints(vals):
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in vals) + b"t"

    t = (b"ctorch._utils\n_rebuild_tensor_v2\n(" + b"(" + s("storage")
         + b"ctorch\nFloatStorage\n" + s("0") + s("cpu") + b"J" + struct.pack("<i", numel)
         + b"tQ" + b"J" + struct.pack("<i", offset) + ints(size) + ints(stride)
         + b"\x89}tR")
    if wrap:
        t = b"}" + s(wrap[0]) + b"}" + s(wrap[1]) + t + b"ss"
    return b"\x80\x02" + t + b"."


def write_zip_pth(path, pkl, storage_bytes):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", storage_bytes)
        z.writestr("archive/version", "3\n")


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="musiq-wf-")
        self.addCleanup(shutil.rmtree, self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def export(self, kind, src, *extra, variant="random", config=None):
        out = self.path(f"{kind}.h5")
        cfg = official_config() if config is None else config
        r = run(EXPORT, kind, src, out, "--variant", variant, "--config", cfg, *extra)
        return r, out

    def export_fails(self, kind, src, *needles, extra=(), config=None):
        r, out = self.export(kind, src, *extra, config=config)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith(f"musiq-export: {src}: "), lines[0])
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertFalse(os.path.exists(out))
        return lines[0]

    def assert_same_as_official(self, path):
        want, _ = mp.read_h5(OFFICIAL)
        got, attrs = mp.read_h5(path)
        self.assertEqual(sorted(got), sorted(want))
        for k in want:
            self.assertEqual(got[k].dtype, np.dtype("<f4"), k)
            self.assertEqual(got[k].shape, want[k].shape, k)
            self.assertEqual(got[k].tobytes(), want[k].tobytes(), k)
        self.assertEqual(json.loads(attrs["config"]), json.loads(official_config()))


class TorchCheckpointTest(Base):
    def test_zip_and_legacy_formats(self):
        want = np.load(os.path.join(FIX, "torch_misc_expected.npz"))
        for name in ("torch_misc.pth", "torch_misc_legacy.pth"):
            got = tc.load(os.path.join(FIX, name))
            for k in want.files:
                a = got["nested"]["list"][0] if k == "nested.list.0" else got[k]
                self.assertEqual(a.dtype, want[k].dtype, f"{name} {k}")
                self.assertEqual(a.shape, want[k].shape, f"{name} {k}")
                self.assertEqual(a.tobytes(), want[k].tobytes(), f"{name} {k}")
            self.assertEqual(got["nested"]["list"][1:], [3, "text"])
            self.assertEqual(got["nested"]["tuple"], (1.5, None, True))
            self.assertEqual(list(got)[:3], ["f32", "f16", "bf16"])  # order kept

    def test_state_dict_metadata_kept_as_attribute(self):
        sd = tc.load(PTH)
        self.assertIn("conv_root.weight", sd)
        self.assertEqual(sd["conv_root.weight"].shape, (64, 3, 7, 7))

    def test_foreign_global_refused_without_running_it(self):
        path = self.path("evil.pth")
        marker = self.path("ran")
        pkl = (b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(f"touch {marker}"))
               + f"touch {marker}".encode() + b"\x85R.")
        write_zip_pth(path, pkl, b"")
        with self.assertRaises(tc.CheckpointError) as cm:
            tc.load(path)
        self.assertIn("os.system", str(cm.exception))
        self.assertFalse(os.path.exists(marker))

    def test_pickle_cannot_modify_allowed_globals(self):
        # BUILD with slot state on torch.FloatStorage would setattr(dtype) on it.
        b = b"X" + struct.pack("<I", 5) + b"dtype" + b"X" + struct.pack("<I", 2) + b"f8"
        path = self.path("build.pth")
        write_zip_pth(path, b"\x80\x02ctorch\nFloatStorage\nN}" + b + b"s\x86b.", b"")
        with self.assertRaises(tc.CheckpointError) as cm:
            tc.load(path)
        self.assertIn("tries to set 'dtype' on torch.FloatStorage", str(cm.exception))
        self.assertEqual(tc.ALLOWED_GLOBALS[("torch", "FloatStorage")].dtype, "f4")

    def test_tensor_past_its_storage(self):
        path = self.path("oob.pth")
        write_zip_pth(path, tensor_pickle(4, [3, 2], [2, 1]), np.zeros(4, "<f4").tobytes())
        with self.assertRaises(tc.CheckpointError) as cm:
            tc.load(path)
        self.assertIn("reaches past its storage of 4 elements", str(cm.exception))

    def test_storage_shorter_than_declared(self):
        path = self.path("short.pth")
        write_zip_pth(path, tensor_pickle(4, [4], [1]), np.zeros(3, "<f4").tobytes())
        with self.assertRaises(tc.CheckpointError) as cm:
            tc.load(path)
        self.assertIn("has 12 bytes, expected 4 x 4", str(cm.exception))

    def test_strided_view_of_hand_made_pickle(self):
        path = self.path("view.pth")
        base = np.arange(10, dtype="<f4")
        write_zip_pth(path, tensor_pickle(10, [2, 3], [1, 3], offset=1), base.tobytes())
        got = tc.load(path)
        want = np.array([[base[1 + i + 3 * j] for j in range(3)] for i in range(2)])
        self.assertEqual(got.tobytes(), want.tobytes())
        self.assertTrue(got.flags.c_contiguous)

    def test_not_a_checkpoint(self):
        path = self.path("text.pth")
        with open(path, "w") as f:
            f.write("hello\n")
        with self.assertRaises(tc.CheckpointError):
            tc.load(path)
        with open(PTH, "rb") as f:  # a truncated download
            half = f.read()[: 1 << 20]
        with open(path, "wb") as f:
            f.write(half)
        with self.assertRaises(tc.CheckpointError):
            tc.load(path)


class PyiqaExportTest(Base):
    def test_export_equals_official_bit_for_bit(self):
        r, out = self.export("pyiqa", PTH)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("56 parameters", r.stdout)
        self.assert_same_as_official(out)
        _, attrs = mp.read_h5(out)
        self.assertIn("pyiqa_small.pth (sha256 ", attrs["source"])

    def test_renamed_parameter_named(self):
        bad = self.path("renamed.pth")
        old = "transformer_encoder.transformer.encoderblock_1.mlp.fc2.weight"
        new = "transformer_encoder.transformer.encoderblock_1.mlp.fc3.weight"
        rewrite_pth(PTH, bad, rename=(old, new))
        self.assertIn(new, tc.load(bad))
        self.export_fails("pyiqa", bad, f"unexpected pyiqa parameter {new!r}",
                          f"missing pyiqa parameter {old!r}",
                          "'Transformer/encoderblock_1/MlpBlock_3/Dense_1/kernel'")

    def test_missing_parameter_named(self):
        bad = self.path("missing.pth")
        gone = "transformer_encoder.transformer.encoderblock_0.attention.value.bias"
        rewrite_pth(PTH, bad, drop=gone)
        sd = tc.load(bad)
        self.assertNotIn(gone, sd)
        self.assertEqual(len(sd), 55)
        line = self.export_fails("pyiqa", bad, f"missing pyiqa parameter {gone!r}",
                                 "'Transformer/encoderblock_0/MultiHeadDotProductAttention_1/"
                                 "value/bias'")
        self.assertNotIn("more problems", line)

    def test_last_parameter_missing(self):
        bad = self.path("missing_last.pth")
        rewrite_pth(PTH, bad, drop="head.0.bias")
        self.export_fails("pyiqa", bad, "missing pyiqa parameter 'head.0.bias'")

    def test_imagenet_checkpoint_refused(self):
        bad = self.path("imagenet.pth")
        rewrite_pth(PTH, bad, rename=("head.0.weight", "imagenet_head.weight"))
        self.export_fails("pyiqa", bad, "ImageNet pre-training checkpoint")

    def test_wrong_variant(self):
        # The small model against the official config: the first misshapen tensor.
        r, out = self.export("pyiqa", PTH, variant="koniq",
                             config=json.dumps(mp.official_config("koniq")))
        self.assertEqual(r.returncode, 1)
        self.assertIn("pyiqa parameter 'embedding.weight' has shape (64, 16384), expected "
                      "(384, 16384)", r.stderr)

    def test_head_width_checked_against_variant(self):
        cfg = json.loads(official_config())
        cfg["num_classes"] = 1
        self.export_fails("pyiqa", PTH, "'head/kernel' has shape (64, 10), expected (64, 1)",
                          config=json.dumps(cfg))

    def test_nested_state_dict_and_module_prefix(self):
        path = self.path("nested.pth")
        write_zip_pth(path, tensor_pickle(4, [4], [1], wrap=("params", "module.x.weight")),
                      np.arange(4, dtype="<f4").tobytes())
        sd = mf.pyiqa_state_dict(path)
        self.assertEqual(list(sd), ["x.weight"])
        np.testing.assert_array_equal(sd["x.weight"], np.arange(4, dtype=np.float32))
        with self.assertRaises(mf.FormatError):
            mf.pyiqa_state_dict(path, key="state_dict")

    def test_one_class_head_layout(self):
        # pyiqa names the 1-class head `head` (nn.Linear), not `head.0`.
        cfg = dict(json.loads(official_config()), num_classes=1)
        sd = {k.replace("head.0.", "head."): v for k, v in tc.load(PTH).items()}
        sd["head.weight"], sd["head.bias"] = sd["head.weight"][:1], sd["head.bias"][:1]
        params = mf.from_pyiqa(sd, cfg)
        want, _ = mp.read_h5(OFFICIAL)
        np.testing.assert_array_equal(params["head/kernel"], want["head/kernel"][:, :1])
        mp.validate(params, cfg)


class SavedModelExportTest(Base):
    def test_export_equals_official_bit_for_bit(self):
        r, out = self.export("savedmodel", SAVEDMODEL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("matched 56 variables by names", r.stdout)
        self.assert_same_as_official(out)

    def test_flatten_order_needs_the_flag(self):
        flat = os.path.join(FIX, "savedmodel_flat_tiny")
        tiny = os.path.join(FIX, "tiny_config.json")
        self.export_fails("savedmodel", flat, "matches no parameter",
                          "found 40 float variables: _variables/0 [1, 1, 4]",
                          "--assume-flatten-order would take them", config=tiny)
        r, out = self.export("savedmodel", flat, "--assume-flatten-order", config=tiny)
        self.assertEqual(r.returncode, 0, r.stderr)
        got, _ = mp.read_h5(out)
        with open(tiny) as f:
            config = json.load(f)
        names = sorted(mp.expected_params(config))
        for name, shape in mp.expected_params(config).items():
            # tools/make-weight-format-fixtures: tiny_value()
            k = names.index(name)
            want = ((k + 1) / 1000.0 + np.arange(int(np.prod(shape)), dtype=np.float64)
                    * 1e-7).astype(np.float32).reshape(shape)
            self.assertEqual(got[name].tobytes(), want.tobytes(), name)

    def test_weights_as_graph_constants_explained(self):
        self.export_fails("savedmodel", os.path.join(FIX, "savedmodel_constants"),
                          "has no float variables", "1 float constants with 64 values",
                          "tools/musiq-fetch")

    def test_damaged_data_file(self):
        copy = self.path("sm")
        shutil.copytree(SAVEDMODEL, copy)
        flip_bits(os.path.join(copy, "variables", "variables.data-00000-of-00001"), 1000, 1)
        self.export_fails("savedmodel", copy, "fails its checksum")

    def test_damaged_index(self):
        copy = self.path("sm")
        shutil.copytree(SAVEDMODEL, copy)
        flip_bits(os.path.join(copy, "variables", "variables.index"), 20, 4)
        self.export_fails("savedmodel", copy, "fails its checksum")

    def test_not_a_savedmodel(self):
        self.export_fails("savedmodel", self.dir, "no saved_model.pb")
        self.export_fails("savedmodel", OFFICIAL, "not a directory")

    def test_name_matching_rules(self):
        config = json.loads(official_config())
        expected = mp.expected_params(config)
        V = tfc.Variable

        def var(path, shape, full_name=""):
            key = path + tfc.VARIABLE_SUFFIX
            return V(key, full_name, (tuple(path.split("/")),), 1, shape)

        base = [var("params/" + n, s) for n, s in expected.items()]
        chosen, problems = mf._match_by_name(base, expected)
        self.assertEqual(problems, [])
        self.assertEqual(len(chosen), len(expected))
        # Names may come from tf.Variable(name=...) instead of the object path.
        anon = [V(f"v/{i}{tfc.VARIABLE_SUFFIX}", n + ":0", (("v", str(i)),), 1, s)
                for i, (n, s) in enumerate(expected.items())]
        chosen, problems = mf._match_by_name(anon, expected)
        self.assertEqual(problems, [])
        # Two candidates for one parameter, and a stray variable: both reported.
        dup = base + [var("ema/head/kernel", expected["head/kernel"]),
                      var("params/pre_logits/kernel", (64, 64))]
        _, problems = mf._match_by_name(dup, expected)
        self.assertTrue(any("parameter 'head/kernel' matches several variables" in p
                            for p in problems), problems)
        self.assertTrue(any("params/pre_logits/kernel [64, 64] matches no parameter" in p
                            for p in problems), problems)

    def test_crc32c(self):
        self.assertEqual(tfc.crc32c(b"123456789"), 0xE3069283)
        data = np.random.default_rng(5).integers(0, 256, (1 << 18) + 77, np.uint8).tobytes()
        self.assertEqual(tfc.crc32c(data), tfc._crc_bytes(0xFFFFFFFF, data) ^ 0xFFFFFFFF)


class ScoreParityTest(Base):
    """The engine scores the three files identically, bit for bit."""

    def test_scores_identical(self):
        musiq = os.environ.get("MUSIQ_BIN") or os.path.join(REPO, "build", "musiq")
        if not os.path.exists(musiq):
            self.skipTest(f"no musiq CLI at {musiq} (set MUSIQ_BIN)")
        files = {"official": OFFICIAL}
        for kind, src in (("pyiqa", PTH), ("savedmodel", SAVEDMODEL)):
            r, out = self.export(kind, src)
            self.assertEqual(r.returncode, 0, r.stderr)
            files[kind] = out
        scores = {}
        for kind, weights in files.items():
            r = subprocess.run([musiq, "score", "--device", "cpu", "--weights", weights,
                                *PHOTOS], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.splitlines()
            paths = [json.loads(line)["path"] for line in lines]
            self.assertEqual(sorted(paths), sorted(PHOTOS))
            # The score as printed (shortest round-trip text), compared exactly.
            scores[kind] = {p: line.split('"score":', 1)[1].split(",", 1)[0]
                            for p, line in zip(paths, lines)}
        self.assertEqual(scores["pyiqa"], scores["official"])
        self.assertEqual(scores["savedmodel"], scores["official"])


if __name__ == "__main__":
    unittest.main()
