// recur/distributed.h: data-parallel training. Each of N processes (ranks, started by
// mpirun) runs the same model on its shard of the batch; DataParallel averages their
// gradients in buckets, each started as soon as the gradients in it are complete, so the
// exchange overlaps the rest of backward. After finish() every rank holds the same mean
// gradient, bit for bit, so the gradient norm, the clip, the non-finite flag (a NaN on one
// rank is a NaN everywhere: every rank skips that step together) and the optimizer step
// agree, and parameters stay bitwise equal across ranks.
//
//   auto comm = recur::mpi_communicator();              // MPI_Init on first use
//   recur::DataParallel dp(*comm, opt.gradients());     // buckets of <= 25 MiB
//   dp.broadcast(opt.parameters());                     // rank 0's initial weights
//   ... forward on this rank's shard; loss as the shard's mean ...
//   dy = head.backward(r.y, ce.dlogits);  dp.ready(2);   // the head's gradients are done
//   g = rnn.backward(dy);                 dp.ready(1);
//   embed.backward(ids, g.dx);            dp.ready(0);
//   dp.finish();                                         // the mean over the ranks
//   recur::clip_grad_norm(opt.gradients(), 1.0, norm);  opt.step(&norm);
//
// Rank 0 writes checkpoints and every rank loads them (then all hold the same state).
// Dropout masks and data shards should be keyed by (seed, step, rank): e.g.
// rnn.set_dropout_seed(seed + rank), and shard r of each global batch.
//
// The MPI communicator works in host memory, for CPU models; it comes from Debian's
// OpenMPI, found when recur is built. Without it, mpi_communicator() throws a
// recur::Error saying that data-parallel training is unavailable. GPU models take the NCCL
// communicator, bootstrapped by the MPI one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "recur/device.h"
#include "recur/export.h"
#include "recur/tensor.h"

namespace recur {

// A sum started by Communicator::all_reduce_sum_async; wait() finishes it (once).
class RECUR_API PendingSum {
 public:
  virtual ~PendingSum() = default;
  virtual void wait() = 0;
};

class RECUR_API Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // among the ranks of this machine
  virtual Device device() const = 0;   // where the buffers live: the CPU for MPI

  // Sums `buffer` (float32 or float64, contiguous, on device()) over the ranks, in
  // place; every rank calls with the same shape and dtype. The result is the same bits on
  // every rank (reduced at rank 0, then broadcast).
  virtual void all_reduce_sum(const TensorView& buffer) = 0;
  // The same, started now; `buffer` must stay alive and untouched until wait().
  virtual std::unique_ptr<PendingSum> all_reduce_sum_async(const TensorView& buffer) = 0;
  // Rank `root`'s buffer into every rank's (any dtype).
  virtual void broadcast(const TensorView& buffer, int root) = 0;
  // Every rank's `text`, in rank order.
  virtual std::vector<std::string> all_gather(const std::string& text) = 0;

  // A recur::Error on every rank unless all ranks give the same `text` (e.g. a model's
  // config), naming `what`, the first rank that differs and both texts.
  void expect_same(const std::string& what, const std::string& text);
};

// True when recur was built with MPI.
RECUR_API bool mpi_available();
// The MPI communicator of every process of this job (MPI_COMM_WORLD), initialising MPI on
// the first call (asking for MPI_THREAD_MULTIPLE) and finalising it at exit. Where MPI
// grants MULTIPLE, all_reduce_sum_async runs on a thread of its own, so that a bucket's sum
// proceeds while backward computes; otherwise it is a non-blocking reduction that the MPI
// library advances only inside MPI calls (in wait()). Throws recur::Error when recur was
// built without MPI.
RECUR_API std::shared_ptr<Communicator> mpi_communicator();

// The NCCL communicator of the ranks of `bootstrap` (mpi_communicator()), in GPU memory:
// each rank takes the GPU of its local rank (cuda:local_rank), and NCCL's unique id
// travels from rank 0 through `bootstrap`, which must outlive the result. Sums and
// broadcasts are queued on the legacy default stream (ordered with the modules' and an
// Rnn's work); all_reduce_sum_async runs on a stream of its own, after the work queued so
// far, and PendingSum::wait() makes the legacy default stream wait for it on the device.
// Throws recur::Error, the same on every rank, when a machine runs more ranks than it has
// GPUs (naming the rank that would take a GPU another has), and when there is no CUDA
// backend or rank 0 cannot load NCCL (libnccl.so.2).
RECUR_API std::shared_ptr<Communicator> nccl_communicator(Communicator& bootstrap);

// Averages gradient buffers over the ranks of a communicator, in buckets.
class RECUR_API DataParallel {
 public:
  // gradients: the buffers to average (e.g. Optimizer::gradients()), each float32 or
  // float64, contiguous, on comm.device(), alive while this object is. Each is cut into
  // buckets of at most bucket_bytes (PyTorch DDP's 25 MiB by default).
  DataParallel(Communicator& comm, std::vector<TensorView> gradients,
               std::size_t bucket_bytes = std::size_t{25} << 20);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // gradients[i] is complete for this step: its buckets' sums start now. Once per step.
  void ready(std::size_t i);
  // Starts the sums not yet started, waits for all, and divides by size(): every rank
  // then holds the ranks' mean gradient (the same bits everywhere). Ends the step.
  void finish();
  // Rank 0's tensors into every rank's (initial parameters, or a state only rank 0 read).
  void broadcast(const std::vector<TensorView>& tensors);

  std::size_t buckets() const;
  Communicator& communicator() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recur
