// src/cuda/nccl_link.cpp: the NcclLink of src/cuda_backend.h. libnccl.so.2 is opened the
// first time NCCL is asked for, and only the calls below are resolved from it.
#include "nccl_link.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <cstring>
#include <mutex>

#include "check.h"
#include "recur/error.h"

namespace recur::detail {
namespace {

struct NcclApi {
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) init_rank = nullptr;
  decltype(&ncclCommDestroy) destroy = nullptr;
  decltype(&ncclCommAbort) abort = nullptr;
  decltype(&ncclCommGetAsyncError) async_error = nullptr;
  decltype(&ncclReduce) reduce = nullptr;
  decltype(&ncclBroadcast) broadcast = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
};

// The API, or nullptr and `why`.
const NcclApi* nccl_api(std::string* why) {
  static std::once_flag once;
  static NcclApi api;
  static std::string failure;
  std::call_once(once, [] {
    void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = dlerror();
      failure = std::string("libnccl.so.2 cannot be loaded: ") + (e != nullptr ? e : "unknown");
      return;
    }
    auto get = [&](const char* name) {
      void* f = dlsym(lib, name);
      if (f == nullptr && failure.empty()) failure = std::string("libnccl.so.2 lacks ") + name;
      return f;
    };
    api.get_unique_id = reinterpret_cast<decltype(api.get_unique_id)>(get("ncclGetUniqueId"));
    api.init_rank = reinterpret_cast<decltype(api.init_rank)>(get("ncclCommInitRank"));
    api.destroy = reinterpret_cast<decltype(api.destroy)>(get("ncclCommDestroy"));
    api.abort = reinterpret_cast<decltype(api.abort)>(get("ncclCommAbort"));
    api.async_error = reinterpret_cast<decltype(api.async_error)>(get("ncclCommGetAsyncError"));
    api.reduce = reinterpret_cast<decltype(api.reduce)>(get("ncclReduce"));
    api.broadcast = reinterpret_cast<decltype(api.broadcast)>(get("ncclBroadcast"));
    api.error_string = reinterpret_cast<decltype(api.error_string)>(get("ncclGetErrorString"));
  });
  if (!failure.empty()) {
    if (why != nullptr) *why = failure;
    return nullptr;
  }
  return &api;
}

void check(const NcclApi& api, ncclResult_t r, const char* what) {
  if (r != ncclSuccess) {
    throw Error(std::string("recur: ") + what + " failed: " + api.error_string(r));
  }
}

class Link final : public NcclLink {
 public:
  Link(const NcclApi& api, int device, const std::vector<char>& id, int rank, int ranks)
      : api_(api), device_(device) {
    ncclUniqueId uid;
    std::memcpy(&uid, id.data(), sizeof(uid));
    const Scope scope(device_);
    // The stream first: a constructor that throws after NCCL's setup would leak the
    // communicator (the destructor does not run).
    RECUR_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    const ncclResult_t made = api_.init_rank(&comm_, ranks, uid, rank);
    if (made != ncclSuccess) {
      cudaStreamDestroy(stream_);
      check(api_, made, "ncclCommInitRank");
    }
  }
  ~Link() override {
    const Scope scope(device_);
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    // Destroy waits for the communicator's queued work, which a failed peer never lets
    // finish; abort does not.
    if (comm_ != nullptr) (failed_ ? api_.abort : api_.destroy)(comm_);
  }
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  void sum(void* data, std::int64_t count, DType dtype, void* stream) override {
    const Scope scope(device_);
    check_peers("ncclReduce");
    const ncclDataType_t type = dtype == DType::Float32 ? ncclFloat32 : ncclFloat64;
    const auto s = static_cast<cudaStream_t>(stream);
    const auto n = static_cast<std::size_t>(count);
    // In place at the root; the others' receive buffers are not read.
    check(api_, api_.reduce(data, data, n, type, ncclSum, 0, comm_, s), "ncclReduce");
    check(api_, api_.broadcast(data, data, n, type, 0, comm_, s), "ncclBroadcast");
  }

  int sum_async(void* data, std::int64_t count, DType dtype, void* stream) override {
    const Scope scope(device_);
    const int ticket = free_event();
    RECUR_CUDA_CHECK(cudaEventRecord(events_[static_cast<std::size_t>(ticket)],
                                     static_cast<cudaStream_t>(stream)));
    RECUR_CUDA_CHECK(cudaStreamWaitEvent(stream_, events_[static_cast<std::size_t>(ticket)], 0));
    sum(data, count, dtype, stream_);
    RECUR_CUDA_CHECK(cudaEventRecord(events_[static_cast<std::size_t>(ticket)], stream_));
    return ticket;
  }

