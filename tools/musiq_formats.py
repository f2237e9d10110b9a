#!/usr/bin/python3
"""MUSIQ weights in other layouts, mapped back to the official names and shapes
(musiq_params.expected_params): pyiqa's PyTorch checkpoints and TensorFlow
SavedModels. Used by tools/musiq-export; weights/FORMAT.md says what each
mapping assumes. Errors are FormatError with a one-line message naming the
parameter.
"""
import os
import re

import numpy as np

import musiq_params as mp
import tf_checkpoint as tfc
import torch_checkpoint


class FormatError(Exception):
    pass


# ---- pyiqa (chaofengc/IQA-PyTorch, pyiqa/archs/musiq_arch.py) ----------------------
#
# pyiqa's MUSIQ module names, and how its converter (scripts/convert_musiq_to_pth.py)
# laid out each official parameter:
#   conv kernels: HWIO -> OIHW (nn.Conv2d); GroupNorm scale/bias [1,1,1,C] -> [C];
#   Dense kernels [in, out] -> nn.Linear weight [out, in];
#   attention query/key/value kernels [hidden, heads, head_dim] -> Linear weight
#   [heads*head_dim, hidden], biases [heads, head_dim] -> [heads*head_dim];
#   attention out kernel [heads, head_dim, hidden] -> Linear weight [hidden,
#   heads*head_dim]; scale_embedding [1, S, hidden] -> scale_emb [S, hidden];
#   pos_embedding and cls keep their shapes; LayerNorm scale -> weight.
# The head is `head` (nn.Linear) for 1 class and `head.0` (nn.Sequential(Linear,
# Softmax)) for more.

def _conv(k):  # official HWIO <- pyiqa OIHW
    return k.transpose(2, 3, 1, 0)


def _pyiqa_table(config):
    """official name -> (pyiqa name, pyiqa shape, function pyiqa array -> official)."""
    hid, heads = config["hidden_size"], config["num_heads"]
    dh = hid // heads
    table = {}
    for name, shape in mp.expected_params(config).items():
        parts = name.split("/")
        leaf = parts[-1]
        if len(shape) == 4 and leaf == "kernel":  # conv
            prefix = "block1." if parts[0] == "block1" else ""
            table[name] = (prefix + parts[-2] + ".weight",
                           (shape[3], shape[2], shape[0], shape[1]), _conv)
        elif len(shape) == 4:  # GroupNorm [1,1,1,C]
            prefix = "block1." if parts[0] == "block1" else ""
            leaf_t = "weight" if leaf == "scale" else "bias"
            table[name] = (f"{prefix}{parts[-2]}.{leaf_t}", (shape[3],),
                           lambda a, s=shape: a.reshape(s))
        elif name == "embedding/kernel":
            table[name] = ("embedding.weight", shape[::-1], np.transpose)
        elif name == "embedding/bias":
            table[name] = ("embedding.bias", shape, None)
        elif name == "Transformer/posembed_input/pos_embedding":
            table[name] = ("transformer_encoder.posembed_input.position_emb", shape, None)
        elif name == "Transformer/scaleembed_input/scale_embedding":
            table[name] = ("transformer_encoder.scaleembed_input.scale_emb", shape[1:],
                           lambda a, s=shape: a.reshape(s))
        elif name == "Transformer/cls":
            table[name] = ("transformer_encoder.cls", shape, None)
        elif parts[1] == "encoder_norm":
            table[name] = ("transformer_encoder.encoder_norm."
                           + ("weight" if leaf == "scale" else "bias"), shape, None)
        elif parts[0] == "Transformer":
            block = f"transformer_encoder.transformer.{parts[1]}."
            module = parts[2]
            if module in ("LayerNorm_0", "LayerNorm_2"):
                norm = "norm1" if module == "LayerNorm_0" else "norm2"
                table[name] = (block + norm + "." + ("weight" if leaf == "scale" else "bias"),
                               shape, None)
            elif module == "MlpBlock_3":
                fc = "fc1" if parts[3] == "Dense_0" else "fc2"
                if leaf == "kernel":
                    table[name] = (f"{block}mlp.{fc}.weight", shape[::-1], np.transpose)
                else:
                    table[name] = (f"{block}mlp.{fc}.bias", shape, None)
            else:  # MultiHeadDotProductAttention_1/{query,key,value,out}
                proj = parts[3]
                key = f"{block}attention.{proj}."
                if leaf == "kernel" and proj == "out":  # [heads, dh, hid]
                    table[name] = (key + "weight", (hid, heads * dh),
                                   lambda a, s=shape: a.T.reshape(s))
                elif leaf == "kernel":  # [hid, heads, dh]
                    table[name] = (key + "weight", (heads * dh, hid),
                                   lambda a, s=shape: a.T.reshape(s))
                elif proj == "out":
                    table[name] = (key + "bias", shape, None)
                else:  # [heads, dh]
                    table[name] = (key + "bias", (heads * dh,),
                                   lambda a, s=shape: a.reshape(s))
        elif name == "head/kernel":
            table[name] = ("head.weight", shape[::-1], np.transpose)
        elif name == "head/bias":
            table[name] = ("head.bias", shape, None)
        else:
            raise AssertionError(f"no pyiqa name for {name}")
    return table


