// libFuzzer target: musiq::load_weights on arbitrary bytes (docs/hardening.md).
// load_weights takes a path, so each input is written to one file per process under
// $TMPDIR (fuzz/run-fuzzers points it at a fresh folder in /dev/shm), else /dev/shm.
// A musiq::Error is the expected answer; anything else is a finding.
// load_weights hands the file to libhdf5 in a child process (weights/isolated_process.h):
// what this target checks is that no file, however damaged, crashes, hangs or leaks in
// the process that loads it. libFuzzer sees coverage of that process only (the stream
// reader and the checks), not of libhdf5 in the child, so it mutates mostly blind there.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/error.h"
#include "weights/weights.h"

namespace {

// The input file of this process; removed when the process exits normally.
class InputFile {
 public:
  InputFile() {
    const char* dir = std::getenv("TMPDIR");
    if (!dir || !*dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    path_ = std::string(dir) + "/musiq-weights-fuzz-" + std::to_string(getpid()) + ".h5";
  }
  ~InputFile() { std::remove(path_.c_str()); }

  // A new file (so a new inode) for every input: libhdf5 recognises a file it still has
  // open by device and inode, and a damaged input can leave it holding the last one.
  const std::string& write(const uint8_t* data, size_t size) {
    std::remove(path_.c_str());
    FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
      std::fprintf(stderr, "weights_loader_fuzzer: cannot write %s\n", path_.c_str());
      std::abort();  // a broken set-up, not a finding: stop at once
    }
    return path_;
  }

 private:
  std::string path_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static InputFile file;
  const std::string& path = file.write(data, size);
  try {
    // Well under libFuzzer's -timeout (25 s in fuzz/run-fuzzers): an endless loop in
    // libhdf5 is then the expected error, not a timeout finding.
    musiq::IsolationLimits limits;
    limits.cpu_seconds = 5;
    const musiq::WeightsFile weights = musiq::load_weights(path, limits);
    // A file that loads has passed every check: nothing more to test here.
    (void)weights;
  } catch (const musiq::Error&) {
    // The expected failure for a malformed weights file.
  }
  return 0;
}
