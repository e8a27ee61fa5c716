// tests/fuzz/fuzz_inputs.cpp: the per-input work of the fuzz targets (see fuzz_inputs.h).
#include "fuzz_inputs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "recur/checkpoint.h"
#include "recur/error.h"
#include "recur/model_checkpoint.h"
#include "recur/optim.h"
#include "recur/rnn.h"
#include "recur/safetensors.h"
#include "recur/tensor.h"

namespace recur::fuzz {
namespace {

// The scratch file, opened once. The readers take a path, so the file needs one; it is
// reached through /proc/self/fd/N after its own name is removed, which leaves nothing in
// the folder even when the process dies of a finding.
struct Scratch {
  int fd = -1;
  std::string path;

  Scratch() {
    std::string dir = "/tmp";
    struct stat st {};
    if (const char* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0') dir = tmp;
    if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0) {
      dir = "/dev/shm";
    }
    std::string name = dir + "/recur_fuzz_XXXXXX";
    fd = ::mkstemp(name.data());
    if (fd < 0)
      throw std::runtime_error("fuzz: cannot create " + name + ": " + std::strerror(errno));
    const std::string by_fd = "/proc/self/fd/" + std::to_string(fd);
    if (::access(by_fd.c_str(), R_OK) == 0) {
      ::unlink(name.c_str());
      path = by_fd;
    } else {
      path = name;  // no /proc: the named file stays, and is removed at exit
    }
  }
  ~Scratch() {
    if (path.rfind("/proc/", 0) != 0) ::unlink(path.c_str());
    ::close(fd);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  void write(const std::uint8_t* data, std::size_t size) const {
    if (::ftruncate(fd, 0) != 0) throw std::runtime_error("fuzz: ftruncate failed");
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("fuzz: cannot write " + path);
      done += static_cast<std::size_t>(n);
    }
  }
};

Scratch& scratch() {
  static Scratch s;
  return s;
}

// Runs one reader call; recur::Error is an accepted outcome, anything else escapes.
template <class F>
void accept_error(F&& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

constexpr DType kDtypes[] = {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16};

DType dtype_of_name(const std::string& name, bool* known) {
  for (DType d : kDtypes) {
    if (name == safetensors_dtype(d)) {
      *known = true;
      return d;
    }
  }
  *known = false;
  return DType::Float32;
}

}  // namespace

const std::string& scratch_path() { return scratch().path; }

RnnConfig fuzz_rnn_config() {
  RnnConfig config;
  config.cell = CellKind::Lstm;
  config.input_size = 3;
  config.hidden_size = 4;
  config.num_layers = 2;
  return config;
}

FuzzModel::FuzzModel()
    : rnn(fuzz_rnn_config()),
      embedding(7, 3),
      head(4, 7),
      adam({{"rnn", rnn.parameters(), rnn.gradients()},
            {"embedding", embedding.parameters(), embedding.gradients()},
            {"head", head.parameters(), head.gradients()}}),
      schedule(LrScheduleOptions{}, {&adam}) {}

ModelParts FuzzModel::parts() {
  return {{{"rnn", &rnn}}, {{"embedding", &embedding}}, {{"head", &head}}};
}

TrainingParts FuzzModel::training() { return {&adam, &schedule, &scaler, 0, {}}; }

int fuzz_safetensors(const std::uint8_t* data, std::size_t size) {
  scratch().write(data, size);
  accept_error([] {
    const SafetensorsFile file = SafetensorsFile::open(scratch_path());
    for (const auto& [key, value] : file.metadata()) {
      // Touch every byte, so that a dangling or short string is seen by ASan.
      volatile std::size_t sum = key.size();
      for (char c : value) sum = sum + static_cast<unsigned char>(c);
    }
    accept_error([&] { file.info("__metadata__"); });
    for (const std::string& name : file.names()) {
      if (!file.contains(name))
        throw std::logic_error("names() lists '" + name + "', contains() not");
      const SafetensorsEntry entry = file.info(name);
      accept_error([&] { file.read_bytes(name); });
      bool known = false;
      const DType dtype = dtype_of_name(entry.dtype, &known);
      // Each read in its own call: one that fails must not hide the next.
      accept_error([&] { file.read(name); });
      if (!known) continue;
      accept_error([&] {
        Tensor same = Tensor::empty(entry.shape, dtype);
        file.read_into(name, same.view());
      });
      for (DType other : kDtypes) {  // every conversion, arbitrary bits included
        if (other == dtype) continue;
        accept_error([&] {
          Tensor converted = Tensor::empty(entry.shape, other);
          file.read_converted(name, converted.view());
        });
      }
    }
  });
  return 0;
}

int fuzz_checkpoint(const std::uint8_t* data, std::size_t size) {
  scratch().write(data, size);
  // A fresh model per input, so that an input's outcome never depends on the one before.
  Rnn rnn(fuzz_rnn_config());
  Adam adam(rnn.parameters());
  accept_error([&] { load_checkpoint(scratch_path(), rnn, &adam); });
  accept_error([&] { load_checkpoint(scratch_path(), rnn, nullptr); });
  accept_error([&] {
    const SafetensorsFile file = SafetensorsFile::open(scratch_path());
    accept_error([&] { load_state_dict(rnn, file); });
    StateDictOptions converting;
    converting.convert_dtype = true;
    accept_error([&] { load_state_dict(rnn, file, converting); });
  });
  accept_error([] { read_model_checkpoint(scratch_path()); });
  accept_error([] {
    FuzzModel model;
    TrainingParts training = model.training();
    load_model_checkpoint(scratch_path(), model.parts(), training);
  });
  return 0;
}

}  // namespace recur::fuzz
