// tests/test_distributed.cpp: data-parallel training over MPI (recur/distributed.h). CTest
// runs it under mpirun -np 2 and -np 3 (oversubscribed on a 2-core machine); alone it is
// one rank. Every rank runs every test: N ranks on shards of a batch match one process on
// the whole batch, parameters stay bitwise equal across ranks, a NaN on one rank makes
// every rank skip, a resume from rank 0's checkpoint ends where an uninterrupted run
// ends, and bad setups are errors on every rank.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "dist/gpu_assignment.h"
#include "io_test_util.h"
#include "recur/checkpoint.h"
#include "recur/distributed.h"

namespace recur::test {
namespace {

Communicator& world() {
  static const std::shared_ptr<Communicator> c = mpi_communicator();
  return *c;
}

constexpr std::int64_t kT = 5, kB = 6, kI = 3, kH = 4;  // kB: shards for 1, 2 and 3 ranks

RnnConfig config() {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = kI;
  c.hidden_size = kH;
  c.num_layers = 2;
  c.dtype = DType::Float64;
  return c;
}

// Step `step`'s global batch: x [T, B, I] and the weights w [T, B, H] of J = mean over
// sequences of sum(y * w); the same on every rank.
struct Batch {
  std::vector<double> x, w;
};
Batch batch(int step) {
  Random rng(100 + static_cast<std::uint64_t>(step));
  return {rng.vector<double>(kT * kB * kI), rng.vector<double>(kT * kB * kH)};
}

// Sequences [b0, b0 + n) of a time-major [T, B, width] host tensor, times `scale`.
Tensor columns(const std::vector<double>& v, std::int64_t width, std::int64_t b0, std::int64_t n,
               double scale) {
  std::vector<double> out;
  for (std::int64_t t = 0; t < kT; ++t) {
    for (std::int64_t b = b0; b < b0 + n; ++b) {
      for (std::int64_t k = 0; k < width; ++k) {
        out.push_back(scale * v[static_cast<std::size_t>((t * kB + b) * width + k)]);
      }
    }
  }
  return Tensor::from_vector(out, {kT, n, width});
}

// One data-parallel step on this rank's shard: the shard's mean loss, its gradient
// averaged over the ranks, then the optimizer. `poison`: a NaN in this rank's gradient.
void parallel_step(Rnn& rnn, Optimizer& opt, DataParallel& dp, int step, bool poison = false) {
  const Communicator& c = dp.communicator();
  const std::int64_t n = kB / c.size(), b0 = c.rank() * n;
  const Batch g = batch(step);
  rnn.zero_grad();
  rnn.forward(columns(g.x, kI, b0, n, 1.0));
  rnn.backward(columns(g.w, kH, b0, n, 1.0 / static_cast<double>(n)));
  if (poison) {
    const double nan = std::nan("");
    TensorView(rnn.gradients().data(), {1}, DType::Float64, Device::cpu()).copy_from_host(&nan);
  }
  dp.ready(0);
  dp.finish();
  GradNorm norm;
  clip_grad_norm({rnn.gradients()}, 1.0, norm);
  opt.step(rnn.gradients(), &norm);
}

void whole_batch_step(Rnn& rnn, Optimizer& opt, int step) {
  const Batch g = batch(step);
  rnn.zero_grad();
  rnn.forward(columns(g.x, kI, 0, kB, 1.0));
  rnn.backward(columns(g.w, kH, 0, kB, 1.0 / static_cast<double>(kB)));
  GradNorm norm;
  clip_grad_norm({rnn.gradients()}, 1.0, norm);
  opt.step(rnn.gradients(), &norm);
}

TEST(Distributed, SumsBroadcastsAndGathers) {
  Communicator& c = world();
  const double n = c.size();
  Tensor x = Tensor::from_vector<double>({c.rank() + 1.0, 1.5}, {2});
  c.all_reduce_sum(x);
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{n * (n + 1) / 2, 1.5 * n}));
  Tensor ones = Tensor::from_vector(std::vector<float>(1000, 1.0f), {1000});
  std::unique_ptr<PendingSum> sum = c.all_reduce_sum_async(ones);
  sum->wait();
  EXPECT_EQ(ones.to_vector<float>(), std::vector<float>(1000, static_cast<float>(n)));
  Tensor y = Tensor::from_vector<std::int64_t>({c.rank() == 0 ? 7 : -1}, {1});
  c.broadcast(y, 0);
  EXPECT_EQ(y.to_vector<std::int64_t>()[0], 7);
  const std::vector<std::string> names = c.all_gather("rank" + std::to_string(c.rank()));
  ASSERT_EQ(static_cast<int>(names.size()), c.size());
  for (int r = 0; r < c.size(); ++r)
    EXPECT_EQ(names[static_cast<std::size_t>(r)], "rank" + std::to_string(r));
  EXPECT_GE(c.local_rank(), 0);
  EXPECT_TRUE(mpi_available());
}