STATE_DICT_KEYS = ("params", "state_dict", "model")


def pyiqa_state_dict(path, key=None):
    """The flat name -> array dict in a .pth file, unwrapped from `key` (or from
    the one of STATE_DICT_KEYS that it is nested under), `module.` stripped."""
    try:
        obj = torch_checkpoint.load(path)
    except torch_checkpoint.CheckpointError as e:
        raise FormatError(str(e))
    if not isinstance(obj, dict):
        raise FormatError(f"the checkpoint holds a {type(obj).__name__}, not a state dict")
    if key is not None:
        if key not in obj:
            raise FormatError(f"no entry {key!r} in the checkpoint (it has "
                              f"{', '.join(map(repr, list(obj)[:8]))})")
        obj = obj[key]
    elif not any(isinstance(v, np.ndarray) for v in obj.values()):
        nested = [k for k in STATE_DICT_KEYS if isinstance(obj.get(k), dict)]
        if len(nested) > 1:
            raise FormatError(f"the checkpoint has several state dicts ({', '.join(nested)}); "
                              "choose one with --key")
        if not nested:
            raise FormatError("no tensors at the top of the checkpoint and no "
                              f"{'/'.join(STATE_DICT_KEYS)} entry (its keys: "
                              f"{', '.join(map(repr, list(obj)[:8]))}); choose one with --key")
        obj = obj[nested[0]]
    if not isinstance(obj, dict):
        raise FormatError(f"the state dict is a {type(obj).__name__}, not a dict")
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise FormatError(f"state dict key {k!r} is not a string")
        name = k[len("module."):] if k.startswith("module.") else k
        if name in out:
            raise FormatError(f"parameter {name!r} appears twice (with and without 'module.')")
        out[name] = v
    return out


