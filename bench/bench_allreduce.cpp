// bench/bench_allreduce.cpp: what data-parallel training's exchange costs on this machine,
// under mpirun (recur/distributed.h, the MPI communicator):
//   1. the sum of one bucket across the ranks (reduce at rank 0, then broadcast) for
//      sizes from 4 KiB to 64 MiB: time and bus bandwidth, 2 (N-1)/N * bytes / time, the
//      figure NCCL's tests report;
//   2. one training step of a model (an LSTM stack and its head) three ways: alone (no
//      exchange), with the gradients exchanged after backward (finish() only), and with
//      each module's buckets started as soon as its backward is done (ready() hooks):
//      how much of the exchange the overlap hides.
// Medians of --reps; rank 0 prints. Usage: mpirun -np 2 recur_bench_allreduce [--reps N]
#include <recur/recur.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace recur;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) try {
  int reps = 9;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--reps") reps = std::stoi(argv[++i]);
  }
  std::shared_ptr<Communicator> comm = mpi_communicator();
  const int n = comm->size();
  const bool lead = comm->rank() == 0;
  if (lead) std::printf("ranks %d\n\nbucket sum (reduce at rank 0 + broadcast), float32\n", n);
  if (lead) std::printf("%10s %12s %14s\n", "bytes", "time us", "bus GB/s");
  for (std::int64_t bytes = 4096; bytes <= (std::int64_t{64} << 20); bytes *= 4) {
    Tensor buffer = Tensor::zeros({bytes / 4}, DType::Float32);
    std::vector<double> times;
    for (int r = 0; r < reps + 1; ++r) {
      comm->all_gather("");  // start together
      const auto t = std::chrono::steady_clock::now();
      comm->all_reduce_sum(buffer);
      if (r > 0) times.push_back(seconds_since(t));
    }
    const double s = median(times);
    if (lead) {
      std::printf("%10lld %12.1f %14.3f\n", static_cast<long long>(bytes), s * 1e6,
                  2.0 * (n - 1) / n * static_cast<double>(bytes) / s / 1e9);
    }
  }

  // A step: Embedding-free LSTM stack (2 x 512) and a Linear head, T=32, B=16.
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = 256;
  c.hidden_size = 512;
  c.num_layers = 2;
  Rnn rnn(c, Device::cpu(), 1);
  Linear head(512, 1024, true, DType::Float32, Device::cpu(), 2);
  std::vector<float> xs(32 * 16 * 256, 0.01f), ws(32 * 16 * 1024, 0.001f);
  const Tensor x = Tensor::from_vector(xs, {32, 16, 256});
  const Tensor dlogits = Tensor::from_vector(ws, {32, 16, 1024});
  DataParallel dp(*comm, {head.gradients(), rnn.gradients()});
  const double grad_mib =
      static_cast<double>(head.gradients().nbytes() + rnn.gradients().nbytes()) / (1 << 20);
  auto step = [&](int how) {  // 0 alone, 1 exchange after backward, 2 overlapped
    rnn.zero_grad();
    head.zero_grad();
    const ForwardResult r = rnn.forward(x);
    head.forward(r.y);
    const Tensor dy = head.backward(r.y, dlogits);
    if (how == 2) dp.ready(0);
    rnn.backward(dy);
    if (how == 2) dp.ready(1);
    if (how != 0) dp.finish();
  };
  if (lead) {
    std::printf("\none step, 2 x LSTM-512 + head 512 x 1024, T=32 B=16, %.1f MiB of gradients\n",
                grad_mib);
  }
  const char* names[] = {"compute alone", "exchange after backward", "exchange overlapped"};
  std::vector<double> times[3];
  for (int r = 0; r < reps + 1; ++r) {  // the three ways alternate, so that drift hits all
    for (int how = 0; how < 3; ++how) {
      comm->all_gather("");
      const auto t = std::chrono::steady_clock::now();
      step(how);
      if (r > 0) times[how].push_back(seconds_since(t));
    }
  }
  const double alone = median(times[0]);
  for (int how = 0; how < 3 && lead; ++how) {
    const double s = median(times[how]);
    std::printf("%-26s %9.2f ms  (%+.2f ms against compute alone)\n", names[how], s * 1e3,
                (s - alone) * 1e3);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "recur_bench_allreduce: %s\n", e.what());
  return 1;
}
