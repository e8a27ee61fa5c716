// tests/test_random_configs.cpp: float64 gradient checks over random combinations of every
// option at once (cell, sizes, layers, directions, connection, bias, batch-first, dropout,
// variable lengths; unidirectional stacks as a wavefront in every other config), on top of
// the systematic grids of test_stack and test_batches.
#include "gradcheck_util.h"

namespace recur::test {
namespace {

TEST(RandomConfigs, EveryGradientMatchesFiniteDifferences) {
  Random rng(2024);
  auto pick = [&](int n) { return static_cast<int>(rng.uniform(0, n)); };
  for (int it = 0; it < 200; ++it) {
    RnnConfig c;
    c.cell = static_cast<CellKind>(pick(6));
    c.hidden_size = 1 + pick(3);
    c.num_layers = 1 + pick(3);
    c.bidirectional = pick(2) == 1;
    c.connection = static_cast<Connection>(pick(4));
    const std::int64_t dh = (c.bidirectional ? 2 : 1) * c.hidden_size;
    c.input_size = pick(2) == 1 ? dh : 1 + pick(4);
    const bool needs_width =
        c.connection == Connection::Residual || c.connection == Connection::Highway;
    if (needs_width && c.num_layers == 1) c.input_size = dh;  // else a config error
    c.bias = pick(4) != 0;
    c.dtype = DType::Float64;
    c.batch_first = pick(2) == 1;
    c.dropout = pick(3) == 0 ? 0.3 : 0.0;
    const std::int64_t steps = 1 + pick(5), batch = 1 + pick(4);
    std::vector<std::int64_t> lengths;
    if (pick(2) == 1) {
      for (std::int64_t b = 0; b < batch; ++b) lengths.push_back(1 + pick(static_cast<int>(steps)));
    }
    SCOPED_TRACE(::testing::Message()
                 << "config " << it << ": " << to_string(c.cell) << " I=" << c.input_size
                 << " H=" << c.hidden_size << " L=" << c.num_layers << " bi=" << c.bidirectional
                 << " " << to_string(c.connection) << " bias=" << c.bias
                 << " batch_first=" << c.batch_first << " dropout=" << c.dropout << " T=" << steps
                 << " B=" << batch << " lengths=" << lengths.size() << " cpu_wavefront=" << (it % 2)
                 << " x_hp=" << (it % 4 < 2));
    Rnn rnn(c, Device::cpu(), static_cast<std::uint64_t>(it));
    run_as_wavefront(rnn, it % 2 == 1);                 // unidirectional stacks: both schedules
    keep_hp_beside_x_from(rnn, it % 4 < 2 ? 0 : 2048);  // LSTM: beside x, or not (small sizes)
    check_all_gradients(rnn, steps, batch, 1000 + static_cast<std::uint64_t>(it), lengths,
                        c.dropout > 0);
    if (::testing::Test::HasFailure()) return;  // the first failing config is enough
  }
}

}  // namespace
}  // namespace recur::test
