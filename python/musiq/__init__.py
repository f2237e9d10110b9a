"""MUSIQ image quality scores: Google's multi-scale image quality transformer, exactly.

    import musiq
    scorer = musiq.Scorer("koniq")            # weights as the CLI finds them
    scorer.score("photo.jpg")                 # -> float
    scorer.score_many(paths)                  # batches, decode threads, GIL released
    for key, result in scorer.score_tar("shard-000000.tar"):  # WebDataset shards
        print(key, result.score)

Images are decoded as the CLI decodes them (JPEG exactly as TensorFlow does), so a file
scores the same here, through `bytes`, and with `musiq score`. Failures raise
`musiq.Error` with the CLI's one-line message. See also `musiq.create_metric` (pyiqa's
interface), `musiq.ray` (Ray Data) and `musiq.serve` (the HTTP service, `musiq serve`).
"""
from __future__ import annotations

import math
import operator
import os
import tarfile
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._native import Error
from .metric import create_metric

__all__ = ["Scorer", "Result", "Error", "create_metric", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_TOKENS"]
__version__ = "0.1.0"

Error.__module__ = "musiq"
Error.__doc__ = "A musiq failure; str(error) is the one-line message, as the CLI prints it."

#: Images with more pixels than this are refused before decoding (the CLI's --max-pixels).
DEFAULT_MAX_PIXELS = 128 * 1024 * 1024
DEFAULT_MAX_TOKENS = 50_000  # the CLI's --max-tokens default: a 50 MP photo still scores

Image = Union[str, "os.PathLike[str]", bytes, np.ndarray]

_MAX_SIDE = 2**31 - 1  # the most pixels a side may have


@dataclass(frozen=True)
class Result:
    """One image's outcome in `Scorer.score_many_results`.

    `score` is NaN and `error` the one-line message when the image failed; otherwise
    `error` is "". `width` and `height` are the image as decoded, `scored_width` and
    `scored_height` the size the model scored it at (the Scorer's `target_size`, else the
    same). `tokens` is the sequence length the model ran on (CLS included) and `ms` the
    time for decode, preprocessing and model. `warning` is the decoder's warning about a
    scored image (corrupt data it filled in, e.g. a truncated JPEG), else "".
    """

    score: float
    width: int
    height: int
    tokens: int
    ms: float
    error: str
    scored_width: int = 0
    scored_height: int = 0
    warning: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def _normalise(item: Image):
    """(what _native takes, the name messages use) for one image."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item), "<encoded image>"
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8:
            raise TypeError(f"image array must be uint8, not {item.dtype} "
                            "(floats in [0, 1]: see musiq.create_metric)")
        if item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] not in (1, 3, 4)):
            raise ValueError(f"image array must be HxW, HxWx3 or HxWx4, not {item.shape}")
        if item.ndim == 3 and item.shape[2] == 1:
            item = item[:, :, 0]  # numpy gives a length-1 axis any stride
        if max(item.shape[:2]) > _MAX_SIDE:
            return item, "<pixels>"  # refused per image as too large, never copied first
        channels = 1 if item.ndim == 2 else item.shape[2]
        inner_contiguous = item.strides[1] == channels and (item.ndim == 2 or item.strides[2] == 1)
        if not inner_contiguous or item.strides[0] <= 0:
            item = np.ascontiguousarray(item)
        return item, "<pixels>"
    if isinstance(item, (str, os.PathLike)):
        # str with surrogate escapes (os.listdir of names that are not UTF-8) and bytes
        # paths (os.PathLike, e.g. os.DirEntry) both reach the file system as its bytes.
        path = os.fsdecode(os.fspath(item))
        return path, path
    raise TypeError("an image is a path (str or os.PathLike), bytes (an encoded file) or a "
                    f"uint8 numpy array, not {type(item).__name__}")


_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".tga", ".gif", ".ppm",
                     ".pgm", ".pnm", ".psd")


def _is_image_name(name: str) -> bool:
    """An image by its extension, as `musiq score` takes files from directories and tars."""
    return os.path.splitext(name)[1].lower() in _IMAGE_EXTENSIONS


def _webdataset_key(name: str) -> str:
    """The member's name up to the first dot of its file name ("a/0001.jpg" -> "a/0001")."""
    head, _, base = name.rpartition("/")
    return (head + "/" if head else "") + base.split(".", 1)[0]


def _whole(name: str, value) -> int:
    """An int argument: a float (1.5) is refused rather than cut down."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a whole number, not {value!r}") from None


def _limit(name: str, value) -> int:
    """max_pixels / max_tokens: 0 means the default; negative or past 64 bits is refused."""
    value = _whole(name, value)
    if not 0 <= value < 2**63:
        raise ValueError(f"{name} must be positive, or 0 for the default ({value} given)")
    return value


def _one_image_not_a_collection(images) -> None:
    """score_many of one path or one array would iterate its characters or rows."""
    if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike)) or (
            isinstance(images, np.ndarray) and images.ndim < 4):
        raise TypeError("score_many takes a collection of images (a list of paths, bytes or "
                        "arrays, or an N x H x W x C array); for one image use score()")


def _with_path_hint(error: str, item) -> str:
    """Bytes that failed to decode but name an existing file were meant as a path."""
    if error and isinstance(item, bytes) and len(item) < 4096 and b"\0" not in item \
            and os.path.isfile(item):
        return error + " (bytes are an encoded image; pass a path as str or os.PathLike)"
    return error


class Scorer:
    """A MUSIQ model loaded on a device, ready to score images.

    Args:
        model: a model name as the CLI resolves it: "spaq", "koniq", "paq2piq" or "ava",
            looked for in $MUSIQ_WEIGHTS_DIR, then ~/.cache/musiq/ (tools/musiq-fetch
            installs them). None: "koniq".
        weights: a weights file (.h5), used instead of the lookup by name.
        device: "auto" (the GPU when one is usable and passes its self-check, else the
            CPU; a GPU that fails part way is given up for the CPU), "cpu" or "cuda".
        threads: worker threads that decode and preprocess ahead of the model in
            `score_many` (the CLI's --threads).
        max_pixels: refuse larger images before decoding them (0: the default).
        max_tokens: refuse images whose model input would be longer (the cost budget: time
            and memory grow with tokens, attention with their square; the CLI's
            --max-tokens; 0: the default).
        target_size: (width, height): resize every image to it before scoring, as the
            CLI's --target-size (TensorFlow's bilinear resize with antialiasing, rounded to
            8 bits). MUSIQ is made to score native resolution: see the README. None: each
            image at its own size.
        strict: refuse (as a failed image) any image the decoder warns about, instead of
            scoring it with `Result.warning` set (the CLI's --strict).
        precision: "fp32" (exact, the default), "bf16" (bfloat16 products with float32
            sums, on the CPU or a GPU; docs/precision.md states its error) or "tf32" (GPU
            only), as the CLI's --precision.

    Raises:
        Error: weights missing or invalid, device unusable, a precision the device cannot
            compute (the CLI's message).

    One Scorer may be used from several threads at once: images are decoded in parallel
    and the model runs one packed batch at a time (it already uses every core, or the GPU).
    """

    def __init__(self, model: Optional[str] = None, weights: Optional[Union[str, "os.PathLike[str]"]] = None,
                 device: str = "auto", *, threads: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_tokens: int = DEFAULT_MAX_TOKENS,
                 target_size: Optional[Tuple[int, int]] = None, strict: bool = False,
                 precision: str = "fp32"):
        if device not in _native.DEVICE_NAMES:
            raise ValueError(f"device must be one of {', '.join(_native.DEVICE_NAMES)}, "
                             f"not {device!r}")
        if precision not in _native.PRECISION_NAMES:
            raise ValueError(f"precision must be one of {', '.join(_native.PRECISION_NAMES)}, "
                             f"not {precision!r}")
        target_width, target_height = 0, 0
        if target_size is not None:
            try:
                target_width, target_height = (operator.index(s) for s in target_size)
            except (TypeError, ValueError):
                target_width = 0
            if target_width < 1 or target_height < 1:
                raise ValueError(f"target_size must be (width, height), both whole numbers >= 1, "
                                 f"not {target_size!r}")
        weights_path = "" if weights is None else os.fsdecode(os.fspath(weights))
        self._native = _native.Scorer(model or "", weights_path, device, _whole("threads", threads),
                                      _limit("max_pixels", max_pixels),
                                      _limit("max_tokens", max_tokens), target_width, target_height,
                                      bool(strict), precision)
        self._threads = int(threads)

    @property
    def model(self) -> str:
        """The model's name as given, or the weights file's variant (as the CLI labels it)."""
        return self._native.model

    @property
    def device(self) -> str:
        """"cpu" or "cuda": where the model runs now."""
        return self._native.device

    @property
    def device_note(self) -> str:
        """Why device "auto" runs on the CPU although a GPU is present, else ""."""
        return self._native.device_note

    @property
    def precision(self) -> str:
        """"fp32", "bf16" or "tf32": the arithmetic that scores."""
        return self._native.precision

    @property
    def gpu_available(self) -> bool:
        """Whether a usable GPU was found, whichever device scores."""
        return self._native.gpu_available

    @property
    def weights_path(self) -> str:
        return self._native.weights_path

    @property
    def random_weights(self) -> bool:
        """True for random test weights: their scores mean nothing."""
        return self._native.random_weights

    def score(self, image: Image) -> float:
        """The score of one image.

        Args:
            image: a path (str or os.PathLike); bytes of an encoded file (JPEG, PNG, ...;
                decoded exactly as the same file on disk); or a uint8 numpy array of shape
                HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA, alpha dropped), any strides.

        Raises:
            Error: the image could not be read, decoded or scored.
        """
        result = self.score_many_results([image], threads=1)[0]
        if result.error:
            raise Error(result.error)
        return result.score

    def score_many(self, images: Iterable[Image], *, threads: Optional[int] = None) -> List[float]:
        """Scores of many images, in order. Raises `Error` for the first that failed
        (after all were tried); `score_many_results` instead reports each failure.

        The GIL is released; `threads` workers (default: the Scorer's) decode and
        preprocess ahead while the model runs. Ctrl-C (KeyboardInterrupt) stops it within
        one packed batch.
        """
        results = self.score_many_results(images, threads=threads)
        for r in results:
            if r.error:
                raise Error(r.error)
        return [r.score for r in results]

    def score_many_results(self, images: Iterable[Image], *, names: Optional[Sequence[str]] = None,
                           threads: Optional[int] = None) -> List[Result]:
        """One `Result` per image, in order; a failed image never raises (an item
        that is no image at all, e.g. None, raises TypeError; Ctrl-C raises
        KeyboardInterrupt within one packed batch).

        Args:
            images: as for `score`. Bytes are always an encoded image, never a path.
            names: what messages call each image (default: the path, "<encoded image>"
                or "<pixels>").
            threads: decode workers (default: the Scorer's).
        """
        _one_image_not_a_collection(images)
        items, default_names = [], []
        for image in images:
            item, name = _normalise(image)
            items.append(item)
            default_names.append(name)
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != len(items):
                raise ValueError(f"{len(names)} names for {len(items)} images")
        outcomes = self._native.score_many(items, names if names is not None else default_names,
                                           self._threads if threads is None else _whole("threads", threads))
        return [Result(o.score if not o.error else math.nan, o.width, o.height, o.tokens, o.ms,
                       _with_path_hint(o.error, item), o.scored_width, o.scored_height,
                       o.warning)
                for o, item in zip(outcomes, items)]

    def score_tar(self, path: Union[str, "os.PathLike[str]"], *, batch: int = 8,
                  threads: Optional[int] = None) -> Iterator[Tuple[str, Result]]:
        """(key, Result) for each image member of a WebDataset tar shard, in shard order.

        The shard is read as a stream (nothing is extracted); members are images by their
        extension, as for `musiq score shard.tar`, and each scores exactly as the same file
        extracted. `key` is WebDataset's: the member's name up to the first dot of its file
        name ("00001234.jpg" -> "00001234"). A member that fails has its error in its
        Result; a shard that cannot be read raises `Error` once the members before the
        damage are yielded. Images are scored `batch` at a time.
        """
        shard = os.fsdecode(os.fspath(path))
        pending: List[Tuple[str, bytes]] = []

        def flush():
            results = self.score_many_results([data for _, data in pending],
                                              names=[f"{shard}/{name}" for name, _ in pending],
                                              threads=threads)
            out = [(_webdataset_key(name), r) for (name, _), r in zip(pending, results)]
            pending.clear()
            return out

        try:
            with tarfile.open(shard, "r|*") as tar:
                for member in tar:
                    if not member.isfile() or not _is_image_name(member.name):
                        continue
                    pending.append((member.name, tar.extractfile(member).read()))
                    if len(pending) >= batch:
                        yield from flush()
        except (OSError, tarfile.TarError, EOFError) as e:
            yield from flush()
            raise Error(f"{shard}: unreadable tar: {e}") from None
        yield from flush()

    def __repr__(self) -> str:
        return (f"musiq.Scorer(model={self.model!r}, device={self.device!r}, "
                f"precision={self.precision!r})")
