#include "base/precision.h"

#include <algorithm>

#include "base/alternatives.h"
#include "base/error.h"

namespace musiq {

Precision parse_precision(const std::string& name) {
  const auto found = std::ranges::find(kPrecisionNames, name);
  if (found == kPrecisionNames.end())
    throw Error("unknown precision '" + name + "' (use " + alternatives(kPrecisionNames) + ")");
  return Precision(found - kPrecisionNames.begin());
}

}  // namespace musiq
