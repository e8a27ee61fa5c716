// src/io/json_bounds.cpp: bounded JSON parsing and quoting (json_bounds.h).
#include "json_bounds.h"

namespace recur::detail {
namespace {

struct TooDeep {};

// Appends `value` to `out` until `out` reaches kMaxQuotedChars; iterates containers
// itself so that nothing is dumped whole.
void append_bounded(const nlohmann::json& value, int depth, std::string& out) {
  if (out.size() >= kMaxQuotedChars) return;
  if (depth > kMaxJsonDepth) {
    out += "...";
    return;
  }
  if (value.is_object() || value.is_array()) {
    const bool object = value.is_object();
    out += object ? '{' : '[';
    bool first = true;
    for (auto it = value.begin(); it != value.end() && out.size() < kMaxQuotedChars; ++it) {
      if (!first) out += ',';
      first = false;
      if (object) out += nlohmann::json(quote_name(it.key())).dump() + ':';
      append_bounded(it.value(), depth + 1, out);
    }
    out += object ? '}' : ']';
    return;
  }
  if (value.is_string()) {
    out += nlohmann::json(quote_name(value.get_ref<const std::string&>())).dump();
    return;
  }
  out += value.dump();  // a number, a boolean or null: short
}

}  // namespace

bool parse_bounded_json(const std::string& text, nlohmann::json* out, std::string* error) {
  const auto bound = [](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    const bool opens = event == nlohmann::json::parse_event_t::object_start ||
                       event == nlohmann::json::parse_event_t::array_start;
    if (opens && depth >= kMaxJsonDepth) throw TooDeep{};
    return true;
  };
  try {
    *out = nlohmann::json::parse(text, bound);
    return true;
  } catch (const TooDeep&) {
    *error = "nests deeper than " + std::to_string(kMaxJsonDepth) + " levels";
  } catch (const nlohmann::json::exception& e) {
    *error = "is not valid JSON (" + quote_name(e.what()) + ")";
  }
  return false;
}

std::string quote_json(const nlohmann::json& value) {
  std::string out;
  append_bounded(value, 0, out);
  if (out.size() > kMaxQuotedChars) {
    out.resize(kMaxQuotedChars);
    out += "...";
  }
  return out;
}

std::string quote_name(const std::string& text) {
  if (text.size() <= kMaxQuotedChars) return text;
  return text.substr(0, kMaxQuotedChars) + "...";
}

}  // namespace recur::detail
