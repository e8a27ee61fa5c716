// src/io/safetensors.cpp: the safetensors reader and the atomic writer (POSIX I/O,
// nlohmann::json for the header).
#include "recur/safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <unordered_map>

#include "../convert.h"
#include "../live.h"
#include "../validate.h"
#include "json_bounds.h"
#include "recur/error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "recur's safetensors I/O assumes a little-endian host"
#endif

namespace recur {
namespace {

// safetensors refuses headers above 100 MB; so do we.
constexpr std::uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;

std::string system_reason() { return std::strerror(errno); }

// The element size of a safetensors dtype; 0 for an unknown one.
std::size_t element_size(const std::string& dtype) {
  static const std::unordered_map<std::string, std::size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

// Closes a file descriptor on scope exit unless released.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Reads exactly `bytes` at `offset`; false at end of file (a truncated file).
bool read_exact(int fd, void* dst, std::size_t bytes, std::uint64_t offset, std::string* reason) {
  auto* p = static_cast<unsigned char*>(dst);
  while (bytes > 0) {
    const ssize_t got = ::pread(fd, p, bytes, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      *reason = system_reason();
      return false;
    }
    if (got == 0) {
      *reason = "unexpected end of file";
      return false;
    }
    p += got;
    bytes -= static_cast<std::size_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
  return true;
}

void write_exact(int fd, const void* src, std::size_t bytes, const std::string& where) {
  const auto* p = static_cast<const unsigned char*>(src);
  while (bytes > 0) {
    const ssize_t put = ::write(fd, p, bytes);
    if (put < 0) {
      if (errno == EINTR) continue;
      throw Error(where + ": write failed: " + system_reason());
    }
    p += put;
    bytes -= static_cast<std::size_t>(put);
  }
}

// A file with no name in directory `dir`, open for writing (Linux's O_TMPFILE), or -1
// where the kernel or the file system has no such files, or there is no /proc to name one
// by later (link_unnamed): the bytes would then have to be written a second time.
int open_unnamed(const std::string& dir) {
#ifdef O_TMPFILE
  if (::access("/proc/self/fd", F_OK) != 0) return -1;
  return ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
#else
  (void)dir;
  return -1;
#endif
}

// Gives the unnamed file `fd` the name `path` (through /proc, which needs no privilege,
// where linkat's AT_EMPTY_PATH does); false where that fails.
bool link_unnamed(int fd, const std::string& path) {
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  return ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0;
}

std::string directory_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Removes `<base>.tmp.<pid>` files in `dir` whose writer no longer runs: a save killed
// where there are no unnamed files leaves its temporary behind, and nothing else would
// ever remove it. A pid that runs again (reused) keeps its file; the next save after
// that process ends removes it.
void remove_stale_temporaries(const std::string& dir, const std::string& base) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;  // the save itself reports what is wrong with the folder
  const std::string prefix = base + ".tmp.";
  std::vector<std::string> stale;
  while (const dirent* entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(dir + "/" + name);
  }
  ::closedir(d);
  for (const std::string& file : stale) ::unlink(file.c_str());
}

}  // namespace

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::BFloat16: return "BF16";
    case DType::Float16: return "F16";
    case DType::Int32: return "I32";
    case DType::Int64: return "I64";
  }
  return "unknown";
}

