// src/dist/mpi_communicator.cpp: the Communicator of recur/distributed.h over MPI, in host
// memory. Sums reduce at rank 0 and broadcast the result, so every rank gets the same bits
// whatever algorithm the MPI library picks for the reduction. Asynchronous sums run on a
// thread of their own (Exchanger) where MPI allows it (MPI_THREAD_MULTIPLE), else as
// non-blocking reductions that advance when waited for.
#include <mpi.h>

#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../validate.h"
#include "recur/distributed.h"
#include "recur/error.h"

namespace recur {
namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(rc, text, &n);
  throw Error(std::string("recur: ") + what + " failed: " + std::string(text, n));
}

// Elements per MPI call: counts are ints.
constexpr std::int64_t kChunk = std::int64_t{1} << 30;

void expect_host_floats(const char* where, const TensorView& buffer) {
  detail::expect_float_tensor(where, "buffer", buffer);
  if (!buffer.device().is_cpu()) {
    throw Error(where, "buffer", "host memory (the MPI communicator's)",
                "device " + buffer.device().str());
  }
}

MPI_Datatype mpi_type(DType dtype) { return dtype == DType::Float32 ? MPI_FLOAT : MPI_DOUBLE; }

// Sums [data, data + count) over the ranks of `comm` into every rank's copy: a reduction
// at rank 0, in place there, then its broadcast, so that every rank gets rank 0's bits.
int sum_everywhere(void* data, int count, MPI_Datatype type, MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  const void* send = rank == 0 ? MPI_IN_PLACE : data;
  const int status = MPI_Reduce(send, data, count, type, MPI_SUM, 0, comm);
  return status == MPI_SUCCESS ? MPI_Bcast(data, count, type, 0, comm) : status;
}

class MpiSum final : public PendingSum {
 public:
  MpiSum(void* data, int count, MPI_Datatype type, int rank)
      : data_(data), count_(count), type_(type) {
    // sum_everywhere's reduction, started; wait() broadcasts its result.
    const void* send = rank == 0 ? MPI_IN_PLACE : data;
    check(MPI_Ireduce(send, data, count, type, MPI_SUM, 0, MPI_COMM_WORLD, &request_),
          "MPI_Ireduce");
  }
  ~MpiSum() override {
    if (!done_) {
      try {
        wait();
      } catch (...) {  // a destructor does not throw; the next MPI call reports the failure
      }
    }
  }
  void wait() override {
    if (done_) return;
    done_ = true;
    check(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait");
    check(MPI_Bcast(data_, count_, type_, 0, MPI_COMM_WORLD), "MPI_Bcast");
  }

 private:
  void* data_;
  int count_;
  MPI_Datatype type_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool done_ = false;
};

// Bucket sums on a thread of their own, so that they run while the caller's backward does
// (an MPI library advances a non-blocking reduction only inside MPI calls, which a backward
// makes none of). They use a duplicate of MPI_COMM_WORLD: their order, the order of the
// ready() calls and so the same on every rank, then never interleaves with the caller's own
// collectives. Needs MPI_THREAD_MULTIPLE.
class Exchanger {
 public:
  struct Job {
    void* data = nullptr;
    int count = 0;
    MPI_Datatype type = MPI_FLOAT;
    bool done = false;
    int status = MPI_SUCCESS;
  };

  Exchanger() {
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    thread_ = std::thread([this] { run(); });
  }
  ~Exchanger() { stop(); }
  Exchanger(const Exchanger&) = delete;
  Exchanger& operator=(const Exchanger&) = delete;

  std::shared_ptr<Job> submit(void* data, int count, MPI_Datatype type) {
    auto job = std::make_shared<Job>();
    job->data = data;
    job->count = count;
    job->type = type;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(job);
    }
    changed_.notify_all();
    return job;
  }
  void wait(const Job& job) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return job.done; });
    check(job.status, "the bucket sum (MPI_Reduce, MPI_Bcast)");
  }
  // Before MPI_Finalize: the thread ends once its queue is done.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
    int finalized = 1;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

 private:
  void run() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = queue_.front();
        queue_.pop_front();
      }
      const int status = sum_everywhere(job->data, job->count, job->type, comm_);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        job->status = status;
        job->done = true;
      }
      changed_.notify_all();
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<Exchanger::Job>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

class ThreadSum final : public PendingSum {
 public:
  ThreadSum(Exchanger& exchanger, std::shared_ptr<Exchanger::Job> job)
      : exchanger_(exchanger), job_(std::move(job)) {}
  ~ThreadSum() override {
    try {
      wait();
    } catch (...) {  // a destructor does not throw
    }
  }
  void wait() override {
    if (waited_) return;
    waited_ = true;
    exchanger_.wait(*job_);
  }

 private:
  Exchanger& exchanger_;
  std::shared_ptr<Exchanger::Job> job_;
  bool waited_ = false;
};

