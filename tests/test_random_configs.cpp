// tests/test_random_configs.cpp: float64 gradient checks over random combinations of every
// option at once (cell, sizes, layers, directions, connection, bias, batch-first, dropout,
// variable lengths, the LSTM's projection; unidirectional stacks as a wavefront in every
// other config), on top of the systematic grids of test_stack and test_batches.
#include "gradcheck_util.h"

namespace recur::test {
namespace {

TEST(RandomConfigs, EveryGradientMatchesFiniteDifferences) {
  Random rng(2024);
  RandomSpace space;
  space.cells = {CellKind::RnnTanh,
                 CellKind::RnnRelu,
                 CellKind::RnnSigmoid,
                 CellKind::Lstm,
                 CellKind::GruLinearBeforeReset,
                 CellKind::GruResetBeforeProduct};
  for (int it = 0; it < 200; ++it) {
    check_random_case(random_case(rng, space), it, 1000 + static_cast<std::uint64_t>(it));
    if (::testing::Test::HasFailure()) return;  // the first failing config is enough
  }
}

// The projected LSTM (proj_size) with every other option: the Projection kernels, W_hr's
// per-step GEMMs and dW_hr, P-wide h states in the stacks' connections and wavefronts.
TEST(RandomConfigs, ProjectedLstmGradientsMatchFiniteDifferences) {
  Random rng(2027);
  RandomSpace space;
  space.cells = {CellKind::Lstm};
  space.hidden_min = 2;
  space.projection = true;
  for (int it = 0; it < 200; ++it) {
    check_random_case(random_case(rng, space), it, 5000 + static_cast<std::uint64_t>(it));
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace recur::test
