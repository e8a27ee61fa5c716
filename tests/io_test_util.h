// tests/io_test_util.h: temporary folders and raw file surgery for the safetensors and
// checkpoint tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace recur::test {

// A fresh folder under the system's temporary folder, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "recur_test_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }
  // Names of the files in the folder.
  std::vector<std::string> list() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_)) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }

 private:
  std::string path_;
};

inline std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// A safetensors file split into its parts.
struct RawSafetensors {
  std::string header;               // the JSON text, as stored (with padding)
  std::vector<unsigned char> data;  // the byte buffer

  static RawSafetensors parse(const std::vector<unsigned char>& bytes) {
    std::uint64_t n = 0;
    for (int b = 7; b >= 0; --b) n = (n << 8) | bytes.at(static_cast<std::size_t>(b));
    RawSafetensors r;
    r.header.assign(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
    r.data.assign(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
    return r;
  }
  // `length_override` >= 0 writes that header length instead of the true one.
  std::vector<unsigned char> bytes(std::int64_t length_override = -1) const {
    const auto n = static_cast<std::uint64_t>(
        length_override >= 0 ? length_override : static_cast<std::int64_t>(header.size()));
    std::vector<unsigned char> out(8 + header.size() + data.size());
    for (int b = 0; b < 8; ++b)
      out[static_cast<std::size_t>(b)] = static_cast<unsigned char>(n >> (8 * b));
    std::copy(header.begin(), header.end(), out.begin() + 8);
    std::copy(data.begin(), data.end(),
              out.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
    return out;
  }
  nlohmann::ordered_json json() const { return nlohmann::ordered_json::parse(header); }
  void set_json(const nlohmann::ordered_json& j) { header = j.dump(); }
};

// Runs `fn`, expecting a recur::Error whose message contains every one of `parts`.
template <class Fn>
::testing::AssertionResult throws_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& p : parts) {
      if (message.find(p) == std::string::npos) {
        return ::testing::AssertionFailure()
               << "message \"" << message << "\" lacks \"" << p << "\"";
      }
    }
    return ::testing::AssertionSuccess() << message;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-recur exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

// The bytes of a tensor's memory, from any device.
inline std::vector<unsigned char> bytes_of(const TensorView& t) {
  std::vector<unsigned char> out(t.nbytes());
  if (!out.empty()) t.copy_to_host(out.data());
  return out;
}

}  // namespace recur::test
