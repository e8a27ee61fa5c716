// tests/package/main.cpp: uses the installed recur through find_package.
#include <recur/recur.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  std::printf("recur %s\n", recur::version());
  if (argc > 1 && std::strcmp(argv[1], recur::version()) != 0) return 1;
  recur::RnnConfig c;
  c.cell = recur::CellKind::GruLinearBeforeReset;
  c.input_size = 3;
  c.hidden_size = 4;
  recur::Rnn rnn(c);
  recur::Tensor x = recur::Tensor::zeros({2, 1, 3}, recur::DType::Float32);
  recur::ForwardResult out = rnn.forward(x);
  return out.y.shape() == recur::Shape{2, 1, 4} ? 0 : 1;
}
