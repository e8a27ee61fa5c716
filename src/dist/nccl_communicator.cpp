// src/dist/nccl_communicator.cpp: the Communicator of recur/distributed.h over NCCL, in GPU
// memory, through the CUDA backend's NcclLink (src/cuda/nccl_link.cpp); bootstrapped by
// another communicator (MPI), which carries NCCL's unique id and the texts of all_gather.
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "../cuda_backend.h"
#include "../validate.h"
#include "gpu_assignment.h"
#include "recur/distributed.h"
#include "recur/error.h"

namespace recur {
namespace {

void expect_device_floats(const char* where, const TensorView& buffer, Device device) {
  detail::expect_float_tensor(where, "buffer", buffer);
  if (buffer.device() != device) {
    throw Error(where, "buffer", "device " + device.str() + " (the NCCL communicator's)",
                "device " + buffer.device().str());
  }
}

class NcclSum final : public PendingSum {
 public:
  NcclSum(detail::NcclLink& link, int ticket, int device)
      : link_(link), ticket_(ticket), device_(device) {}
  ~NcclSum() override {
    try {
      wait();
    } catch (...) {  // a destructor does not throw
    }
  }
  void wait() override {
    if (done_) return;
    done_ = true;
    detail::CudaDeviceScope scope(device_);
    link_.wait(ticket_, detail::require_cuda_backend("PendingSum::wait").legacy_default_stream());
  }

 private:
  detail::NcclLink& link_;
  int ticket_;
  int device_;
  bool done_ = false;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& bootstrap, int local_rank, std::unique_ptr<detail::NcclLink> link)
      : bootstrap_(bootstrap), device_(Device::cuda(local_rank)), link_(std::move(link)) {}

  int rank() const override { return bootstrap_.rank(); }
  int size() const override { return bootstrap_.size(); }
  int local_rank() const override { return device_.index; }
  Device device() const override { return device_; }

  // Queued on the legacy default stream, ordered with the modules' and an Rnn's work.
  void all_reduce_sum(const TensorView& buffer) override {
    expect_device_floats("Communicator::all_reduce_sum", buffer, device_);
    detail::CudaDeviceScope scope(device_.index);
    link_->sum(buffer.data(), buffer.numel(), buffer.dtype(), stream());
  }
  std::unique_ptr<PendingSum> all_reduce_sum_async(const TensorView& buffer) override {
    expect_device_floats("Communicator::all_reduce_sum_async", buffer, device_);
    detail::CudaDeviceScope scope(device_.index);
    const int ticket = link_->sum_async(buffer.data(), buffer.numel(), buffer.dtype(), stream());
    return std::make_unique<NcclSum>(*link_, ticket, device_.index);
  }
  void broadcast(const TensorView& buffer, int root) override {
    const char* where = "Communicator::broadcast";
    detail::expect_defined(where, "buffer", buffer);
    if (buffer.device() != device_) {
      throw Error(where, "buffer", "device " + device_.str() + " (the NCCL communicator's)",
                  "device " + buffer.device().str());
    }
    if (root < 0 || root >= size()) {
      throw Error(where, "root", "a rank in [0, " + std::to_string(size()) + ")",
                  std::to_string(root));
    }
    detail::CudaDeviceScope scope(device_.index);
    link_->broadcast(buffer.data(), buffer.nbytes(), root, stream());
  }
  std::vector<std::string> all_gather(const std::string& text) override {
    return bootstrap_.all_gather(text);
  }

 private:
  static void* stream() {
    return detail::require_cuda_backend("NCCL communicator").legacy_default_stream();
  }

  Communicator& bootstrap_;
  Device device_;
  std::unique_ptr<detail::NcclLink> link_;
};

}  // namespace

std::shared_ptr<Communicator> nccl_communicator(Communicator& bootstrap) {
  const char* where = "nccl_communicator";
  if (!bootstrap.device().is_cpu()) {
    throw Error(where, "bootstrap", "a host communicator (mpi_communicator())",
                "one on " + bootstrap.device().str());
  }
  // Every rank decides alike from what all report, so none goes on into NCCL alone.
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  // A line for the machine, then one for each GPU this rank sees: its UUID.
  std::string report = host;
  detail::CudaBackend* backend = detail::cuda_backend();
  const int count = cuda_device_count();
  for (int d = 0; d < count; ++d) report += "\n" + backend->device_uuid(d);
  std::vector<detail::RankMachine> ranks;
  for (const std::string& r : bootstrap.all_gather(report)) {
    std::size_t cut = r.find('\n');
    detail::RankMachine machine{r.substr(0, cut), {}};
    while (cut != std::string::npos) {
      const std::size_t next = r.find('\n', cut + 1);
      machine.gpus.push_back(r.substr(cut + 1, next == std::string::npos ? next : next - cut - 1));
      cut = next;
    }
    ranks.push_back(std::move(machine));
  }
  const std::string problem = detail::gpu_sharing_problem(ranks);
  if (!problem.empty()) {
    throw Error(where, "bootstrap", "one GPU of its own for every rank", problem);
  }
  const int local = detail::local_device(ranks, static_cast<std::size_t>(bootstrap.rank()));
  detail::CudaBackend& cuda = detail::require_cuda_backend(where);
  // Every rank says whether it could make its link: a rank that failed alone, after the
  // others entered NCCL's setup, would leave them waiting forever.
  std::string why;
  const bool usable = cuda.nccl_usable(local, &why);
  const std::vector<std::string> ready = bootstrap.all_gather(usable        ? std::string()
                                                              : why.empty() ? "NCCL unusable"
                                                                            : why);
  for (std::size_t r = 0; r < ready.size(); ++r) {
    if (!ready[r].empty()) {
      throw Error(where, "bootstrap", "NCCL usable on every rank",
                  "rank " + std::to_string(r) + ": " + ready[r]);
    }
  }
  // Rank 0's unique id, or its reason for having none, travels to every rank, marked so
  // that no rank takes one for the other.
  std::vector<char> id;
  const bool have = bootstrap.rank() != 0 || cuda.nccl_unique_id(&id, &why);
  const std::string sent =
      bootstrap.all_gather(have ? "id:" + std::string(id.begin(), id.end()) : "no id: " + why)[0];
  if (sent.compare(0, 3, "id:") != 0) {
    throw Error(where, "bootstrap", "an NCCL unique id from rank 0", "rank 0: " + sent.substr(7));
  }
  id.assign(sent.begin() + 3, sent.end());
  detail::CudaDeviceScope scope(local);
  return std::make_shared<NcclCommunicator>(
      bootstrap, local, cuda.nccl_link(local, id, bootstrap.rank(), bootstrap.size()));
}

}  // namespace recur