def from_pyiqa(state, config):
    """Official name -> array from a pyiqa state dict. Every pyiqa parameter must be
    used and have its exact pyiqa shape (the head's class count is left to
    validation, which says which variant it fits)."""
    table = _pyiqa_table(config)
    # The head: `head` for one class, `head.0` (Sequential) for more; accept either.
    head = "head.0." if any(k.startswith("head.0.") for k in state) else "head."
    for leaf in ("weight", "bias"):
        if f"head.0.{leaf}" in state:
            if f"head.{leaf}" in state:
                raise FormatError(f"both 'head.{leaf}' and 'head.0.{leaf}' are present")
            state = dict(state)
            state[f"head.{leaf}"] = state.pop(f"head.0.{leaf}")
    if "imagenet_head.weight" in state:
        raise FormatError("the checkpoint has 'imagenet_head.weight': this is the ImageNet "
                          "pre-training checkpoint (musiq_imagenet_pretrain), not a quality model")
    used = set()
    params, problems = {}, []
    for name, (pname, pshape, fn) in table.items():
        if pname not in state:
            shown = head + pname[len("head."):] if pname.startswith("head.") else pname
            problems.append(f"missing pyiqa parameter {shown!r} (official {name!r}, "
                            f"expected shape {pshape})")
            continue
        used.add(pname)
        a = state[pname]
        if not isinstance(a, np.ndarray):
            problems.append(f"pyiqa parameter {pname!r} is a {type(a).__name__}, not a tensor")
            continue
        want = pshape
        if name.startswith("head/") and a.ndim == len(pshape):
            want = a.shape  # class count checked by validation with a clear message
        # scale_emb was [1, S, hidden] in an early pyiqa; accept that too.
        if name.endswith("scale_embedding") and a.shape == (1,) + tuple(pshape):
            a = a[0]
        if a.shape != tuple(want):
            problems.append(f"pyiqa parameter {pname!r} has shape {a.shape}, expected "
                            f"{tuple(pshape)} (official {name!r})")
            continue
        params[name] = fn(a) if fn is not None else a
    unknown = [f"unexpected pyiqa parameter {k!r} with shape "
               f"{getattr(state[k], 'shape', type(state[k]).__name__)}"
               for k in state if k not in used]
    if problems or unknown:
        # A renamed parameter is one unexpected plus one missing name: show both.
        shown = ([unknown[0]] if unknown else []) + (problems[:1] if problems else [])
        rest = len(problems) + len(unknown) - len(shown)
        raise FormatError("; ".join(shown) + (f" (and {rest} more problems)" if rest else ""))
    return params


# ---- TensorFlow SavedModel ---------------------------------------------------------

_FLOAT_DTYPES = (1, 2, 14, 19)  # float32, float64, bfloat16, float16
_SLOT = "/.OPTIMIZER_SLOT/"


def _components(name):
    name = re.sub(r":\d+$", "", name)
    return tuple(p for p in re.split(r"[/.]", name) if p)


def _describe(v):
    return f"{v.key[:-len(tfc.VARIABLE_SUFFIX)] if v.key.endswith(tfc.VARIABLE_SUFFIX) else v.key} {list(v.shape)}"


def _found_list(variables, limit=6):
    shown = "; ".join(_describe(v) for v in variables[:limit])
    more = f"; ... {len(variables) - limit} more" if len(variables) > limit else ""
    return f"found {len(variables)} float variables: {shown}{more}"


def _match_by_name(variables, expected):
    """official name -> variable, matching the official path as a suffix of a
    variable's object path or of its name. Raises FormatError when any variable or
    parameter matches none or several."""
    want = {name: tuple(name.split("/")) for name in expected}
    by_var, by_name = {}, {name: [] for name in expected}
    for v in variables:
        candidates = [tuple(c for p in path for c in _components(p)) for path in v.paths]
        if v.full_name:
            candidates.append(_components(v.full_name))
        hits = set()
        for name, parts in want.items():
            if any(len(c) >= len(parts) and c[-len(parts):] == parts for c in candidates):
                hits.add(name)
        by_var[v.key] = hits
        for name in hits:
            by_name[name].append(v)
    problems = []
    for v in variables:
        hits = by_var[v.key]
        if len(hits) > 1:
            problems.append(f"variable {_describe(v)} matches several parameters "
                            f"({', '.join(sorted(hits)[:3])})")
    for name, vs in by_name.items():
        if len(vs) > 1:
            problems.append(f"parameter {name!r} matches several variables "
                            f"({', '.join(_describe(v) for v in vs[:3])})")
    unmatched = [v for v in variables if not by_var[v.key]]
    missing = [name for name, vs in by_name.items() if not vs]
    problems += [f"variable {_describe(v)} matches no parameter" for v in unmatched]
    problems += [f"no variable for parameter {name!r}" for name in missing]
    return {name: vs[0] for name, vs in by_name.items() if len(vs) == 1}, problems