// ---- writing ----

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const char* fn = "save_safetensors";
  if (path.empty()) throw Error(fn, "path", "a file name", "an empty string");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::string arg = "tensors[" + std::to_string(i) + "]";
    const auto& [name, view] = tensors[i];
    if (name.empty() || name == "__metadata__") {
      throw Error(fn, arg, "a non-empty name other than \"__metadata__\"", "\"" + name + "\"");
    }
    if (!seen.insert(name).second) {
      throw Error(fn, arg, "a name not used before", "\"" + name + "\" a second time");
    }
    if (!view.defined())
      throw Error(fn, arg + " (\"" + name + "\")", "a defined tensor", "an undefined view");
  }

  // The header: metadata first (as Python's writer does), then the tensors in order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, view] : tensors) {
    const std::uint64_t bytes = view.nbytes();
    header[name] = {{"dtype", safetensors_dtype(view.dtype())},
                    {"shape", view.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the buffer starts 8-byte aligned
  unsigned char length[8];
  for (int b = 0; b < 8; ++b) length[b] = static_cast<unsigned char>(text.size() >> (8 * b));

  // The bytes go into an unnamed file in path's directory where the file system has them
  // (O_TMPFILE), which a killed process leaves nothing of; it gets the temporary name only
  // once it is whole and flushed, just before the rename. Elsewhere the temporary name is
  // written directly.
  const std::string dir = directory_of(path);
  remove_stale_temporaries(dir, path.substr(path.find_last_of('/') + 1));
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const std::string where = "recur: save_safetensors: " + tmp;
  auto write_all = [&](int fd) {
    write_exact(fd, length, sizeof(length), where);
    write_exact(fd, text.data(), text.size(), where);
    std::vector<unsigned char> staging;
    for (const auto& [name, view] : tensors) {
      if (view.numel() == 0) continue;
      const void* src = view.data();
      if (!view.device().is_cpu()) {
        staging.resize(view.nbytes());
        view.copy_to_host(staging.data());
        src = staging.data();
      }
      write_exact(fd, src, view.nbytes(), where);
    }
    if (::fsync(fd) != 0) throw Error(where + ": fsync failed: " + system_reason());
  };
  bool named = false;  // whether `tmp` exists and must go if anything fails
  try {
    bool written = false;
    Fd unnamed(open_unnamed(dir));
    if (unnamed.get() >= 0) {
      write_all(unnamed.get());
      // A stale file of an earlier process with this pid would block the link.
      if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
        throw Error(where + ": cannot remove a stale file: " + system_reason());
      }
      written = link_unnamed(unnamed.get(), tmp);
      named = written;
      if (::close(unnamed.release()) != 0 && written) {
        throw Error(where + ": close failed: " + system_reason());
      }
    }
    if (!written) {  // no unnamed files here, or the link failed
      Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (fd.get() < 0) throw Error(where + ": cannot create: " + system_reason());
      named = true;
      write_all(fd.get());
      if (::close(fd.release()) != 0) throw Error(where + ": close failed: " + system_reason());
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      throw Error("recur: save_safetensors: cannot rename " + tmp + " to " + path + ": " +
                  system_reason());
    }
  } catch (...) {
    if (named) ::unlink(tmp.c_str());
    throw;
  }
  // Make the rename itself durable.
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() < 0 || ::fsync(dfd.get()) != 0) {
    throw Error("recur: save_safetensors: " + path + " was written, but syncing its directory " +
                dir + " failed: " + system_reason());
  }
}

// ---- reading ----

struct SafetensorsFile::Impl {
  std::string path;
  int fd = -1;
  std::uint64_t data_start = 0;           // 8 + header length
  std::vector<SafetensorsEntry> entries;  // sorted by offset
  std::unordered_map<std::string, std::size_t> index;
  std::map<std::string, std::string> metadata;

  ~Impl() {
    if (fd >= 0) ::close(fd);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error("recur: SafetensorsFile::open: " + path + ": " + what);
  }

  void parse(const std::string& text, std::uint64_t buffer_bytes);
  SafetensorsEntry parse_entry(const std::string& name, const nlohmann::json& value) const;
};

SafetensorsEntry SafetensorsFile::Impl::parse_entry(const std::string& name,
                                                    const nlohmann::json& value) const {
  using detail::quote_json;
  const std::string what = "tensor '" + detail::quote_name(name) + "'";
  if (!value.is_object()) fail(what + ": expected a JSON object, got " + quote_json(value));
  SafetensorsEntry e;
  e.name = name;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) fail(what + ": no \"dtype\" string");
  e.dtype = dtype->get<std::string>();
  const std::size_t size = element_size(e.dtype);
  if (size == 0) fail(what + ": unknown dtype " + quote_json(*dtype));

  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) fail(what + ": no \"shape\" array");
  // numel * size must fit a file offset; anything above 2^62 bytes is corrupt anyway.
  const std::uint64_t limit = std::uint64_t(1) << 62;
  std::uint64_t bytes = size;
  for (const nlohmann::json& d : *shape) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<std::int64_t>() >= 0)) {
      fail(what + ": shape " + quote_json(*shape) + " is not a list of non-negative integers");
    }
    const std::uint64_t n = d.get<std::uint64_t>();
    if (n > limit) fail(what + ": shape " + quote_json(*shape) + " is too large");
    e.shape.push_back(static_cast<std::int64_t>(n));
    if (n != 0 && bytes > limit / n) fail(what + ": shape " + quote_json(*shape) + " is too large");
    bytes *= n;
  }

  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    fail(what + ": \"data_offsets\" must be [begin, end], two non-negative integers");
  }
  e.begin = (*offsets)[0].get<std::uint64_t>();
  e.end = (*offsets)[1].get<std::uint64_t>();
  if (e.end < e.begin) {
    fail(what + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
         "] end before they begin");
  }
  if (e.end - e.begin != bytes) {
    fail(what + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
         "] span " + std::to_string(e.end - e.begin) + " bytes, but dtype " + e.dtype +
         " and shape " + to_string(e.shape) + " need " + std::to_string(bytes));
  }
  return e;
}

