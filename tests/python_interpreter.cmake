# MUSIQ_PYTHON: the one Python interpreter that runs every Python tool of the tests and the
# benchmarks (test drivers, the NumPy reference, tools/musiq-make-test-model, the exporter).
# They need numpy, h5py and Pillow. Default: Debian's /usr/bin/python3, whose packages
# ./setup.sh installs; elsewhere (a venv, a GPU machine's PyTorch interpreter) pass
# -DMUSIQ_PYTHON=/path/to/python at configure time. Tools are always started as
# `MUSIQ_PYTHON TOOL` (from Python: sys.executable), never through their #! line, which
# names Debian's interpreter (.ci/hidden-dist-packages checks this).
include_guard(GLOBAL)
find_program(MUSIQ_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH
  DOC "Python interpreter (with numpy, h5py, Pillow) for the tests' and benchmarks' tools"
  REQUIRED)
execute_process(COMMAND "${MUSIQ_PYTHON}" -c "import numpy, h5py, PIL"
  RESULT_VARIABLE musiq_python_rc ERROR_VARIABLE musiq_python_err OUTPUT_QUIET)
if(NOT musiq_python_rc EQUAL 0)
  message(WARNING "MUSIQ_PYTHON=${MUSIQ_PYTHON} cannot import numpy, h5py and PIL, so the "
    "Python-driven tests will fail: run ./setup.sh, or pass -DMUSIQ_PYTHON=<a python with "
    "them>.\n${musiq_python_err}")
endif()