def _match_by_flatten_order(variables, expected):
    """The jax2tf convention: the parameters as one list of anonymous variables in
    tf.nest.flatten order of the nested parameter dict (keys sorted at every level).
    Returns (official name -> variable) or raises FormatError."""
    containers = {}
    for v in variables:
        for path in v.paths:
            if path and path[-1].isdigit():
                containers.setdefault(path[:-1], {})[int(path[-1])] = v
    order = sorted(expected, key=lambda n: n.split("/"))
    lists = []
    for where, items in sorted(containers.items()):
        if sorted(items) == list(range(len(order))):
            lists.append((where, [items[i].key for i in range(len(order))]))
    if not lists:
        sizes = ", ".join(f"{'/'.join(w)} ({len(i)})" for w, i in sorted(containers.items())[:4])
        raise FormatError(f"no list of exactly {len(order)} variables to take in flatten "
                          f"order (lists found: {sizes or 'none'})")
    if any(keys != lists[0][1] for _w, keys in lists[1:]):
        raise FormatError("several different lists of variables could hold the parameters: "
                          + ", ".join("/".join(w) for w, _k in lists))
    by_key = {v.key: v for v in variables}
    chosen = [by_key[k] for k in lists[0][1]]
    others = [v for v in variables if v.key not in set(lists[0][1])]
    if others:
        raise FormatError(f"variable {_describe(others[0])} is outside the parameter list "
                          f"'{'/'.join(lists[0][0])}'")
    return dict(zip(order, chosen))


def from_savedmodel(directory, config, flatten_order=False):
    """(official name -> array, note) from a TF2 SavedModel directory."""
    if not os.path.isdir(directory):
        raise FormatError("not a directory (a SavedModel is a directory with "
                          "saved_model.pb and variables/)")
    pb = os.path.join(directory, "saved_model.pb")
    index = tfc.bundle_prefix(directory) + ".index"
    if not os.path.exists(pb):
        raise FormatError("no saved_model.pb: not a SavedModel directory")
    expected = mp.expected_params(config)
    variables = []
    if os.path.exists(index):
        try:
            bundle = tfc.Bundle(tfc.bundle_prefix(directory))
            variables = bundle.variables()
        except tfc.TFCheckpointError as e:
            raise FormatError(f"variables: {e}")
    slots = [v for v in variables if _SLOT in v.key]
    floats = [v for v in variables if v.dtype in _FLOAT_DTYPES and _SLOT not in v.key]
    if not floats:
        try:
            count, values = tfc.graph_constants(pb, min_values=2)
        except tfc.TFCheckpointError as e:
            count, values = 0, 0
            what = f"saved_model.pb could not be inspected ({e})"
        else:
            what = (f"saved_model.pb holds {count} float constants with {values:,} values "
                    "in all" + (", so the weights are probably compiled into the graph"
                                if values >= 0.9 * sum(int(np.prod(s)) for s in expected.values())
                                else ""))
        raise FormatError("the SavedModel has no float variables; " + what + ". musiq-export "
                          "reads weights from variables only: use the official checkpoint "
                          "(tools/musiq-fetch) instead")
    if flatten_order:
        try:
            chosen = _match_by_flatten_order(floats, expected)
        except FormatError as e:
            raise FormatError(f"{e}; {_found_list(floats)}")
        how = "tf.nest.flatten order (--assume-flatten-order)"
    else:
        chosen, problems = _match_by_name(floats, expected)
        if problems:
            hint = ""
            try:
                _match_by_flatten_order(floats, expected)
                hint = (" (the variables form one list of the right length: "
                        "--assume-flatten-order would take them in tf.nest.flatten order)")
            except FormatError:
                pass
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise FormatError(f"{problems[0]}{more}; {_found_list(floats)}{hint}")
        how = "names"
    params = {}
    for name, v in chosen.items():
        shape = expected[name]
        if tuple(v.shape) != tuple(shape) and not name.startswith("head/"):
            raise FormatError(f"variable {_describe(v)} for parameter {name!r} has shape "
                              f"{tuple(v.shape)}, expected {shape}")
        try:
            params[name] = bundle.read(v.key)
        except tfc.TFCheckpointError as e:
            raise FormatError(f"variables: {e}")
    note = f"matched {len(params)} variables by {how}"
    if slots:
        note += f"; skipped {len(slots)} optimizer slot variables"
    return params, note