Exchanger* g_exchanger = nullptr;  // stopped before MPI_Finalize

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(bool threads) {
    if (threads) {
      exchanger_ = std::make_unique<Exchanger>();
      g_exchanger = exchanger_.get();
    }
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    MPI_Comm local = MPI_COMM_NULL;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
          "MPI_Comm_split_type");
    check(MPI_Comm_rank(local, &local_rank_), "MPI_Comm_rank");
    MPI_Comm_free(&local);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  Device device() const override { return Device::cpu(); }

  void all_reduce_sum(const TensorView& buffer) override {
    expect_host_floats("Communicator::all_reduce_sum", buffer);
    auto* p = static_cast<unsigned char*>(buffer.data());
    const std::int64_t n = buffer.numel();
    const auto size = static_cast<std::int64_t>(dtype_size(buffer.dtype()));
    for (std::int64_t at = 0; at < n; at += kChunk) {
      const int count = static_cast<int>(std::min(kChunk, n - at));
      void* chunk = p + at * size;
      check(sum_everywhere(chunk, count, mpi_type(buffer.dtype()), MPI_COMM_WORLD),
            "MPI_Reduce, MPI_Bcast");
    }
  }

  std::unique_ptr<PendingSum> all_reduce_sum_async(const TensorView& buffer) override {
    const char* where = "Communicator::all_reduce_sum_async";
    expect_host_floats(where, buffer);
    if (buffer.numel() > kChunk) {
      throw Error(where, "buffer", "at most 2^30 elements (DataParallel's buckets are smaller)",
                  std::to_string(buffer.numel()) + " elements");
    }
    if (exchanger_ != nullptr) {
      return std::make_unique<ThreadSum>(
          *exchanger_, exchanger_->submit(buffer.data(), static_cast<int>(buffer.numel()),
                                          mpi_type(buffer.dtype())));
    }
    return std::make_unique<MpiSum>(buffer.data(), static_cast<int>(buffer.numel()),
                                    mpi_type(buffer.dtype()), rank_);
  }

  void broadcast(const TensorView& buffer, int root) override {
    const char* where = "Communicator::broadcast";
    detail::expect_defined(where, "buffer", buffer);
    if (!buffer.device().is_cpu()) {
      throw Error(where, "buffer", "host memory (the MPI communicator's)",
                  "device " + buffer.device().str());
    }
    if (root < 0 || root >= size_) {
      throw Error(where, "root", "a rank in [0, " + std::to_string(size_) + ")",
                  std::to_string(root));
    }
    auto* p = static_cast<unsigned char*>(buffer.data());
    const auto bytes = static_cast<std::int64_t>(buffer.nbytes());
    for (std::int64_t at = 0; at < bytes; at += kChunk) {
      const int count = static_cast<int>(std::min(kChunk, bytes - at));
      check(MPI_Bcast(p + at, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
  }

  std::vector<std::string> all_gather(const std::string& text) override {
    if (text.size() > static_cast<std::size_t>(INT_MAX / size_)) {
      throw Error("Communicator::all_gather", "text", "at most 2^31 / size() bytes",
                  std::to_string(text.size()) + " bytes");
    }
    const int mine = static_cast<int>(text.size());
    std::vector<int> lengths(static_cast<std::size_t>(size_)), offsets(lengths.size());
    check(MPI_Allgather(&mine, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD),
          "MPI_Allgather");
    std::int64_t total = 0;
    for (std::size_t r = 0; r < lengths.size(); ++r) {
      offsets[r] = static_cast<int>(total);
      total += lengths[r];
    }
    if (total > INT_MAX) throw Error("recur: Communicator::all_gather: over 2^31 bytes in all");
    std::vector<char> all(static_cast<std::size_t>(total) + 1);
    check(MPI_Allgatherv(text.data(), mine, MPI_CHAR, all.data(), lengths.data(), offsets.data(),
                         MPI_CHAR, MPI_COMM_WORLD),
          "MPI_Allgatherv");
    std::vector<std::string> out;
    for (std::size_t r = 0; r < lengths.size(); ++r) {
      out.emplace_back(all.data() + offsets[r], static_cast<std::size_t>(lengths[r]));
    }
    return out;
  }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  std::unique_ptr<Exchanger> exchanger_;  // null without MPI_THREAD_MULTIPLE
};

void finalize_mpi() {
  if (g_exchanger != nullptr) g_exchanger->stop();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace

bool mpi_available() { return true; }

std::shared_ptr<Communicator> mpi_communicator() {
  static std::mutex mutex;
  static std::shared_ptr<Communicator> world;
  std::lock_guard<std::mutex> lock(mutex);
  if (world != nullptr) return world;
  int initialized = 0;
  check(MPI_Initialized(&initialized), "MPI_Initialized");
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    std::atexit(finalize_mpi);
  } else {
    check(MPI_Query_thread(&provided), "MPI_Query_thread");
  }
  world = std::make_shared<MpiCommunicator>(provided >= MPI_THREAD_MULTIPLE);
  return world;
}

}  // namespace recur
