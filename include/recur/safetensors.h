// recur/safetensors.h: reading and writing safetensors files, the tensor format of the
// Python ecosystem (https://github.com/huggingface/safetensors).
//
//   recur::save_safetensors("w.safetensors", {{"weight", w}, {"bias", b}}, {{"note", "x"}});
//   recur::SafetensorsFile f = recur::SafetensorsFile::open("w.safetensors");
//   f.read_into("weight", w);            // same dtype and shape, or recur::Error
//
// The format: an 8-byte little-endian unsigned N, then N bytes of a JSON object
//   {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<string value>", ...}}
// then the byte buffer. Offsets count from the start of the buffer; each tensor is
// contiguous, row-major, little-endian. The tensors tile the buffer exactly: no gaps,
// no overlaps, the last one ends where the file ends.
//
// Writing is atomic: the file is written, flushed to the disk (fsync), named
// "<path>.tmp.<pid>", renamed to `path`, and the directory is flushed; so a crash (or a
// kill) at any moment leaves either the previous file or the new one at `path`, never a
// part of one. Where the file system has unnamed files (Linux's O_TMPFILE: ext4, XFS,
// btrfs, tmpfs), the bytes go to one that gets its temporary name only when whole, so a
// process killed while writing leaves nothing behind; elsewhere the temporary name is
// written directly, and a killed process's temporary file may remain beside `path`.
//
// Reading validates the whole header when the file is opened, and throws recur::Error
// naming the file and what is wrong with it (truncated, bad JSON, unknown dtype, offsets
// out of range or overlapping, a size that does not match dtype and shape, ...). The
// reader lists tensors of every safetensors dtype and reads the six recur has: F32
// (DType::Float32), F64 (Float64), BF16 (BFloat16), F16 (Float16), I32 (Int32) and I64
// (Int64). Conversion between the four floating ones happens only when asked for
// (read_converted); integers are never converted. The host must be little-endian
// (x86-64, AArch64).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recur/device.h"
#include "recur/export.h"
#include "recur/tensor.h"

namespace recur {

// Named tensors, in order (the order they are written in).
using NamedTensors = std::vector<std::pair<std::string, TensorView>>;

// The safetensors name of a recur dtype: "F32", "F64", "BF16", "F16", "I32" or "I64".
RECUR_API const char* safetensors_dtype(DType dtype);

// Writes `tensors` (each defined, of any DType, on any device: GPU tensors are copied to
// the host) and `metadata` to `path`, atomically (see above). Names must be
// non-empty, unique and not "__metadata__". Throws recur::Error for a bad argument or an
// I/O failure (with the system's reason); `path` is then unchanged.
RECUR_API void save_safetensors(const std::string& path, const NamedTensors& tensors,
                                const std::map<std::string, std::string>& metadata = {});

// One tensor's header entry.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // the safetensors name: "F32", "F64", "I64", "BF16", ...
  Shape shape;
  std::uint64_t begin = 0, end = 0;  // data_offsets, relative to the byte buffer
};

// An open, validated safetensors file. Move-only; keeps the file open and reads tensor
// data on demand. Every method of a moved-from file throws recur::Error.
class RECUR_API SafetensorsFile {
 public:
  // Opens `path` and validates its header against the file's size. Throws recur::Error
  // naming the file and the problem.
  static SafetensorsFile open(const std::string& path);

  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const;
  // Tensor names, in the order of their data in the file.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  // Throws recur::Error for a name the file does not hold.
  const SafetensorsEntry& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const;

  // Copies tensor `name` into `dst` (on any device), which must have the tensor's shape
  // and dtype (F32 = Float32, F64 = Float64, BF16 = BFloat16, F16 = Float16, I32 = Int32,
  // I64 = Int64). No conversion. Throws recur::Error, with `dst` unchanged, for an unknown name, a
  // mismatch, a dtype recur does not have, or a read failure.
  void read_into(const std::string& name, const TensorView& dst) const;
  // The same, converting between any two of the four floating dtypes when they differ, as
  // Tensor::to does (exact when widening, rounding once to nearest even when narrowing).
  // An integer tensor must match exactly, as for read_into. The shape must still match.
  void read_converted(const std::string& name, const TensorView& dst) const;
  // Tensor `name` (F32, F64, BF16, F16, I32 or I64) in a new tensor of that dtype on
  // `device`.
  Tensor read(const std::string& name, Device device = Device::cpu()) const;
  // The raw little-endian bytes of tensor `name` (any dtype), end - begin of them.
  std::vector<unsigned char> read_bytes(const std::string& name) const;

 private:
  struct Impl;
  explicit SafetensorsFile(std::unique_ptr<Impl> impl);
  const Impl& impl(const char* where) const;  // throws for a moved-from file
  std::unique_ptr<Impl> impl_;
};

}  // namespace recur
