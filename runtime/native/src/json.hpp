// A small JSON reader for manifests: parse into a tree, typed access that throws srt::Error.
// Why self-written: manifests are small and trusted-format; a dependency-free reader keeps the
// Jetson build to CMake + a compiler + the backend's SDK.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace srt {

class Json {
 public:
  enum Type { Null, Bool, Number, String, Array, Object };

  Json() = default;
  static Json parse(const std::string &text, const std::string &where);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Null; }
  bool is_number() const { return type_ == Number; }
  bool is_string() const { return type_ == String; }
  bool is_array() const { return type_ == Array; }
  bool is_object() const { return type_ == Object; }
  bool is_bool() const { return type_ == Bool; }

  // Object access: has() / get() (nullptr when absent) / at() (throws naming the key).
  bool has(const std::string &key) const;
  const Json *get(const std::string &key) const;
  const Json &at(const std::string &key) const;
  const std::vector<std::pair<std::string, Json>> &items() const { return object_; }

  // Array access.
  size_t size() const { return array_.size(); }
  const Json &operator[](size_t i) const { return array_.at(i); }
  const std::vector<Json> &elements() const { return array_; }

  // Typed values (throw srt::Error with `where` context on a type mismatch).
  double number() const;
  long long integer() const;  // a number with no fractional part
  bool boolean() const;
  const std::string &string() const;

  std::string where;  // "file: path.to.value", for error messages

 private:
  friend class JsonParser;
  Type type_ = Null;
  bool bool_ = false;
  double number_ = 0.0;
  bool integral_ = false;
  std::string string_;
  std::vector<Json> array_;
  std::vector<std::pair<std::string, Json>> object_;
};

}  // namespace srt
