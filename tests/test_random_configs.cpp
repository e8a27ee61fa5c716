// tests/test_random_configs.cpp: float64 gradient checks over random combinations of every
// option at once (cell, sizes, layers, directions, connection, bias, batch-first, dropout,
// variable lengths; unidirectional stacks as a wavefront in every other config), on top of
// the systematic grids of test_stack and test_batches.
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

}  // namespace
}  // namespace recur::test
