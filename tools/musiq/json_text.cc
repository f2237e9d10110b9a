#include "tools/musiq/json_text.h"

#include <cctype>
#include <cstdint>
#include <cstdio>

namespace musiq::cli {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF).
size_t utf8_sequence_length(const std::string& s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b = byte(i);
  if (b < 0x80) return 1;
  size_t length;
  uint8_t low = 0x80, high = 0xBF;  // the allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    length = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    length = 3;
    if (b == 0xE0) low = 0xA0;
    if (b == 0xED) high = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    length = 4;
    if (b == 0xF0) low = 0x90;
    if (b == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (i + length > s.size() || byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return length;
}

void append_utf8(uint32_t code, std::string& out) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | code >> 6);
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | code >> 12);
    out += static_cast<char>(0x80 | (code >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | code >> 18);
    out += static_cast<char>(0x80 | (code >> 12 & 0x3F));
    out += static_cast<char>(0x80 | (code >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

// A cursor over JSON text; each parse_* returns false on anything unexpected.
struct Reader {
  const std::string& t;
  size_t i = 0;

  void skip_space() {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
  }
  bool eat(char c) {
    skip_space();
    if (i >= t.size() || t[i] != c) return false;
    ++i;
    return true;
  }
  bool hex4(uint32_t& value) {
    if (i + 4 > t.size()) return false;
    value = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = t[i++];
      const int digit = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
      if (digit < 0) return false;
      value = value << 4 | static_cast<uint32_t>(digit);
    }
    return true;
  }
  bool parse_string(std::string& out) {
    if (!eat('"')) return false;
    out.clear();
    while (i < t.size()) {
      const char c = t[i++];
      if (c == '"') return true;
      if (static_cast<uint8_t>(c) < 0x20) return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= t.size()) return false;
      const char e = t[i++];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t code;
          if (!hex4(code)) return false;
          if (code >= 0xDC80 && code <= 0xDCFF) {  // an escaped byte
            out += static_cast<char>(code - 0xDC00);
            break;
          }
          if (code >= 0xD800 && code <= 0xDBFF) {  // a pair
            uint32_t low;
            if (i + 2 > t.size() || t[i] != '\\' || t[i + 1] != 'u') return false;
            i += 2;
            if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          } else if (code >= 0xDC00 && code <= 0xDFFF) {
            return false;
          }
          append_utf8(code, out);
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  // A number, true, false or null: checked loosely (we only need to step over it).
  bool skip_scalar() {
    skip_space();
    const size_t start = i;
    while (i < t.size() && (std::isalnum(static_cast<unsigned char>(t[i])) || t[i] == '-' ||
                            t[i] == '+' || t[i] == '.'))
      ++i;
    const std::string word = t.substr(start, i - start);
    if (word == "true" || word == "false" || word == "null") return true;
    if (word.empty()) return false;
    for (char c : word)
      if (!std::isdigit(static_cast<unsigned char>(c)) && c != '-' && c != '+' && c != '.' &&
          c != 'e' && c != 'E')
        return false;
    return true;
  }
};

}  // namespace

std::string json_string(const std::string& bytes) {
  std::string out = "\"";
  for (size_t i = 0; i < bytes.size();) {
    const auto b = static_cast<uint8_t>(bytes[i]);
    const size_t length = utf8_sequence_length(bytes, i);
    char escape[8];
    if (length == 0) {
      std::snprintf(escape, sizeof escape, "\\udc%02x", b);
      out += escape;
      ++i;
      continue;
    }
    if (b == '"' || b == '\\') {
      out += '\\';
      out += static_cast<char>(b);
    } else if (b == '\n') {
      out += "\\n";
    } else if (b == '\r') {
      out += "\\r";
    } else if (b == '\t') {
      out += "\\t";
    } else if (b < 0x20 || b == 0x7F) {
      std::snprintf(escape, sizeof escape, "\\u%04x", b);
      out += escape;
    } else {
      out.append(bytes, i, length);
    }
    i += length;
  }
  return out + "\"";
}

std::optional<std::map<std::string, std::string>> parse_flat_json_object(const std::string& text) {
  Reader r{text};
  std::map<std::string, std::string> strings;
  if (!r.eat('{')) return std::nullopt;
  if (!r.eat('}')) {
    do {
      std::string key, value;
      if (!r.parse_string(key) || !r.eat(':')) return std::nullopt;
      r.skip_space();
      if (r.i < text.size() && text[r.i] == '"') {
        if (!r.parse_string(value)) return std::nullopt;
        strings[key] = value;
      } else if (!r.skip_scalar()) {
        return std::nullopt;
      }
    } while (r.eat(','));
    if (!r.eat('}')) return std::nullopt;
  }
  r.skip_space();
  if (r.i != text.size()) return std::nullopt;
  return strings;
}

}  // namespace musiq::cli