void SafetensorsFile::Impl::parse(const std::string& text, std::uint64_t buffer_bytes) {
  nlohmann::json header;
  std::string error;
  if (!detail::parse_bounded_json(text, &header, &error)) fail("the header " + error);
  if (!header.is_object()) fail("the header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) fail("\"__metadata__\" is not a JSON object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) {
          fail("metadata '" + detail::quote_name(m.key()) +
               "' is not a string: " + detail::quote_json(m.value()));
        }
        metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(it.key(), it.value()));
  }

  // The tensors must tile the byte buffer: sorted by offset, each one begins where the
  // one before ends, and the last ends at the end of the file.
  std::sort(entries.begin(), entries.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  std::uint64_t at = 0;
  const SafetensorsEntry* previous = nullptr;
  auto range = [](const SafetensorsEntry& e) {
    return "'" + detail::quote_name(e.name) + "' [" + std::to_string(e.begin) + ", " +
           std::to_string(e.end) + ")";
  };
  for (const SafetensorsEntry& e : entries) {
    if (e.end > buffer_bytes) {
      fail("tensor " + range(e) + " reaches past the end of the data (" +
           std::to_string(buffer_bytes) +
           " bytes after the header): offsets out of range, or "
           "the file is truncated");
    }
    if (e.begin < at) fail("tensors " + range(*previous) + " and " + range(e) + " overlap");
    if (e.begin > at) {
      fail("bytes [" + std::to_string(at) + ", " + std::to_string(e.begin) +
           ") of the data belong to no tensor (before " + range(e) + ")");
    }
    at = e.end;
    previous = &e;
  }
  if (at != buffer_bytes) {
    fail("the data has " + std::to_string(buffer_bytes) + " bytes, but the tensors cover " +
         std::to_string(at) + ": trailing bytes");
  }
  for (std::size_t i = 0; i < entries.size(); ++i) index[entries[i].name] = i;
}

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::~SafetensorsFile() = default;
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer, before fstat could
  // tell it is no regular file. Reads of a regular file do not block either way.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) impl->fail("cannot open: " + system_reason());
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) impl->fail("cannot stat: " + system_reason());
  if (!S_ISREG(st.st_mode)) impl->fail("not a regular file (a directory, FIFO, socket or device)");
  const auto file_bytes = static_cast<std::uint64_t>(st.st_size);
  if (file_bytes < 8) {
    impl->fail("truncated: " + std::to_string(file_bytes) +
               " bytes, less than the 8-byte header length");
  }
  unsigned char length[8];
  std::string reason;
  if (!read_exact(fd.get(), length, 8, 0, &reason)) impl->fail("cannot read: " + reason);
  std::uint64_t n = 0;
  for (int b = 7; b >= 0; --b) n = (n << 8) | length[b];
  if (n > file_bytes - 8) {
    impl->fail("the header length " + std::to_string(n) + " exceeds the " +
               std::to_string(file_bytes - 8) +
               " bytes after it: truncated or not a safetensors file");
  }
  if (n > kMaxHeaderBytes) impl->fail("the header length " + std::to_string(n) + " exceeds 100 MB");
  if (n < 2)
    impl->fail("the header length " + std::to_string(n) + " is too short for a JSON object");
  std::string text(static_cast<std::size_t>(n), '\0');
  if (!read_exact(fd.get(), text.data(), text.size(), 8, &reason)) {
    impl->fail("cannot read the header: " + reason);
  }
  if (text[0] != '{') impl->fail("the header does not start with '{': not a safetensors file");
  impl->data_start = 8 + n;
  impl->parse(text, file_bytes - impl->data_start);
  impl->fd = fd.release();
  return SafetensorsFile(std::move(impl));
}

const SafetensorsFile::Impl& SafetensorsFile::impl(const char* where) const {
  return detail::live(impl_, "SafetensorsFile", where);
}

const std::string& SafetensorsFile::path() const { return impl("SafetensorsFile::path").path; }

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  const Impl& self = impl("SafetensorsFile::names");
  out.reserve(self.entries.size());
  for (const SafetensorsEntry& e : self.entries) out.push_back(e.name);
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return impl("SafetensorsFile::contains").index.count(name) != 0;
}