TEST(Distributed, RanksTogetherMatchOneProcessOnTheWholeBatch) {
  Rnn dist(config(), Device::cpu(), 1), whole(config(), Device::cpu(), 1);
  Sgd opt_dist(dist.parameters(), {0.5}), opt_whole(whole.parameters(), {0.5});
  DataParallel dp(world(), {dist.gradients()}, 256);  // several buckets
  EXPECT_GT(dp.buckets(), 1u);
  for (int s = 0; s < 3; ++s) {
    parallel_step(dist, opt_dist, dp, s);
    whole_batch_step(whole, opt_whole, s);
  }
  // The shards' sums and the mean add in another order than one pass: rounding only.
  EXPECT_TRUE(all_close(dist.parameters().to_vector<double>(),
                        whole.parameters().to_vector<double>(),
                        tolerance_for_depth<double>(kT * kB * (kI + kH))));
  EXPECT_NE(dist.parameters().to_vector<double>(),
            Rnn(config(), Device::cpu(), 1).parameters().to_vector<double>());
}

TEST(Distributed, ParametersStayBitwiseEqualAcrossRanks) {
  Rnn rnn(config(), Device::cpu(), 2);
  Adam opt(rnn.parameters(), {1e-2});
  DataParallel dp(world(), {rnn.gradients()});
  for (int s = 0; s < 3; ++s) parallel_step(rnn, opt, dp, s);
  Tensor mine = Tensor::from_vector(rnn.parameters().to_vector<double>(), rnn.parameters().shape());
  Tensor rank0 = mine.clone();
  world().broadcast(rank0, 0);
  EXPECT_EQ(bytes_of(mine), bytes_of(rank0)) << "rank " << world().rank();
}

TEST(Distributed, ANaNOnOneRankMakesEveryRankSkip) {
  Rnn rnn(config(), Device::cpu(), 3);
  Adam opt(rnn.parameters(), {1e-2});
  DataParallel dp(world(), {rnn.gradients()});
  parallel_step(rnn, opt, dp, 0);
  const std::vector<double> before = rnn.parameters().to_vector<double>();
  parallel_step(rnn, opt, dp, 1, world().rank() == world().size() - 1);
  EXPECT_EQ(opt.skipped_steps(), 1) << "rank " << world().rank();
  EXPECT_EQ(rnn.parameters().to_vector<double>(), before);
  parallel_step(rnn, opt, dp, 2);  // and the run goes on
  EXPECT_EQ(opt.skipped_steps(), 1);
  EXPECT_NE(rnn.parameters().to_vector<double>(), before);
}

TEST(Distributed, AResumeFromRankZerosCheckpointEndsWhereAnUninterruptedRunEnds) {
  Communicator& c = world();
  Rnn straight(config(), Device::cpu(), 4), first(config(), Device::cpu(), 4);
  Adam opt_straight(straight.parameters(), {1e-2}), opt_first(first.parameters(), {1e-2});
  DataParallel dp_straight(c, {straight.gradients()}), dp_first(c, {first.gradients()});
  for (int s = 0; s < 4; ++s) parallel_step(straight, opt_straight, dp_straight, s);
  for (int s = 0; s < 2; ++s) parallel_step(first, opt_first, dp_first, s);
  // Rank 0 names the file and writes it; every rank then loads it.
  const std::string path = c.all_gather(::testing::TempDir() + "recur_distributed_" +
                                        std::to_string(::getpid()) + ".safetensors")[0];
  if (c.rank() == 0) save_checkpoint(path, first, &opt_first, 2);
  c.all_gather("");  // a barrier: the file is whole before anyone reads it
  Rnn resumed(config(), Device::cpu(), 99);
  Adam opt_resumed(resumed.parameters(), {1e-2});
  load_checkpoint(path, resumed, &opt_resumed);
  DataParallel dp_resumed(c, {resumed.gradients()});
  for (int s = 2; s < 4; ++s) parallel_step(resumed, opt_resumed, dp_resumed, s);
  EXPECT_EQ(bytes_of(resumed.parameters()), bytes_of(straight.parameters()));
  c.all_gather("");
  if (c.rank() == 0) std::remove(path.c_str());
}

