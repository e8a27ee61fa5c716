// tests/test_param_groups.cpp: one optimizer over several modules (ParamGroup): the same
// steps as one optimizer per module with each group's learning rate and weight decay, one
// skip for all, zero_grad and gradients() over every group, a schedule moving every group,
// a checkpoint round trip of the groups' state, the errors; then the GPU against the CPU.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "test_util.h"

namespace recur::test {
namespace {

// Two "modules": a parameter buffer and its gradient buffer each.
struct Module {
  Tensor params, grads;
  Module(std::int64_t n, std::uint64_t seed, Device device = Device::cpu()) {
    Random rng(seed);
    params = Tensor::from_vector(rng.vector<float>(n), {n}, device);
    grads = Tensor::zeros({n}, DType::Float32, device);
  }
  void set_grads(std::uint64_t seed) {
    Random rng(seed);
    const std::vector<float> g = rng.vector<float>(grads.numel());
    grads.view().copy_from_host(g.data());
  }
};

// One Adam over two groups (the second with half the learning rate and its own weight
// decay) takes exactly the steps of two Adams with those settings, skip included.
TEST(ParamGroups, OneAdamEqualsOnePerModule) {
  Module a(37, 1), b(50, 2);
  Module a1(37, 1), b1(50, 2);
  AdamOptions o{2e-2, 0.9, 0.99, 1e-8, 0.01, true};
  Adam both({{"a", a.params, a.grads}, {"b", b.params, b.grads, 0.5, 0.1}}, o);
  AdamOptions ob = o;
  ob.lr = o.lr * 0.5;
  ob.weight_decay = 0.1;
  Adam only_a(a1.params.view(), o), only_b(b1.params.view(), ob);
  GradNorm norm;
  for (int step = 0; step < 5; ++step) {
    a.set_grads(10 + step);
    b.set_grads(20 + step);
    a1.set_grads(10 + step);
    b1.set_grads(20 + step);
    if (step == 2) {  // a NaN in one group skips every group
      const float nan = std::nanf("");
      for (Module* m : {&b, &b1}) {
        TensorView first(m->grads.data(), {1}, DType::Float32, Device::cpu());
        first.copy_from_host(&nan);
      }
    }
    clip_grad_norm(both.gradients(), 1e9, norm);
    both.step(&norm);
    GradNorm norm1;
    clip_grad_norm({a1.grads.view(), b1.grads.view()}, 1e9, norm1);
    only_a.step(a1.grads.view(), &norm1);
    only_b.step(b1.grads.view(), &norm1);
  }
  EXPECT_EQ(a.params.to_vector<float>(), a1.params.to_vector<float>());
  EXPECT_EQ(b.params.to_vector<float>(), b1.params.to_vector<float>());
  EXPECT_EQ(both.step_count(), 4);
  EXPECT_EQ(both.skipped_steps(), 1);
  const std::vector<OptimizerState> st = both.state();
  ASSERT_EQ(st.size(), 4u);
  EXPECT_EQ(st[0].name, "a.exp_avg");
  EXPECT_EQ(st[3].name, "b.exp_avg_sq");
  EXPECT_EQ(st[1].view.to_vector<float>(), only_a.exp_avg_sq().to_vector<float>());
}

TEST(ParamGroups, SgdWithMomentumEqualsOnePerModule) {
  Module a(20, 3), b(9, 4), a1(20, 3), b1(9, 4);
  SgdOptions o{0.1, 0.9, 0.0};
  Sgd both({{"a", a.params, a.grads, 2.0}, {"b", b.params, b.grads}}, o);
  SgdOptions oa = o;
  oa.lr = 0.2;
  Sgd only_a(a1.params.view(), oa), only_b(b1.params.view(), o);
  for (int step = 0; step < 3; ++step) {
    a.set_grads(30 + step);
    b.set_grads(40 + step);
    a1.set_grads(30 + step);
    b1.set_grads(40 + step);
    both.step();
    only_a.step(a1.grads.view());
    only_b.step(b1.grads.view());
  }
  EXPECT_EQ(a.params.to_vector<float>(), a1.params.to_vector<float>());
  EXPECT_EQ(b.params.to_vector<float>(), b1.params.to_vector<float>());
  EXPECT_EQ(both.state()[1].name, "b.momentum_buffer");
}

// A whole model: an Rnn, an Embedding and a Linear under one optimizer, one zero_grad, one
// clip, one step; a schedule moves every group's rate with the optimizer's.
TEST(ParamGroups, AWholeModelTrainsUnderOneOptimizer) {
  RnnConfig c;
  c.input_size = 6;
  c.hidden_size = 8;
  Rnn rnn(c);
  Linear head(8, 3);
  Adam opt({{"rnn", rnn.parameters(), rnn.gradients()},
            {"head", head.parameters(), head.gradients(), 0.1}},
           {1e-2});
  Random rng(5);
  const Tensor x = rng.tensor<float>({4, 2, 6});
  const std::vector<float> before = head.parameters().to_vector<float>();
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    for (const TensorView& g : opt.gradients()) {
      for (float v : g.to_vector<float>()) ASSERT_EQ(v, 0.0f);
    }
    const ForwardResult r = rnn.forward(x);
    const Tensor logits = head.forward(r.y);
    const Tensor dlogits = Tensor::from_vector(rng.vector<float>(logits.numel()), logits.shape());
    rnn.backward(head.backward(r.y, dlogits));
    GradNorm norm;
    clip_grad_norm(opt.gradients(), 1.0, norm);
    opt.step(&norm);
  }
  EXPECT_NE(head.parameters().to_vector<float>(), before);
  EXPECT_EQ(opt.groups()[1].name, "head");
  EXPECT_EQ(opt.groups()[1].lr_scale, 0.1);
  EXPECT_EQ(opt.groups()[0].weight_decay.value_or(-1.0), 0.0);
  LrScheduleOptions so;
  so.base_lr = 1e-2;
  so.decay = LrDecay::Step;
  so.step_size = 1;
  so.gamma = 0.5;
  LrSchedule schedule(so, {&opt});
  schedule.step();
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 5e-3);  // each group: this times its lr_scale
}

