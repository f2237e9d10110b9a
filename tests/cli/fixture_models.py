"""The small random models the CLI tests score with, made once per ctest run by the
cli.test_models fixture (tests/make_test_models.cmake) into $MUSIQ_TEST_MODELS."""
import os

_folder = os.environ.get("MUSIQ_TEST_MODELS")
if not _folder:
    raise SystemExit("MUSIQ_TEST_MODELS is not set: run the test through ctest, whose "
                     "cli.test_models fixture makes the models")
SMALL_MODEL = os.path.join(_folder, "small.h5")  # one class, as koniq and spaq
SMALL_MODEL_10_CLASSES = os.path.join(_folder, "small_10_classes.h5")  # as ava
