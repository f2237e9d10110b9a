#!/usr/bin/python3
"""Reads PyTorch checkpoints (torch.save files) without PyTorch, and without
running arbitrary code: tensors come back as NumPy arrays.

  load(path) -> the saved object (dicts, lists, tuples, numbers, strings; every
                tensor as a NumPy array in its own dtype and shape)

torch.save writes one of two layouts, both handled:

* zip (PyTorch >= 1.6, the default): a zip archive whose entries share one top
  folder `<name>/`: `<name>/data.pkl` is a pickle of the object in which every
  tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
  requires_grad, backward_hooks[, metadata])` and every storage a persistent id
  ('storage', <torch.FloatStorage etc.>, key, location, numel); the storage's
  bytes are the entry `<name>/data/<key>`, raw, in the byte order named by
  `<name>/byteorder` ("little" when absent).
* legacy (older PyTorch, or _use_new_zipfile_serialization=False): five pickles
  one after the other: a magic number, the protocol version (1001), system info
  (byte order), the object (persistent ids ('storage', type, key, location,
  numel, view_metadata)), the sorted list of storage keys; then each storage in
  that order as an int64 element count and its raw bytes.

Safety: the pickle is read by an Unpickler whose find_class() allows only the
globals a checkpoint of tensors needs (ALLOWED_GLOBALS); anything else, e.g. a
class of the training code or os.system, raises CheckpointError naming it.
Tensor strides and offsets are checked against their storage before any view is
made. Errors are CheckpointError with a one-line message.
"""
import io
import pickle
import pickletools
import struct
import zipfile

import numpy as np


class CheckpointError(Exception):
    pass


# Storage classes as torch pickles them (torch.<Name>Storage), with their dtypes.
_STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
    "BFloat16Storage": "bfloat16", "LongStorage": "i8", "IntStorage": "i4",
    "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _Frozen:
    """Base of what find_class hands out: no attribute can be set on it, so a pickle's
    BUILD opcode cannot change this module's objects for later loads."""
    __slots__ = ()

    def __setattr__(self, name, value):
        raise CheckpointError(f"the checkpoint tries to set {name!r} on {self!r}")


class _StorageType(_Frozen):
    """Stands for torch.<Name>Storage in the pickle."""
    __slots__ = ("name", "dtype")

    def __init__(self, name):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", _STORAGE_DTYPES[name])

    def __repr__(self):
        return f"torch.{self.name}"


class _Callable(_Frozen):
    """Stands for an allowed function or class: calls it, nothing else."""
    __slots__ = ("_fn", "_name")

    def __init__(self, fn, name):
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args):
        return self._fn(*args)

    def __repr__(self):
        return self._name


class _Storage:
    """A storage's elements as a 1-D NumPy array (bfloat16 as uint16 bits)."""

    def __init__(self, array, bfloat16):
        self.array = array
        self.bfloat16 = bfloat16


def _as_numpy(storage, offset, size, stride):
    """The tensor (offset, size, stride) of `storage` as a contiguous array."""
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"tensor storage is {type(storage).__name__}, not a storage")
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or not all(
            isinstance(v, int) and v >= 0 for v in (offset, *size, *stride)):
        raise CheckpointError(f"bad tensor layout: offset {offset}, size {size}, stride {stride}")
    base = storage.array
    count = int(np.prod(size, dtype=np.int64))
    if count:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= base.size:
            raise CheckpointError(f"tensor (offset {offset}, size {size}, stride {stride}) "
                                  f"reaches past its storage of {base.size} elements")
        view = np.lib.stride_tricks.as_strided(
            base[offset:], shape=size, strides=[s * base.itemsize for s in stride],
            writeable=False)
        out = view.copy(order="C")  # (ascontiguousarray would make 0-d 1-d)
    else:
        out = np.zeros(size, dtype=base.dtype)
    if storage.bfloat16:  # bfloat16 is the top half of a float32
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _as_numpy(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _as_numpy(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


class _OrderedDict(dict):
    """collections.OrderedDict as loaded: a plain dict (insertion-ordered) that
    also takes the attributes, e.g. `_metadata`, that state_dict() pickles."""


# (module, name) -> what the pickle gets instead. Nothing else can be loaded.
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}
ALLOWED_GLOBALS = {k: _Callable(fn, ".".join(k)) for k, fn in ALLOWED_GLOBALS.items()}
ALLOWED_GLOBALS.update({("torch", n): _StorageType(n) for n in _STORAGE_DTYPES})


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, load_storage, scan_only):
        super().__init__(io.BytesIO(data))
        self._load_storage = load_storage
        self._scan_only = scan_only

    def find_class(self, module, name):
        try:
            found = ALLOWED_GLOBALS[(module, name)]
            if self._scan_only and module == "torch._utils":
                return _Callable(lambda *args: None, "scan")  # storages are all we want
            return found
        except KeyError:
            raise CheckpointError(f"the checkpoint refers to {module}.{name}, which is not "
                                  "allowed (only tensors, dicts, lists and numbers are read)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(f"unknown persistent id {pid!r:.80}")
        if len(pid) < 5 or not isinstance(pid[1], _StorageType):
            raise CheckpointError(f"malformed storage reference {pid!r:.80}")
        return self._load_storage(pid)


def _unpickle(data, load_storage, scan_only=False):
    try:
        return _Unpickler(data, load_storage, scan_only).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError,
            AttributeError, IndexError, struct.error) as e:
        raise CheckpointError(f"damaged pickle ({type(e).__name__}: {e})")


