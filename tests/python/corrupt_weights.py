#!/usr/bin/python3
"""Makes a broken copy of a musiq-hdf5 weights file, for the C++ loader tests.

  corrupt_weights.py IN.h5 OUT.h5 (--remove NAME | --reshape NAME | --nan NAME |
                                   --rename NAME NEW | --config KEY JSON | --truncate)

Each mode changes exactly one thing, so a test can expect one specific error:
  --remove NAME      delete dataset NAME (and groups left empty by it)
  --reshape NAME     same values and element count, wrong shape: N-d -> 1-d
                     (size,), 1-d (n,) -> (1, n); a loader must compare shapes,
                     not sizes
  --nan NAME         set the middle element of NAME to NaN
  --rename NAME NEW  move dataset NAME to NEW (a missing plus an unknown name)
  --config KEY JSON  set KEY of the config attribute to the JSON value
  --truncate         copy only the first half of the bytes
"""
import argparse
import json
import os
import shutil
import sys

import h5py
import numpy as np


def prune_empty(f, name):
    """Deletes the groups above `name` that no longer hold anything."""
    parent = os.path.dirname(name)
    while parent and len(f[parent]) == 0:
        del f[parent]
        parent = os.path.dirname(parent)


def corrupt(f, args):
    if args.config:
        config = json.loads(f.attrs["config"])
        config[args.config[0]] = json.loads(args.config[1])
        f.attrs["config"] = json.dumps(config)
        return
    name = args.remove or args.reshape or args.nan or (args.rename or [None])[0]
    if not isinstance(f.get(name), h5py.Dataset):
        raise KeyError(f"no dataset {name!r}")
    if args.remove:
        del f[name]
        prune_empty(f, name)
    elif args.reshape:
        a = f[name][()]
        del f[name]
        f.create_dataset(name, data=a.reshape(-1) if a.ndim > 1 else a.reshape(1, -1))
    elif args.nan:
        d = f[name]
        idx = np.unravel_index(d.size // 2, d.shape)
        d[idx] = np.nan
    else:
        new = args.rename[1]
        if new in f:
            raise KeyError(f"{new!r} already exists")
        f.require_group(os.path.dirname(new) or "/")
        f.move(name, new)
        prune_empty(f, name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", metavar="IN.h5")
    ap.add_argument("output", metavar="OUT.h5")
    m = ap.add_mutually_exclusive_group(required=True)
    m.add_argument("--remove", metavar="NAME")
    m.add_argument("--reshape", metavar="NAME")
    m.add_argument("--nan", metavar="NAME")
    m.add_argument("--rename", nargs=2, metavar=("NAME", "NEW"))
    m.add_argument("--config", nargs=2, metavar=("KEY", "JSON"))
    m.add_argument("--truncate", action="store_true")
    args = ap.parse_args(argv)
    if os.path.exists(args.output) and os.path.samefile(args.input, args.output):
        sys.exit(f"corrupt_weights.py: {args.output}: refusing to overwrite the input")
    try:
        if args.truncate:
            with open(args.input, "rb") as f:
                data = f.read()
            with open(args.output, "wb") as f:
                f.write(data[: len(data) // 2])
            return
        shutil.copyfile(args.input, args.output)
        with h5py.File(args.output, "r+") as f:
            corrupt(f, args)
    except (OSError, KeyError) as e:
        if not args.truncate and os.path.exists(args.output):
            os.remove(args.output)  # never leave a half-made copy behind
        msg = e.args[0] if isinstance(e, KeyError) else (e.strerror or e)
        sys.exit(f"corrupt_weights.py: {args.input}: {msg}")


if __name__ == "__main__":
    main()
