// JSON text for our records, lossless for file names that are not UTF-8 (paths are bytes
// on Linux): a byte that is not part of valid UTF-8 is written as the lone surrogate
// \udcXX, the escape Python's "surrogateescape" error handler uses, so
// os.fsencode(json.loads(line)["path"]) gives back the exact bytes.
#pragma once
#include <map>
#include <optional>
#include <string>

namespace musiq::cli {

// A quoted JSON string holding `bytes` (escapes as above).
std::string json_string(const std::string& bytes);

// The string members of one flat JSON object (values: strings, numbers, true, false,
// null), strings decoded back to bytes (\udc80..\udcff to the byte they stand for).
// nullopt when the text is not such an object.
std::optional<std::map<std::string, std::string>> parse_flat_json_object(const std::string& text);

}  // namespace musiq::cli
