"""The NumPy --target-size resize (tf_resize_reference.py) against TensorFlow's own output,
stored in tests/fixtures/tf_target_size/ by tools/tf-target-size-fixtures: bit for bit,
so that the CLI test may use it in TensorFlow's place."""
import importlib.machinery
import importlib.util
import os
import unittest

import h5py
import numpy as np

from tf_resize_reference import resize_bilinear_antialias, to_uint8

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "tf_target_size", "target_size.h5")


def fixture_tool():
    """tools/tf-target-size-fixtures as a module (for its pattern images; no TensorFlow)."""
    path = os.path.join(ROOT, "tools", "tf-target-size-fixtures")
    loader = importlib.machinery.SourceFileLoader("tf_target_size_fixtures", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


class TfResizeReference(unittest.TestCase):
    def test_matches_tensorflow_bit_for_bit(self):
        tool = fixture_tool()
        cases = 0
        with h5py.File(FIXTURE, "r") as f:
            for name, group in f.items():
                if "case" not in group:
                    continue
                in_h, in_w, out_h, out_w, salt = (int(v) for v in group["case"][()])
                resized = resize_bilinear_antialias(tool.pattern_image(in_h, in_w, salt),
                                                    out_h, out_w)
                np.testing.assert_array_equal(resized, group["resized"][()], err_msg=name)
                np.testing.assert_array_equal(to_uint8(resized), group["resized_uint8"][()],
                                              err_msg=name)
                cases += 1
        self.assertEqual(cases, 36)


if __name__ == "__main__":
    unittest.main()