TEST(Distributed, BadSetupsAreErrorsOnEveryRank) {
  Communicator& c = world();
  const bool differs = c.size() > 1 && c.rank() == c.size() - 1;
  const std::string mine = differs ? "hidden_size=5" : "hidden_size=4";
  if (c.size() > 1) {
    EXPECT_TRUE(
        throws_error([&] { c.expect_same("config", mine); },
                     {"Communicator::expect_same", "'config'", "rank 0 has \"hidden_size=4\"",
                      "rank " + std::to_string(c.size() - 1) + " has \"hidden_size=5\""}));
  }
  c.expect_same("config", "hidden_size=4");
  Rnn rnn(config(), Device::cpu(), 5);
  EXPECT_TRUE(
      throws_error([&] { DataParallel(c, {Tensor::zeros({3}, DType::Int32)}); },
                   {"DataParallel", "'gradients[0]'", "float32 or float64", "got dtype int32"}));
  DataParallel dp(c, {rnn.gradients()});
  EXPECT_TRUE(
      throws_error([&] { dp.ready(1); }, {"DataParallel::ready", "'i'", "[0, 1)", "got 1"}));
  dp.ready(0);
  EXPECT_TRUE(throws_error([&] { dp.ready(0); }, {"'i'", "not yet ready in this step"}));
  dp.finish();
  EXPECT_TRUE(throws_error([&] { c.broadcast(Tensor::zeros({1}, DType::Float32), c.size()); },
                           {"Communicator::broadcast", "'root'"}));
}

// Which GPU each rank takes, and where two would take one: a pure function of the ranks'
// reports, so it runs here on any machines. `machine(host, n)`: a rank that sees all n GPUs
// of its host.
detail::RankMachine machine(const std::string& host, int gpus) {
  detail::RankMachine m{host, {}};
  for (int g = 0; g < gpus; ++g) m.gpus.push_back("GPU-" + host + std::to_string(g));
  return m;
}

TEST(GpuAssignment, EveryRankItsLocalRanksGpuOrAnErrorNamingBoth) {
  const std::vector<detail::RankMachine> fits = {machine("a", 2), machine("b", 1), machine("a", 2)};
  EXPECT_EQ(detail::gpu_sharing_problem(fits), "");
  EXPECT_EQ(detail::local_index(fits, 2), 1);
  EXPECT_EQ(detail::local_device(fits, 2), 1);
  EXPECT_EQ(detail::local_index(fits, 1), 0);
  EXPECT_EQ(detail::gpu_sharing_problem({machine("a", 1), machine("b", 1), machine("a", 1)}),
            "rank 2 would take cuda:0 (GPU-a0) of a, which rank 0 has already (rank 2 sees 1 "
            "GPUs, and is local rank 1)");
  EXPECT_EQ(detail::gpu_sharing_problem({machine("a", 2), machine("a", 0)}),
            "rank 1 on a sees no GPU");
  // UUIDs not read: the device index stands for the GPU.
  EXPECT_EQ(detail::gpu_sharing_problem({{"a", {""}}, {"a", {""}}}),
            "rank 1 would take cuda:0 of a, which rank 0 has already (rank 1 sees 1 GPUs, and "
            "is local rank 1)");
}

