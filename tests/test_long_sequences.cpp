// tests/test_long_sequences.cpp: sequences far past cuDNN's T <= 65535. One call of a
// million steps trains; truncated BPTT over a million steps in chunks, the states carried
// from chunk to chunk, keeps its memory bounded; chunked forwards carry exactly the states
// of one long forward. On the CPU, and on a GPU where there is one.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "memory.h"
#include "test_util.h"

namespace recur::test {
namespace {

RnnConfig lstm(std::int64_t input, std::int64_t hidden) {
  RnnConfig c;
  c.cell = CellKind::Lstm;
  c.input_size = input;
  c.hidden_size = hidden;
  return c;
}

std::int64_t live_bytes(Device d) {
  const detail::LiveAllocations a = detail::live_allocations();
  return d.is_cpu() ? a.host_bytes : a.cuda_bytes;
}
std::int64_t peak_bytes(Device d) {
  const detail::LiveAllocations a = detail::live_allocations();
  return d.is_cpu() ? a.host_peak_bytes : a.cuda_peak_bytes;
}

bool all_finite(const TensorView& t) {
  for (float v : t.to_vector<float>()) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

void one_call_of_a_million_steps(Device device) {
  const std::int64_t T = 1000000, B = 1;
  Rnn rnn(lstm(1, 4), device, 3);
  Random rng(4);
  Tensor x = rng.tensor<float>({T, B, 1}, device);
  ForwardResult r = rnn.forward(x);
  ASSERT_EQ(r.y.shape(), (Shape{T, B, 4}));
  BackwardResult g = rnn.backward(r.y);  // J = |y|^2 / 2
  EXPECT_TRUE(all_finite(r.h_n) && all_finite(g.dh0) && all_finite(rnn.gradients()));
  double norm = 0;
  for (float v : rnn.gradients().to_vector<float>()) norm += static_cast<double>(v) * v;
  EXPECT_GT(norm, 0.0);
}

// Chunks of `chunk` steps, each one forward (from the last chunk's h_n, c_n), one backward
// (J = |y|^2 / 2 within the chunk: the truncation) and an SGD step.
void truncated_bptt(Device device, std::int64_t chunks, std::int64_t chunk) {
  const std::int64_t B = 2, I = 2, H = 8;
  Rnn rnn(lstm(I, H), device, 5);
  Sgd opt(rnn.parameters(), {1e-4});
  Random rng(6);
  Tensor h, c;
  std::int64_t settled = -1, settled_peak = -1;
  for (std::int64_t k = 0; k < chunks; ++k) {
    Tensor x = rng.tensor<float>({chunk, B, I}, device);
    ForwardOptions fo;
    fo.h0 = h;
    fo.c0 = c;
    ForwardResult r = rnn.forward(x, fo);
    BackwardResult g = rnn.backward(r.y);
    opt.step(rnn.gradients());
    rnn.zero_grad();
    h = std::move(r.h_n);
    c = std::move(r.c_n);
    if (k == 1) {  // the workspaces of one chunk's shape exist from here on
      detail::reset_peak_bytes();
      settled = live_bytes(device);
    } else if (k > 1 && (k % 50 == 0 || k == chunks - 1)) {
      ASSERT_EQ(live_bytes(device), settled) << "chunk " << k;
      if (settled_peak < 0) settled_peak = peak_bytes(device);
      ASSERT_EQ(peak_bytes(device), settled_peak) << "chunk " << k;
    }
  }
  EXPECT_GT(settled, 0);
  EXPECT_TRUE(all_finite(h) && all_finite(c) && all_finite(rnn.parameters()));
}

// Forwards of `chunk` steps carrying h_n, c_n give one T-step forward's final states and
// outputs (the same recurrence, the same rounding: equal to a few ulps per step at most).
void chunks_carry_the_states(Device device) {
  const std::int64_t T = 20000, chunk = 1000, B = 3, I = 2, H = 5;
  Rnn rnn(lstm(I, H), device, 7);
  Random rng(8);
  const std::vector<float> xs = rng.vector<float>(T * B * I);
  ForwardOptions inference;
  inference.mode = Mode::Inference;
  ForwardResult whole = rnn.forward(Tensor::from_vector(xs, {T, B, I}, device), inference);
  Tensor h, c;
  std::vector<float> y;
  for (std::int64_t t0 = 0; t0 < T; t0 += chunk) {
    const std::vector<float> part(xs.begin() + t0 * B * I, xs.begin() + (t0 + chunk) * B * I);
    ForwardOptions fo = inference;
    fo.h0 = h;
    fo.c0 = c;
    ForwardResult r = rnn.forward(Tensor::from_vector(part, {chunk, B, I}, device), fo);
    const std::vector<float> yp = r.y.to_vector<float>();
    y.insert(y.end(), yp.begin(), yp.end());
    h = std::move(r.h_n);
    c = std::move(r.c_n);
  }
  // A contraction's errors do not grow with T: the tolerance of one step's depth.
  const Tolerance tol = tolerance_for_depth<float>(I + H, 16.0);
  EXPECT_TRUE(all_close(h.to_vector<float>(), whole.h_n.to_vector<float>(), tol));
  EXPECT_TRUE(all_close(c.to_vector<float>(), whole.c_n.to_vector<float>(), tol));
  EXPECT_TRUE(all_close(y, whole.y.to_vector<float>(), tol));
}

TEST(LongSequences, OneCallOfAMillionStepsTrains) { one_call_of_a_million_steps(Device::cpu()); }
TEST(LongSequences, TruncatedBpttOverAMillionStepsKeepsMemoryBounded) {
  truncated_bptt(Device::cpu(), 200, 5000);
}
TEST(LongSequences, ChunkedForwardsCarryTheStatesOfOneLongForward) {
  chunks_carry_the_states(Device::cpu());
}

TEST(LongSequencesCuda, AMillionStepsInOneCallAndInChunks) {
  RECUR_REQUIRE_GPU();
  one_call_of_a_million_steps(Device::cuda(0));
  truncated_bptt(Device::cuda(0), 1000, 1000);
  chunks_carry_the_states(Device::cuda(0));
}

}  // namespace
}  // namespace recur::test
