// One exception type for every failure the engine reports to its user.
#pragma once
#include <stdexcept>
#include <string>

namespace musiq {

// The message is a complete one-line sentence, naming the file or object at fault.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace musiq
