"""How ctest registers the GPU tests (no GPU needed): every case of musiq_gpu_tests exactly
once, all labelled gpu, and the cases that measure device memory with cudaMemGetInfo (the
whole device, every process) marked RUN_SERIAL, so that ctest -j cannot move their
measure; and every other test named .../cuda_* (ops_test.cc's CUDA rows) labelled gpu.

  gpu_registration_test.py BUILD_DIR GPU_TEST_EXE SERIAL_FILTER
"""
import json
import subprocess
import sys

# The case that needs it most: it bounds what the GEMMs allocate to 8 MiB.
MUST_BE_SERIAL = "LinearGpuWorkspace.NoAllocationWithAGivenWorkspace"


def gtest_cases(exe, gtest_filter=None):
    args = [exe, "--gtest_list_tests"]
    if gtest_filter:
        args.append("--gtest_filter=" + gtest_filter)
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    cases, suite = [], None
    for line in out.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            suite = line.split("#")[0].strip()
        else:
            cases.append(suite + line.split("#")[0].strip())
    return cases


def main():
    build_dir, exe, serial_filter = sys.argv[1:4]
    show = subprocess.run(["ctest", "--test-dir", build_dir, "--show-only=json-v1"],
                          check=True, capture_output=True, text=True).stdout
    registered = {}  # gtest case -> list of its ctest properties
    cuda_rows = {}  # other tests named .../cuda_* -> their labels
    for test in json.loads(show)["tests"]:
        command = test.get("command") or []
        if "/cuda_" in test["name"] and command and command[0] != exe:
            cuda_rows[test["name"]] = next(
                (p["value"] for p in test.get("properties", []) if p["name"] == "LABELS"), [])
        if not command or command[0] != exe:
            continue
        case = next(a.split("=", 1)[1] for a in command if a.startswith("--gtest_filter="))
        props = {p["name"]: p["value"] for p in test.get("properties", [])}
        registered.setdefault(case, []).append(props)

    errors = []
    cases = gtest_cases(exe)
    serial = set(gtest_cases(exe, serial_filter))
    if MUST_BE_SERIAL not in serial:
        errors.append(f"{MUST_BE_SERIAL} is not among the serial tests ({serial_filter})")
    for case in cases:
        regs = registered.get(case, [])
        if len(regs) != 1:
            errors.append(f"{case}: registered {len(regs)} times, not once")
            continue
        props = regs[0]
        if "gpu" not in props.get("LABELS", []):
            errors.append(f"{case}: no label gpu")
        if bool(props.get("RUN_SERIAL", False)) != (case in serial):
            errors.append(f"{case}: RUN_SERIAL is {props.get('RUN_SERIAL', False)}")
    for case in set(registered) - set(cases):
        errors.append(f"{case}: registered but not in the executable")
    if not cuda_rows:
        errors.append("no test named .../cuda_* besides musiq_gpu_tests' (ops_test.cc's rows)")
    for name, labels in sorted(cuda_rows.items()):
        if "gpu" not in labels:
            errors.append(f"{name}: no label gpu")
    for e in errors[:20]:
        print("FAIL:", e)
    if errors:
        return 1
    print(f"{len(cases)} cases registered once, labelled gpu; RUN_SERIAL: {sorted(serial)}; "
          f"{len(cuda_rows)} other CUDA rows labelled gpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
