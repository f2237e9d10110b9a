#!/usr/bin/python3
"""Reads the variables of a TensorFlow 2 SavedModel without TensorFlow.

  bundle = Bundle(DIR + "/variables/variables")   # a tensor bundle (checkpoint)
  bundle.variables()  -> [Variable(key, full_name, paths, dtype, shape)]
  bundle.read(key)    -> NumPy array (checksum verified)
  graph_constants(DIR + "/saved_model.pb") -> (count, values) of float constants

## The formats, as TensorFlow writes them

A SavedModel directory holds `saved_model.pb` (the graph, a SavedModel protocol
buffer) and `variables/variables.{index,data-SSSSS-of-NNNNN}`, a *tensor bundle*
(tensorflow/core/util/tensor_bundle/tensor_bundle.{h,cc}, protos in
tensorflow/core/protobuf/tensor_bundle.proto):

* `variables.index` is an immutable sorted string table (tensorflow/core/lib/io/
  table*.cc, LevelDB's SSTable format). The file ends with a 48-byte footer: two
  BlockHandles (varint64 offset, varint64 size; the metaindex block's, then the
  index block's), zero padding to 40 bytes, and the fixed64 magic
  0xdb4775248b80fb57. Every block is followed by a 5-byte trailer: a compression
  byte (0 = none; TensorFlow writes bundles uncompressed) and the masked CRC-32C
  of the block plus that byte. A block is a run of entries, each varint32
  shared-prefix length, varint32 unshared length, varint32 value length, the
  unshared key bytes and the value; then uint32 restart offsets and their
  uint32 count. The index block's values are BlockHandles of the data blocks,
  whose entries are the table's (key, value) pairs in key order.
* Table entry "" is a BundleHeaderProto {1: num_shards, 2: endianness (0 little,
  1 big), 3: version}. Every other entry is a tensor: key = its checkpoint key
  (for TF2 object-based checkpoints, the object path plus
  `/.ATTRIBUTES/VARIABLE_VALUE`, e.g. `params/conv_root/kernel/.ATTRIBUTES/
  VARIABLE_VALUE`), value = BundleEntryProto {1: dtype (DataType enum), 2: shape
  (TensorShapeProto {2: dim {1: size}}), 3: shard_id, 4: offset, 5: size,
  6: crc32c (fixed32, masked CRC-32C of the stored bytes), 7: slices (set only
  for partitioned variables, which we refuse)}.
* `variables.data-SSSSS-of-NNNNN` holds the raw bytes: numeric tensors in the
  header's byte order, row-major. A string tensor is its varint64 lengths, a
  4-byte checksum of those, then the bytes.
* Entry `_CHECKPOINTABLE_OBJECT_GRAPH` is a scalar string: a serialized
  TrackableObjectGraph {1: nodes (TrackableObject {1: children (ObjectReference
  {1: node_id, 2: local_name}), 2: attributes (SerializedTensor {1: name,
  2: full_name, 3: checkpoint_key}), 3: slot_variables})}; node 0 is the root.
  It tells every object path that leads to a variable (a variable reachable two
  ways, e.g. through `variables` and `trainable_variables`, has one node) and
  the variable's own name (`full_name`, what tf.Variable(name=...) was given).

The masked CRC-32C is ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32).
Errors are TFCheckpointError with a one-line message.
"""
import os
import struct
from collections import namedtuple

import numpy as np


class TFCheckpointError(Exception):
    pass


# ---- Protocol buffer wire format ---------------------------------------------------

def _varint(buf, pos):
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise TFCheckpointError("truncated varint in a protocol buffer")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise TFCheckpointError("overlong varint in a protocol buffer")


def fields(buf):
    """Yields (field number, value) of a serialized message: ints for varint and
    fixed fields, memoryviews for length-delimited ones."""
    buf = memoryview(buf)
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise TFCheckpointError("truncated fixed64 in a protocol buffer")
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise TFCheckpointError("truncated field in a protocol buffer")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            if pos + 4 > len(buf):
                raise TFCheckpointError("truncated fixed32 in a protocol buffer")
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        else:
            raise TFCheckpointError(f"unsupported protocol buffer wire type {wire}")
        yield number, value


def _text(v):
    return bytes(v).decode("utf-8", "replace")


# ---- CRC-32C (Castagnoli) ----------------------------------------------------------

_POLY = 0x82F63B78  # reflected
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (_POLY if _c & 1 else 0)
    _TABLE.append(_c)