const SafetensorsEntry& SafetensorsFile::info(const std::string& name) const {
  const Impl& self = impl("SafetensorsFile::info");
  const auto it = self.index.find(name);
  if (it == self.index.end()) {
    throw Error("SafetensorsFile(" + self.path + ")", "name", "a tensor in the file",
                "\"" + detail::quote_name(name) + "\", which it does not hold");
  }
  return self.entries[it->second];
}

const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
  return impl("SafetensorsFile::metadata").metadata;
}

std::vector<unsigned char> SafetensorsFile::read_bytes(const std::string& name) const {
  const SafetensorsEntry& e = info(name);
  std::vector<unsigned char> out(static_cast<std::size_t>(e.end - e.begin));
  std::string reason;
  const Impl& self = impl("SafetensorsFile::read_bytes");
  if (!read_exact(self.fd, out.data(), out.size(), self.data_start + e.begin, &reason)) {
    throw Error("recur: SafetensorsFile::read: " + self.path + ": tensor '" + name +
                "': cannot read its data: " + reason);
  }
  return out;
}

namespace {

constexpr const char* kReadable = "a tensor of dtype F32, F64, BF16, F16, I32 or I64";

// The recur dtype of safetensors dtype `name`; false for one recur tensors cannot hold.
bool recur_dtype(const std::string& name, DType* dtype) {
  for (DType d : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32,
                  DType::Int64}) {
    if (name == safetensors_dtype(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

// "Float32" for DType::Float32, and so on: the name a caller writes.
const char* enumerator(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "Float32";
    case DType::Float64: return "Float64";
    case DType::BFloat16: return "BFloat16";
    case DType::Float16: return "Float16";
    case DType::Int32: return "Int32";
    case DType::Int64: return "Int64";
  }
  return "unknown";
}

// The file's dtype of tensor `e`, checked against `dst`.
DType check_read_target(const std::string& where, const SafetensorsEntry& e, const TensorView& dst,
                        bool any_float) {
  detail::expect_defined(where, "dst", dst);
  DType stored = DType::Float32;
  if (!recur_dtype(e.dtype, &stored)) {
    throw Error(where, "name", kReadable, "'" + e.name + "' of dtype " + e.dtype);
  }
  const bool convertible = any_float && !is_integer(stored) && !is_integer(dst.dtype());
  if (!convertible && stored != dst.dtype()) {
    throw Error(where, "dst",
                std::string("dtype ") + enumerator(stored) + " (tensor '" + e.name + "' is " +
                    e.dtype + ")",
                std::string("dtype ") + to_string(dst.dtype()));
  }
  if (dst.shape() != e.shape) {
    throw Error(where, "dst", "shape " + to_string(e.shape) + " (tensor '" + e.name + "')",
                "shape " + to_string(dst.shape()));
  }
  return stored;
}

}  // namespace

void SafetensorsFile::read_into(const std::string& name, const TensorView& dst) const {
  const std::string where =
      "SafetensorsFile::read_into(" + impl("SafetensorsFile::read_into").path + ")";
  const SafetensorsEntry& e = info(name);
  check_read_target(where, e, dst, false);
  const std::vector<unsigned char> bytes = read_bytes(name);
  dst.copy_from_host(bytes.data());
}

void SafetensorsFile::read_converted(const std::string& name, const TensorView& dst) const {
  const std::string where =
      "SafetensorsFile::read_converted(" + impl("SafetensorsFile::read_converted").path + ")";
  const SafetensorsEntry& e = info(name);
  const DType stored = check_read_target(where, e, dst, true);
  const std::vector<unsigned char> bytes = read_bytes(name);
  if (stored == dst.dtype()) {
    dst.copy_from_host(bytes.data());
    return;
  }
  const auto n = static_cast<std::size_t>(dst.numel());
  std::vector<unsigned char> converted(n * dtype_size(dst.dtype()));
  detail::convert_host(bytes.data(), stored, converted.data(), dst.dtype(), n);
  dst.copy_from_host(converted.data());
}

Tensor SafetensorsFile::read(const std::string& name, Device device) const {
  const SafetensorsEntry& e = info(name);
  DType stored = DType::Float32;
  if (!recur_dtype(e.dtype, &stored)) {
    throw Error("SafetensorsFile::read(" + path() + ")", "name", kReadable,
                "'" + name + "' of dtype " + e.dtype);
  }
  Tensor t = Tensor::empty(e.shape, stored, device);
  read_into(name, t);
  return t;
}

}  // namespace recur
