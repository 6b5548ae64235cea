#include "json.hpp"

#include <cmath>
#include <cstdlib>

#include "error.hpp"

namespace srt {

class JsonParser {
 public:
  JsonParser(const std::string &text, const std::string &where) : s_(text), where_(where) {}

  Json parse_document() {
    Json value = parse_value(where_, 0);
    skip_ws();
    if (pos_ != s_.size()) error("unexpected text after the JSON value");
    return value;
  }

 private:
  const std::string &s_;
  std::string where_;
  size_t pos_ = 0;

  [[noreturn]] void error(const std::string &what) {
    size_t line = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) line += s_[i] == '\n';
    fail(SRT_ERROR_MANIFEST, "cannot read manifest " + where_ + ": " + what + " (line " + std::to_string(line) + ")");
  }

  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool literal(const char *word) {
    size_t n = std::char_traits<char>::length(word);
    if (s_.compare(pos_, n, word) == 0) {
      pos_ += n;
      return true;
    }
    return false;
  }

  Json parse_value(const std::string &path, int depth) {
    if (depth > 64) error("nesting too deep");
    skip_ws();
    if (pos_ >= s_.size()) error("unexpected end of file");
    Json v;
    v.where = path;
    char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      v.type_ = Json::Object;
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return v;
      }
      for (;;) {
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_] != '"') error("expected a string key");
        std::string key = parse_string();
        for (const auto &item : v.object_)  // one reading on both sides of the ABI (runtime/manifest.py)
          if (item.first == key) error("duplicate key \"" + key + "\" in " + path);
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_] != ':') error("expected ':'");
        ++pos_;
        Json child = parse_value(path + "." + key, depth + 1);
        v.object_.emplace_back(key, std::move(child));
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == '}') {
          ++pos_;
          return v;
        }
        error("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++pos_;
      v.type_ = Json::Array;
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return v;
      }
      for (;;) {
        v.array_.push_back(parse_value(path + "[" + std::to_string(v.array_.size()) + "]", depth + 1));
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == ']') {
          ++pos_;
          return v;
        }
        error("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.type_ = Json::String;
      v.string_ = parse_string();
      return v;
    }
    if (literal("true")) {
      v.type_ = Json::Bool;
      v.bool_ = true;
      return v;
    }
    if (literal("false")) {
      v.type_ = Json::Bool;
      return v;
    }
    if (literal("null")) return v;
    if (literal("NaN") || literal("Infinity") || literal("-Infinity")) {  // Python's json writes these
      v.type_ = Json::Number;
      v.number_ = NAN;
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t start = pos_;
      if (s_[pos_] == '-') ++pos_;
      bool integral = true;
      while (pos_ < s_.size()) {
        char d = s_[pos_];
        if (d >= '0' && d <= '9') {
          ++pos_;
        } else if (d == '.' || d == 'e' || d == 'E' || d == '+' || d == '-') {
          integral = false;
          ++pos_;
        } else {
          break;
        }
      }
      std::string text = s_.substr(start, pos_ - start);
      char *end = nullptr;
      v.number_ = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0') error("malformed number '" + text + "'");
      v.type_ = Json::Number;
      v.integral_ = integral;
      return v;
    }
    error(std::string("unexpected character '") + c + "'");
  }

  static void append_utf8(std::string &out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) error("truncated \\u escape");
    unsigned cp = 0;
    for (int i = 0; i < 4; ++i) {
      char h = s_[pos_++];
      cp <<= 4;
      if (h >= '0' && h <= '9') cp |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') cp |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') cp |= static_cast<unsigned>(h - 'A' + 10);
      else error("bad \\u escape");
    }
    return cp;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) break;
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && pos_ + 6 <= s_.size() && s_[pos_] == '\\' && s_[pos_ + 1] == 'u') {
            pos_ += 2;
            unsigned low = hex4();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: error("bad escape in string");
      }
    }
    error("unterminated string");
  }
};

Json Json::parse(const std::string &text, const std::string &where) { return JsonParser(text, where).parse_document(); }

bool Json::has(const std::string &key) const { return get(key) != nullptr; }

const Json *Json::get(const std::string &key) const {
  if (type_ != Object) return nullptr;
  for (const auto &item : object_)
    if (item.first == key) return &item.second;
  return nullptr;
}

const Json &Json::at(const std::string &key) const {
  const Json *found = get(key);
  if (!found) fail(SRT_ERROR_MANIFEST, where + ": missing field '" + key + "'");
  return *found;
}

double Json::number() const {
  if (type_ != Number) fail(SRT_ERROR_MANIFEST, where + ": expected a number");
  return number_;
}

long long Json::integer() const {
  if (type_ != Number || !integral_ || std::fabs(number_) > 9.0e15)
    fail(SRT_ERROR_MANIFEST, where + ": expected an integer");
  return static_cast<long long>(number_);
}

bool Json::boolean() const {
  if (type_ != Bool) fail(SRT_ERROR_MANIFEST, where + ": expected true or false");
  return bool_;
}

const std::string &Json::string() const {
  if (type_ != String) fail(SRT_ERROR_MANIFEST, where + ": expected a string");
  return string_;
}

}  // namespace srt