// A launcher that gives each rank one GPU of its own (CUDA_VISIBLE_DEVICES per rank): every
// rank sees one device, cuda:0, and they are different GPUs; the same GPU given to two
// ranks is refused.
TEST(GpuAssignment, RanksGivenAGpuEachTakeTheirCuda0) {
  const std::vector<detail::RankMachine> given = {
      {"a", {"GPU-1"}}, {"a", {"GPU-2"}}, {"b", {"GPU-3"}}, {"a", {"GPU-4"}}};
  EXPECT_EQ(detail::gpu_sharing_problem(given), "");
  for (std::size_t r = 0; r < given.size(); ++r) EXPECT_EQ(detail::local_device(given, r), 0);
  EXPECT_EQ(detail::gpu_sharing_problem({{"a", {"GPU-1"}}, {"a", {"GPU-2"}}, {"a", {"GPU-2"}}}),
            "rank 2 would take cuda:0 (GPU-2) of a, which rank 1 has already (rank 2 sees 1 GPUs, "
            "and is local rank 2)");
  // Two ranks that see the same two GPUs take one each.
  EXPECT_EQ(detail::gpu_sharing_problem({{"a", {"GPU-1", "GPU-2"}}, {"a", {"GPU-1", "GPU-2"}}}),
            "");
}

// The NCCL communicator on this machine's GPUs: refused where the ranks outnumber them,
// else sums, broadcasts and a DataParallel step on a GPU Rnn agree with the MPI ones.
TEST(DistributedCuda, NcclSumsBroadcastsAndAveragesOnTheGpu) {
  RECUR_REQUIRE_GPU();
  Communicator& c = world();
  if (c.size() > cuda_device_count()) {  // one machine: more ranks than GPUs
    EXPECT_TRUE(throws_error([&] { nccl_communicator(c); },
                             {"nccl_communicator", "one GPU of its own", "which rank 0 has"}));
    return;
  }
  std::shared_ptr<Communicator> nccl = nccl_communicator(c);
  const Device gpu = nccl->device();
  EXPECT_EQ(gpu, Device::cuda(c.rank()));
  const double n = c.size();
  Tensor x = Tensor::from_vector<double>({c.rank() + 1.0, 1.5}, {2}, gpu);
  nccl->all_reduce_sum(x);
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{n * (n + 1) / 2, 1.5 * n}));
  Tensor ones = Tensor::from_vector(std::vector<float>(4096, 1.0f), {4096}, gpu);
  nccl->all_reduce_sum_async(ones)->wait();
  EXPECT_EQ(ones.to_vector<float>(), std::vector<float>(4096, static_cast<float>(n)));
  Tensor y = Tensor::from_vector<std::int64_t>({c.rank() == 0 ? 7 : -1}, {1}, gpu);
  nccl->broadcast(y, 0);
  EXPECT_EQ(y.to_vector<std::int64_t>()[0], 7);

  RnnConfig cfg = config();
  cfg.dtype = DType::Float32;
  Rnn on_gpu(cfg, gpu, 6), on_cpu(cfg, Device::cpu(), 6);
  Sgd opt_gpu(on_gpu.parameters(), {0.5}), opt_cpu(on_cpu.parameters(), {0.5});
  DataParallel dp_gpu(*nccl, {on_gpu.gradients()}, 512), dp_cpu(c, {on_cpu.gradients()}, 512);
  const std::int64_t shard = kB / c.size(), b0 = c.rank() * shard;
  const Batch g = batch(0);
  for (Rnn* rnn : {&on_gpu, &on_cpu}) {
    const Device d = rnn->device();
    rnn->forward(columns(g.x, kI, b0, shard, 1.0).to(DType::Float32).to(d));
    rnn->backward(
        columns(g.w, kH, b0, shard, 1.0 / static_cast<double>(shard)).to(DType::Float32).to(d));
  }
  dp_gpu.ready(0);
  dp_gpu.finish();
  dp_cpu.finish();
  EXPECT_TRUE(all_close(on_gpu.gradients().to_vector<float>(),
                        on_cpu.gradients().to_vector<float>(),
                        tolerance_for_depth<float>(kT * kB * (kI + kH))));
  opt_gpu.step(on_gpu.gradients());
  Tensor mine =
      Tensor::from_vector(on_gpu.parameters().to_vector<float>(), on_gpu.parameters().shape());
  Tensor rank0 = mine.clone();
  c.broadcast(rank0, 0);
  EXPECT_EQ(bytes_of(mine), bytes_of(rank0));  // bitwise equal across ranks
}

}  // namespace
}  // namespace recur::test
