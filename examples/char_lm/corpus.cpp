// examples/char_lm/corpus.cpp: reading the text and cutting batches.
#include "corpus.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string read_text(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) return read_file(path);
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(path)) {
    if (e.is_regular_file() && !e.is_symlink()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::string text;
  for (const fs::path& f : files) text += read_file(f) + "\n";
  return text;
}

}  // namespace

Corpus::Corpus(const std::string& path, double validation_fraction) {
  const std::string text = read_text(path);
  if (text.size() < 1000) throw std::runtime_error(path + ": too little text to train on");
  const std::set<char> symbols(text.begin(), text.end());
  alphabet_.assign(symbols.begin(), symbols.end());
  for (std::size_t i = 0; i < alphabet_.size(); ++i) {
    index_[static_cast<unsigned char>(alphabet_[i])] = static_cast<int>(i);
  }
  const std::size_t split =
      static_cast<std::size_t>(static_cast<double>(text.size()) * (1.0 - validation_fraction));
  for (std::size_t i = 0; i < text.size(); ++i) {
    (i < split ? train_ : validation_).push_back(id(text[i]));
  }
}

void Corpus::batch(std::mt19937_64& rng, std::int64_t steps, std::int64_t batch,
                   std::vector<std::int32_t>& inputs, std::vector<std::int32_t>& targets) const {
  inputs.resize(static_cast<std::size_t>(steps * batch));
  targets.resize(inputs.size());
  std::uniform_int_distribution<std::size_t> start(0, train_.size() - steps - 2);
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::size_t s = start(rng);
    for (std::int64_t t = 0; t < steps; ++t) {
      inputs[t * batch + b] = train_[s + t];
      targets[t * batch + b] = train_[s + t + 1];
    }
  }
}

void Corpus::validation_batch(std::int64_t k, std::int64_t steps, std::int64_t batch,
                              std::vector<std::int32_t>& inputs,
                              std::vector<std::int32_t>& targets) const {
  inputs.resize(static_cast<std::size_t>(steps * batch));
  targets.resize(inputs.size());
  const std::size_t windows = (validation_.size() - 1) / static_cast<std::size_t>(steps);
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::size_t s = ((k * batch + b) % windows) * static_cast<std::size_t>(steps);
    for (std::int64_t t = 0; t < steps; ++t) {
      inputs[t * batch + b] = validation_[s + t];
      targets[t * batch + b] = validation_[s + t + 1];
    }
  }
}
