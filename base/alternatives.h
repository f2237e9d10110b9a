// Choices as a message or a help text names them.
#pragma once
#include <string>
#include <vector>

namespace musiq {

// "a, b or c" (or "a" for one).
inline std::string alternatives(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size(); ++i)
    text += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return text;
}

}  // namespace musiq