def _np_dtype(storage_type, byteorder):
    if storage_type.dtype == "bfloat16":
        return np.dtype(byteorder + "u2"), True
    return np.dtype(byteorder + storage_type.dtype).newbyteorder("="), False


def _load_zip(path):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"not a readable zip archive ({e})")
    with zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise CheckpointError("not a PyTorch checkpoint: expected one <name>/data.pkl "
                                  f"in the zip, found {len(pkls)}")
        prefix = pkls[0][: -len("data.pkl")]
        order = "<"
        if prefix + "byteorder" in names:
            text = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if text not in ("little", "big"):
                raise CheckpointError(f"unknown byteorder {text!r}")
            order = "<" if text == "little" else ">"
        cache = {}

        def load_storage(pid):
            _, stype, key, _location, numel = pid[:5]
            if key not in cache:
                entry = f"{prefix}data/{key}"
                try:
                    raw = zf.read(entry)
                except KeyError:
                    raise CheckpointError(f"storage {entry!r} is missing from the archive")
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    raise CheckpointError(f"cannot read storage {entry!r} ({e})")
                dtype, bf16 = _np_dtype(stype, order)
                if len(raw) != numel * dtype.itemsize:
                    raise CheckpointError(f"storage {entry!r} has {len(raw)} bytes, expected "
                                          f"{numel} x {dtype.itemsize}")
                cache[key] = _Storage(np.frombuffer(raw, dtype=dtype).astype(
                    dtype.newbyteorder("="), copy=False), bf16)
            return cache[key]

        try:
            pkl = zf.read(pkls[0])
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise CheckpointError(f"cannot read {pkls[0]!r} ({e})")
        return _unpickle(pkl, load_storage)


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _HeaderUnpickler(pickle.Unpickler):
    """For the legacy format's header pickles: plain data only."""

    def find_class(self, module, name):
        raise CheckpointError(f"the checkpoint header refers to {module}.{name}")


def _pickle_end(data, start):
    """Offset just past the pickle that starts at `start` (its STOP opcode)."""
    stream = io.BytesIO(data)
    stream.seek(start)
    try:
        for op, _arg, _pos in pickletools.genops(stream):
            if op.name == "STOP":
                return stream.tell()
    except (ValueError, struct.error, EOFError) as e:
        raise CheckpointError(f"damaged legacy checkpoint pickle ({e})")
    raise CheckpointError("damaged legacy checkpoint pickle (no STOP)")


def _load_legacy(path):
    with open(path, "rb") as f:
        data = f.read()
    buf = io.BytesIO(data)

    def header_load():
        try:
            return _HeaderUnpickler(buf).load()
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001 - any damage is reported the same way
            raise CheckpointError(f"damaged legacy checkpoint header ({e})")

    if header_load() != _LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (neither a zip archive nor the "
                              "legacy format's magic number)")
    if header_load() != _LEGACY_PROTOCOL:
        raise CheckpointError("unsupported legacy checkpoint protocol version")
    sys_info = header_load()
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    order = "<" if little else ">"

    # The object pickle, then the storage key list, then the storages. The element
    # size of each storage is only known from the object pickle: scan it first.
    obj_start = buf.tell()
    obj_end = _pickle_end(data, obj_start)
    types = {}

    def note_storage(pid):
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointError("legacy storage views are not supported")
        types[pid[2]] = pid[1]
        return None

    _unpickle(data[obj_start:obj_end], note_storage, scan_only=True)
    buf.seek(obj_end)
    keys = header_load()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CheckpointError("damaged legacy checkpoint (bad storage key list)")
    pos = buf.tell()
    storages = {}
    for key in keys:
        if key not in types:
            raise CheckpointError(f"legacy storage {key!r} is not referenced")
        if pos + 8 > len(data):
            raise CheckpointError(f"legacy checkpoint truncated at storage {key!r}")
        (numel,) = struct.unpack_from(order + "q", data, pos)
        pos += 8
        dtype, bf16 = _np_dtype(types[key], order)
        nbytes = numel * dtype.itemsize
        if numel < 0 or pos + nbytes > len(data):
            raise CheckpointError(f"legacy checkpoint truncated in storage {key!r}")
        storages[key] = _Storage(np.frombuffer(data, dtype=dtype, count=numel, offset=pos)
                                 .astype(dtype.newbyteorder("="), copy=False), bf16)
        pos += nbytes
    missing = sorted(set(types) - set(storages))
    if missing:
        raise CheckpointError(f"legacy storage {missing[0]!r} is missing")
    return _unpickle(data[obj_start:obj_end], lambda pid: storages[pid[2]])


def load(path):
    """The object saved in `path`, tensors as NumPy arrays. Raises CheckpointError
    (or OSError for an unreadable file)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        return _load_zip(path)
    if head[:1] == b"\x80":
        return _load_legacy(path)
    raise CheckpointError("not a PyTorch checkpoint (neither a zip archive nor a pickle)")