  void wait(int ticket, void* stream) override {
    const Scope scope(device_);
    check_peers("a pending sum");
    RECUR_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream),
                                         events_[static_cast<std::size_t>(ticket)], 0));
    busy_[static_cast<std::size_t>(ticket)] = false;
  }

  void broadcast(void* data, std::size_t bytes, int root, void* stream) override {
    const Scope scope(device_);
    check_peers("ncclBroadcast");
    check(api_,
          api_.broadcast(data, data, bytes, ncclUint8, root, comm_,
                         static_cast<cudaStream_t>(stream)),
          "ncclBroadcast");
  }

 private:
  // The device current for a call, the caller's restored after it.
  class Scope {
   public:
    explicit Scope(int device) {
      known_ = cudaGetDevice(&previous_) == cudaSuccess;
      if (!known_ || previous_ != device) cudaSetDevice(device);
    }
    ~Scope() {
      if (known_) cudaSetDevice(previous_);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    int previous_ = 0;
    bool known_ = false;  // the caller's device could be read: restore it
  };

  // An error NCCL met on its own (a peer that died, a network that failed): the exchanges
  // queued since may never finish, so the communicator is aborted, not destroyed, and
  // every later call is an Error. A host call, no wait.
  void check_peers(const char* what) {
    ncclResult_t state = ncclSuccess;
    if (!failed_ && api_.async_error(comm_, &state) == ncclSuccess &&
        (state == ncclSuccess || state == ncclInProgress)) {
      return;
    }
    failed_ = true;
    throw Error(std::string("recur: ") + what + ": the NCCL communicator failed" +
                (state != ncclSuccess ? std::string(": ") + api_.error_string(state) : "") +
                "; it cannot be used again");
  }

  // An event no pending sum holds, made when none is free.
  int free_event() {
    for (std::size_t i = 0; i < busy_.size(); ++i) {
      if (!busy_[i]) {
        busy_[i] = true;
        return static_cast<int>(i);
      }
    }
    cudaEvent_t e = nullptr;
    RECUR_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    events_.push_back(e);
    busy_.push_back(true);
    return static_cast<int>(events_.size() - 1);
  }

  const NcclApi& api_;
  int device_;
  ncclComm_t comm_ = nullptr;
  bool failed_ = false;  // check_peers saw an asynchronous error: abort, never use again
  cudaStream_t stream_ = nullptr;
  std::vector<cudaEvent_t> events_;
  std::vector<bool> busy_;
};

}  // namespace

bool nccl_usable(int device, std::string* why) {
  if (nccl_api(why) == nullptr) return false;
  int previous = 0;
  const bool known = cudaGetDevice(&previous) == cudaSuccess;
  const cudaError_t set = cudaSetDevice(device);
  if (known) cudaSetDevice(previous);
  if (set != cudaSuccess) {
    cudaGetLastError();
    *why = "cudaSetDevice(" + std::to_string(device) + ") failed: " + cudaGetErrorString(set);
    return false;
  }
  return true;
}

bool nccl_unique_id(std::vector<char>* id, std::string* why) {
  const NcclApi* api = nccl_api(why);
  if (api == nullptr) return false;
  ncclUniqueId uid;
  const ncclResult_t made = api->get_unique_id(&uid);
  if (made != ncclSuccess) {  // e.g. no network interface: every rank is told, none waits
    *why = std::string("ncclGetUniqueId failed: ") + api->error_string(made);
    return false;
  }
  id->assign(reinterpret_cast<const char*>(&uid),
             reinterpret_cast<const char*>(&uid) + sizeof(uid));
  return true;
}

std::unique_ptr<NcclLink> make_nccl_link(int device, const std::vector<char>& id, int rank,
                                         int ranks) {
  std::string why;
  const NcclApi* api = nccl_api(&why);
  if (api == nullptr) throw Error("recur: NCCL: " + why);
  if (id.size() != sizeof(ncclUniqueId)) {
    throw Error("nccl_link", "id", std::to_string(sizeof(ncclUniqueId)) + " bytes",
                std::to_string(id.size()) + " bytes");
  }
  return std::make_unique<Link>(*api, device, id, rank, ranks);
}

}  // namespace recur::detail