// The groups' state through a checkpoint (as one of CheckpointExtras' optimizers).
TEST(ParamGroups, StateGoesThroughACheckpoint) {
  RnnConfig c;
  c.input_size = 3;
  c.hidden_size = 4;
  Rnn rnn(c);
  Module m(11, 6);
  Adam opt({{"rnn", rnn.parameters(), rnn.gradients()}, {"m", m.params, m.grads}}, {1e-2});
  Random rng(7);
  rnn.forward(rng.tensor<float>({2, 2, 3}));
  rnn.backward(rng.tensor<float>({2, 2, 4}));
  m.set_grads(8);
  opt.step();
  const std::string path = ::testing::TempDir() + "recur_param_groups.safetensors";
  CheckpointExtras extras;
  extras.tensors = {{"m", m.params}};
  extras.optimizers = {{"model", &opt}};
  save_checkpoint(path, rnn, nullptr, 1, extras);
  Rnn rnn2(c);
  Module m2(11, 99);
  Adam opt2({{"rnn", rnn2.parameters(), rnn2.gradients()}, {"m", m2.params, m2.grads}}, {1e-2});
  CheckpointExtras into;
  into.tensors = {{"m", m2.params}};
  into.optimizers = {{"model", &opt2}};
  const CheckpointInfo info = load_checkpoint(path, rnn2, nullptr, into);
  EXPECT_NE(info.metadata.at("recur.optimizer.model").find("\"groups\""), std::string::npos);
  EXPECT_EQ(opt2.step_count(), 1);
  for (std::size_t i = 0; i < opt.state().size(); ++i) {
    EXPECT_EQ(opt2.state()[i].view.to_vector<float>(), opt.state()[i].view.to_vector<float>())
        << opt.state()[i].name;
  }
  EXPECT_EQ(m2.params.to_vector<float>(), m.params.to_vector<float>());
  std::remove(path.c_str());
}

