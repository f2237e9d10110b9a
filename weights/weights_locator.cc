#include "weights/weights_locator.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include <pwd.h>
#include <unistd.h>

#include "base/alternatives.h"
#include "base/error.h"

namespace musiq {

std::string weights_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/musiq";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/musiq";
  // No $HOME (a service, `env -i`): the user's home from the password database, never the
  // working directory.
  std::vector<char> buffer(16384);
  passwd entry{}, *found = nullptr;
  if (::getpwuid_r(::getuid(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found ||
      !found->pw_dir || !*found->pw_dir)
    throw Error("no home directory: HOME is unset and user " + std::to_string(::getuid()) +
                " has none in the password database; set HOME, XDG_CACHE_HOME or "
                "MUSIQ_WEIGHTS_DIR, or pass --weights");
  return std::string(found->pw_dir) + "/.cache/musiq";
}

std::string locate_weights(const std::string& model, const std::string& explicit_path) {
  if (explicit_path.find('\0') != std::string::npos)
    throw Error("weights path with a NUL byte (it would name another file)");
  if (!explicit_path.empty()) return explicit_path;
  if (std::find(kModelNames.begin(), kModelNames.end(), model) == kModelNames.end())
    throw Error("unknown model '" + model + "' (use " + alternatives(kModelNames) + ")");
  std::vector<std::string> tried;
  if (const char* dir = std::getenv("MUSIQ_WEIGHTS_DIR"); dir && *dir) {
    tried.push_back(std::string(dir) + "/" + model + ".h5");
    if (std::filesystem::exists(tried.back())) return tried.back();
  }
  const std::string cached = weights_cache_dir() + "/" + model + ".h5";
  tried.push_back(cached);
  if (std::filesystem::exists(cached)) return cached;
  std::string where;
  for (const std::string& t : tried) where += (where.empty() ? "" : ", ") + t;
  throw Error("no weights for model '" + model + "' (looked at " + where +
              "). Download and install the official checkpoint with\n"
              "  tools/musiq-fetch " + model + "\n"
              "or by hand:\n"
              "  curl -fLO https://storage.googleapis.com/gresearch/musiq/" + model +
              "_ckpt.npz\n"
              "  tools/musiq-export npz " + model + "_ckpt.npz " + cached + " --variant " +
              model + "\nor pass --weights FILE.h5 (tools/musiq-export also converts pyiqa "
              ".pth files and TF Hub SavedModels)");
}

}  // namespace musiq
