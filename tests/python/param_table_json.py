#!/usr/bin/python3
"""Prints tools/musiq_params.py's parameter tables and model names as JSON, for
tests/param_table_test.cc to hold against the C++ ones.

  param_table_json.py > tables.json
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import musiq_params as mp  # noqa: E402

configs = [mp.official_config(model) for model in mp.VARIANTS] + [mp.SMALL_TEST_CONFIG]
json.dump({
    "models": list(mp.VARIANTS),
    "tables": [{"config": config,
                "params": [[name, list(shape)] for name, shape in mp.expected_params(config).items()]}
               for config in configs],
}, sys.stdout)
