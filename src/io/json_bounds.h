// src/io/json_bounds.h: JSON from files that may be hostile. Nesting is bounded while
// parsing (nlohmann's dump() and comparisons recurse, so an unbounded depth would let a
// 200 KB file overflow the stack), and what an error message quotes of a value or a name
// is bounded too.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

namespace recur::detail {

// Deeper than any header or metadata recur writes or reads (they nest 3 levels).
constexpr int kMaxJsonDepth = 64;
// What an error message quotes of a value or a name from a file, at most.
constexpr std::size_t kMaxQuotedChars = 200;

// Parses `text` into `out`; false when it is not JSON or nests deeper than
// kMaxJsonDepth, with `error` saying which as a predicate ("is not valid JSON (...)",
// "nests deeper than 64 levels") for the caller to put after what it read.
bool parse_bounded_json(const std::string& text, nlohmann::json* out, std::string* error);

// `value` as JSON text, cut after about kMaxQuotedChars characters ("..." marks the cut).
// Walks at most kMaxJsonDepth levels, so it is safe on any value parse_bounded_json made.
std::string quote_json(const nlohmann::json& value);

// `text` cut after kMaxQuotedChars characters, for names read from a file.
std::string quote_name(const std::string& text);

}  // namespace recur::detail
