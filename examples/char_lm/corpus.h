// examples/char_lm/corpus.h: text in, character ids out.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

// A text as ids over its own alphabet (the sorted set of its bytes), split into a
// training and a validation part.
class Corpus {
 public:
  // `path`: a file, or a folder whose regular files are read in name order.
  explicit Corpus(const std::string& path, double validation_fraction = 0.1);

  int vocab_size() const { return static_cast<int>(alphabet_.size()); }
  char symbol(int id) const { return alphabet_[static_cast<std::size_t>(id)]; }
  int id(char c) const { return index_[static_cast<unsigned char>(c)]; }
  std::size_t train_size() const { return train_.size(); }
  std::size_t validation_size() const { return validation_.size(); }

  // B windows of T+1 characters from the training part, at random offsets: inputs
  // ids [T, B] (time-major) and next-character targets [T, B].
  void batch(std::mt19937_64& rng, std::int64_t steps, std::int64_t batch,
             std::vector<std::int32_t>& inputs, std::vector<std::int32_t>& targets) const;
  // The same from the validation part, window k of a fixed tiling (deterministic).
  void validation_batch(std::int64_t k, std::int64_t steps, std::int64_t batch,
                        std::vector<std::int32_t>& inputs,
                        std::vector<std::int32_t>& targets) const;

 private:
  std::string alphabet_;
  std::vector<int> index_ = std::vector<int>(256, -1);
  std::vector<std::int32_t> train_, validation_;
};