_TABLE_NP = np.array(_TABLE, dtype=np.uint32)
_CHUNK = 4096


def _crc_bytes(reg, data):
    """The CRC register after feeding `data` (no pre- or post-inversion)."""
    t = _TABLE
    for b in bytes(data):
        reg = t[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


def _zeros_operator(nbytes):
    """Byte tables of the linear map reg -> register after feeding `nbytes` zeros."""
    cols = []
    for bit in range(32):
        reg = 1 << bit
        for _ in range(nbytes):
            reg = _TABLE[reg & 0xFF] ^ (reg >> 8)
        cols.append(reg)
    tables = []
    for byte in range(4):
        tab = []
        for v in range(256):
            acc = 0
            for bit in range(8):
                if v >> bit & 1:
                    acc ^= cols[8 * byte + bit]
            tab.append(acc)
        tables.append(tab)
    return tables


_SHIFT_CHUNK = None


def crc32c(data):
    """Standard CRC-32C of `data` (bytes-like). Large inputs are done 4 KiB chunks at
    a time in parallel with NumPy, then combined using the CRC's linearity:
    reg(A || B) = shift_|B|(reg(A)) xor reg_from_zero(B)."""
    global _SHIFT_CHUNK
    data = memoryview(data).cast("B")
    reg = 0xFFFFFFFF
    n_chunks = len(data) // _CHUNK if len(data) >= 64 * _CHUNK else 0
    if n_chunks:
        if _SHIFT_CHUNK is None:
            _SHIFT_CHUNK = _zeros_operator(_CHUNK)
        s0, s1, s2, s3 = _SHIFT_CHUNK
        block = np.frombuffer(data[: n_chunks * _CHUNK], dtype=np.uint8).reshape(n_chunks, _CHUNK)
        c = np.zeros(n_chunks, dtype=np.uint32)
        for i in range(_CHUNK):
            c = _TABLE_NP[(c ^ block[:, i]) & 0xFF] ^ (c >> 8)
        for part in c.tolist():
            reg = (s0[reg & 0xFF] ^ s1[(reg >> 8) & 0xFF] ^ s2[(reg >> 16) & 0xFF]
                   ^ s3[reg >> 24] ^ part)
    reg = _crc_bytes(reg, data[n_chunks * _CHUNK:])
    return reg ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ---- Sorted string table (variables.index) -----------------------------------------

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48


def _block_handle(buf, pos):
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return (offset, size), pos


def _read_block(data, handle, what):
    offset, size = handle
    if offset + size + 5 > len(data):
        raise TFCheckpointError(f"{what} block reaches past the end of the index file")
    contents = data[offset:offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if masked_crc32c(data[offset:offset + size + 1]) != stored:
        raise TFCheckpointError(f"{what} block at offset {offset} fails its checksum")
    if kind != 0:
        raise TFCheckpointError(f"{what} block is compressed (type {kind}); only "
                                "uncompressed tables, as TensorFlow writes bundles, are read")
    return contents


def _block_entries(block):
    if len(block) < 4:
        raise TFCheckpointError("index block too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise TFCheckpointError("index block has a bad restart count")
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > end:
            raise TFCheckpointError("index block entry is malformed")
        key = key[:shared] + bytes(block[pos:pos + unshared])
        pos += unshared
        yield key, bytes(block[pos:pos + vlen])
        pos += vlen


def read_table(path):
    """[(key bytes, value bytes)] of a TensorFlow table file, in key order."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _FOOTER:
        raise TFCheckpointError("too short to be a TensorFlow index file")
    (magic,) = struct.unpack_from("<Q", data, len(data) - 8)
    if magic != _TABLE_MAGIC:
        raise TFCheckpointError("not a TensorFlow index file (bad magic number)")
    footer = memoryview(data)[len(data) - _FOOTER:]
    _meta, pos = _block_handle(footer, 0)
    index, _ = _block_handle(footer, pos)
    out = []
    for _sep, handle in _block_entries(_read_block(data, index, "index")):
        h, _ = _block_handle(handle, 0)
        out.extend(_block_entries(_read_block(data, h, "data")))
    return out


# ---- Tensor bundle -----------------------------------------------------------------

# DataType enum (tensorflow/core/framework/types.proto) -> NumPy dtype.
_DTYPES = {1: "f4", 2: "f8", 3: "i4", 4: "u1", 5: "i2", 6: "i1", 9: "i8", 10: "?",
           14: "bfloat16", 17: "u2", 19: "f2", 22: "u4", 23: "u8"}
_DT_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
             7: "string", 9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16",
             19: "float16", 22: "uint32", 23: "uint64"}
DT_STRING = 7
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

Entry = namedtuple("Entry", "dtype shape shard offset size crc sliced")
Variable = namedtuple("Variable", "key full_name paths dtype shape")


def dtype_name(dtype):
    return _DT_NAMES.get(dtype, f"DataType {dtype}")


def _parse_shape(buf):
    dims = []
    for num, val in fields(buf):
        if num == 2:
            size = 0
            for n2, v2 in fields(val):
                if n2 == 1:
                    size = v2 - (1 << 64) if v2 >= 1 << 63 else v2
            dims.append(size)
        elif num == 3 and val:
            raise TFCheckpointError("tensor of unknown rank")
    return tuple(dims)


def _parse_entry(value):
    dtype, shape, shard, offset, size, crc, sliced = 0, (), 0, 0, 0, None, False
    for num, val in fields(value):
        if num == 1:
            dtype = val
        elif num == 2:
            shape = _parse_shape(val)
        elif num == 3:
            shard = val
        elif num == 4:
            offset = val
        elif num == 5:
            size = val
        elif num == 6:
            crc = val
        elif num == 7:
            sliced = True
    return Entry(dtype, shape, shard, offset, size, crc, sliced)


class Bundle:
    """A tensor bundle: `prefix`.index and `prefix`.data-*."""

    def __init__(self, prefix):
        self.prefix = prefix
        table = read_table(prefix + ".index")
        if not table or table[0][0] != b"":
            raise TFCheckpointError("the index has no bundle header")
        self.num_shards, endianness = 1, 0
        for num, val in fields(table[0][1]):
            if num == 1:
                self.num_shards = val
            elif num == 2:
                endianness = val
        if endianness not in (0, 1):
            raise TFCheckpointError(f"unknown byte order {endianness} in the bundle header")
        self.order = "<" if endianness == 0 else ">"
        self.entries = {}
        for key, value in table[1:]:
            self.entries[key.decode("utf-8", "replace")] = _parse_entry(value)
        self._shards = {}

    def _shard(self, i):
        if i not in self._shards:
            if not 0 <= i < self.num_shards:
                raise TFCheckpointError(f"shard {i} out of range (bundle has {self.num_shards})")
            path = f"{self.prefix}.data-{i:05d}-of-{self.num_shards:05d}"
            with open(path, "rb") as f:
                self._shards[i] = f.read()
        return self._shards[i]

    def raw(self, key, verify=True):
        e = self.entries[key]
        if e.sliced:
            raise TFCheckpointError(f"{key!r} is a partitioned variable, which is not supported")
        data = self._shard(e.shard)
        if e.offset + e.size > len(data):
            raise TFCheckpointError(f"{key!r} reaches past the end of its data file")
        raw = memoryview(data)[e.offset:e.offset + e.size]
        if verify and e.crc is not None and masked_crc32c(raw) != e.crc:
            raise TFCheckpointError(f"{key!r} fails its checksum (the data file is damaged)")
        return raw

    def read(self, key):
        """The tensor `key` as a NumPy array (float16/32/64 and integers as stored,
        bfloat16 widened exactly to float32)."""
        e = self.entries[key]
        if e.dtype not in _DTYPES:
            raise TFCheckpointError(f"{key!r} has dtype {dtype_name(e.dtype)}, which is not read")
        raw = self.raw(key)
        kind = _DTYPES[e.dtype]
        bf16 = kind == "bfloat16"
        dt = np.dtype(self.order + ("u2" if bf16 else kind))
        count = int(np.prod(e.shape, dtype=np.int64))
        if any(d < 0 for d in e.shape) or len(raw) != count * dt.itemsize:
            raise TFCheckpointError(f"{key!r} holds {len(raw)} bytes, not {count} x {dt.itemsize}")
        a = np.frombuffer(raw, dtype=dt).astype(dt.newbyteorder("="))
        if bf16:
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a.reshape(e.shape)

    def read_string(self, key):
        """A scalar string tensor's bytes."""
        e = self.entries[key]
        if e.dtype != DT_STRING or e.shape != ():
            raise TFCheckpointError(f"{key!r} is not a scalar string")
        raw = self.raw(key, verify=False)
        n, pos = _varint(raw, 0)
        pos += 4  # checksum of the lengths
        if pos + n != len(raw) or n > 0xFFFFFFFF:
            raise TFCheckpointError(f"{key!r} is a malformed string tensor")
        # The entry's checksum covers the length as a uint32 (not its varint bytes),
        # the length checksum, and the string.
        covered = struct.pack("<I", n) + bytes(raw[pos - 4:])
        if e.crc is not None and masked_crc32c(covered) != e.crc:
            raise TFCheckpointError(f"{key!r} fails its checksum (the data file is damaged)")
        return bytes(raw[pos:])

    def variables(self):
        """Every saved variable value, with the object paths and name that lead to it
        (from the object graph when there is one)."""
        info = {}
        if OBJECT_GRAPH_KEY in self.entries:
            info = _object_graph_variables(self.read_string(OBJECT_GRAPH_KEY))
        out = []
        for key, e in self.entries.items():
            if key == OBJECT_GRAPH_KEY:
                continue
            full_name, paths = info.get(key, ("", ()))
            if not paths and key.endswith(VARIABLE_SUFFIX):
                paths = (tuple(key[: -len(VARIABLE_SUFFIX)].split("/")),)
            out.append(Variable(key, full_name, paths, e.dtype, e.shape))
        return out


def _object_graph_variables(blob):
    """checkpoint key -> (full_name, every object path (tuple of names) to it)."""
    nodes = []
    for num, val in fields(blob):
        if num != 1:
            continue
        children, attrs = [], []
        for n2, v2 in fields(val):
            if n2 == 1:
                ref = dict(fields(v2))
                children.append((ref.get(1, 0), _text(ref.get(2, b""))))
            elif n2 == 2:
                a = dict(fields(v2))
                attrs.append((_text(a.get(1, b"")), _text(a.get(2, b"")),
                              _text(a.get(3, b""))))
        nodes.append((children, attrs))
    # Every simple path from the root (node 0); objects form a graph, maybe cyclic.
    paths = {i: [] for i in range(len(nodes))}
    stack = [(0, (), frozenset([0]))]
    budget = 200000
    while stack and budget:
        budget -= 1
        node, path, seen = stack.pop()
        if path:
            paths[node].append(path)
        for child, name in nodes[node][0] if node < len(nodes) else ():
            if child not in seen and child < len(nodes):
                stack.append((child, path + (name,), seen | {child}))
    out = {}
    for i, (_children, attrs) in enumerate(nodes):
        for name, full_name, key in attrs:
            if name == "VARIABLE_VALUE":
                out[key] = (full_name, tuple(sorted(paths[i])))
    return out


# ---- saved_model.pb: a diagnostic look at graph constants --------------------------

def graph_constants(path, min_values=2):
    """(count, total values) of the float Const tensors with at least `min_values`
    values in a SavedModel's graphs and functions: where a SavedModel without
    variables keeps its weights."""
    with open(path, "rb") as f:
        blob = f.read()
    count = total = 0

    def node(nd):
        nonlocal count, total
        f = {}
        attrs = []
        for num, val in fields(nd):
            if num == 2:
                f["op"] = _text(val)
            elif num == 5:
                attrs.append(val)
        if f.get("op") != "Const":
            return
        for entry in attrs:
            e = dict(fields(entry))
            if _text(e.get(1, b"")) != "value" or 2 not in e:
                continue
            for num, val in fields(e[2]):
                if num != 8:
                    continue
                t = {}
                for n3, v3 in fields(val):
                    if n3 in (1, 2):
                        t[n3] = v3
                if t.get(1) in (1, 2, 14, 19):
                    n = int(np.prod(_parse_shape(t.get(2, b"")), dtype=np.int64))
                    if n >= min_values:
                        count += 1
                        total += n

    for num, mg in fields(blob):  # SavedModel.meta_graphs
        if num != 2:
            continue
        for n2, gd in fields(mg):  # MetaGraphDef.graph_def
            if n2 != 2:
                continue
            for n3, v3 in fields(gd):
                if n3 == 1:  # GraphDef.node
                    node(v3)
                elif n3 == 2:  # GraphDef.library
                    for n4, fn in fields(v3):
                        if n4 == 1:  # FunctionDefLibrary.function
                            for n5, nd in fields(fn):
                                if n5 == 3:  # FunctionDef.node_def
                                    node(nd)
    return count, total


def bundle_prefix(saved_model_dir):
    return os.path.join(saved_model_dir, "variables", "variables")