TEST(ParamGroups, BadGroupsAreNamed) {
  Module a(4, 1), b(4, 2);
  EXPECT_EQ(error_of([&] { Adam opt(std::vector<ParamGroup>{}); }),
            "recur: Adam: argument 'groups': expected at least one ParamGroup, got none");
  EXPECT_EQ(error_of([&] {
              Adam opt({{"", a.params, a.grads}});
            }),
            "recur: Adam: argument 'groups[0].name': expected a non-empty name, got \"\"");
  EXPECT_EQ(error_of([&] {
              Adam opt({{"a", a.params, a.grads}, {"a", b.params, b.grads}});
            }),
            "recur: Adam: argument 'groups[1].name': expected a name no other group has, got "
            "\"a\", the name of groups[0]");
  EXPECT_EQ(error_of([&] {
              Adam opt({{"a", a.params, a.grads}, {"b", a.params, b.grads}});
            }),
            "recur: Adam: argument 'groups' parameters and gradients[1]': expected memory that no "
            "other span covers, got memory that overlaps groups' parameters and gradients[0]");
  Tensor short_grad = Tensor::zeros({3}, DType::Float32);
  EXPECT_EQ(error_of([&] {
              Sgd opt({{"a", a.params, short_grad}});
            }),
            "recur: Sgd: argument 'groups[0].gradients': expected 4 elements (as the parameters, "
            "[4]), got 3 elements [3]");
  EXPECT_EQ(error_of([&] {
              Sgd opt({{"a", a.params, a.grads, -1.0}});
            }),
            "recur: Sgd: argument 'groups[0].lr_scale': expected a finite number >= 0, got -1");
  Tensor doubles = Tensor::zeros({4}, DType::Float64), dgrads = Tensor::zeros({4}, DType::Float64);
  EXPECT_EQ(error_of([&] {
              Sgd opt({{"a", a.params, a.grads}, {"b", doubles, dgrads}});
            }),
            "recur: Sgd: argument 'groups[1].parameters': expected dtype float32 on cpu (those of "
            "groups[0]), got dtype float64 on cpu");
  Adam groups({{"a", a.params, a.grads}});
  EXPECT_EQ(error_of([&] { groups.step(a.grads.view()); }),
            "recur: Adam::step: argument 'gradients': expected none: this optimizer's groups hold "
            "their own (step(norm, stream)), got a TensorView");
  Adam single(b.params.view());
  EXPECT_EQ(error_of([&] { single.step(); }),
            "recur: Adam::step: argument 'gradients': expected the gradients of the parameters (an "
            "optimizer of one buffer is given them), got none");
  EXPECT_EQ(error_of([&] { single.zero_grad(); }),
            "recur: Adam::zero_grad: argument 'this': expected an optimizer of ParamGroups (one of "
            "a single buffer holds no gradients), got an optimizer of one buffer");
  EXPECT_TRUE(single.gradients().empty());
}

TEST(ParamGroups, GpuStepsAsTheCpu) {
  RECUR_REQUIRE_GPU();
  const Device gpu = Device::cuda(0);
  Module a(37, 1), b(50, 2), ga(37, 1, gpu), gb(50, 2, gpu);
  Adam cpu({{"a", a.params, a.grads}, {"b", b.params, b.grads, 0.5, 0.1}}, {1e-2});
  Adam dev({{"a", ga.params, ga.grads}, {"b", gb.params, gb.grads, 0.5, 0.1}}, {1e-2});
  for (int step = 0; step < 3; ++step) {
    for (Module* m : {&a, &ga}) m->set_grads(10 + step);
    for (Module* m : {&b, &gb}) m->set_grads(20 + step);
    GradNorm nc, ng;
    clip_grad_norm(cpu.gradients(), 1.0, nc);
    clip_grad_norm(dev.gradients(), 1.0, ng);
    cpu.step(&nc);
    dev.step(&ng);
  }
  const Tolerance tol = tolerance_for_depth<float>(16.0);
  EXPECT_TRUE(all_close(ga.params.to_vector<float>(), a.params.to_vector<float>(), tol));
  EXPECT_TRUE(all_close(gb.params.to_vector<float>(), b.params.to_vector<float>(), tol));
  dev.zero_grad();
  for (float v : gb.grads.to_vector<float>()) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace recur::test
