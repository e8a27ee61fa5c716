// tests/test_fuzz_regressions.cpp: replays the kept fuzz inputs (tests/fuzz/regressions/,
// and the seed corpus) through the fuzz targets' own per-input functions in every build.
//
// Each input runs in a child process, so that one that crashes, overflows the stack or
// trips a sanitizer fails its own check, naming the file, instead of ending the test. The
// accepted outcomes are those of the fuzzers: success, or recur::Error. There is no list of
// inputs allowed to fail: a kept input that fails is a bug to fix before it lands.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz/fuzz_inputs.h"
#include "recur/checkpoint.h"
#include "recur/optim.h"
#include "recur/rnn.h"

namespace {

namespace fs = std::filesystem;
using Input = int (*)(const std::uint8_t*, std::size_t);

const fs::path kFuzzDir = RECUR_FUZZ_DIR;

std::vector<unsigned char> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The files of a folder, sorted (an empty list if it is missing).
std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Runs `input` over the file's bytes in a child process; "" when it ended in success or
// recur::Error, else what happened.
std::string replay(Input input, const fs::path& path) {
  const std::vector<unsigned char> bytes = read_bytes(path);
  std::fflush(nullptr);  // the child's exit() must not print the parent's buffers again
  const pid_t pid = ::fork();
  if (pid < 0) return std::string("fork failed: ") + std::strerror(errno);
  if (pid == 0) {
    ::alarm(120);  // a hang is a finding too (SIGALRM)
    try {
      input(bytes.data(), bytes.size());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: not a recur::Error escaped: %s\n", path.c_str(), e.what());
      std::exit(3);
    } catch (...) {
      std::exit(4);
    }
    std::exit(0);  // exit(), not _exit(): LeakSanitizer checks at exit
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    switch (WEXITSTATUS(status)) {
      case 0: return "";
      case 3: return "an exception other than recur::Error";
      case 4: return "an exception of a non-std type";
      default:
        return "exit status " + std::to_string(WEXITSTATUS(status)) + " (a sanitizer report?)";
    }
  }
  if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
  return "unknown wait status " + std::to_string(status);
}

// Replays every file of `folder` (under tests/fuzz/) and checks there is at least one.
void replay_folder(const std::string& folder, Input input) {
  const std::vector<fs::path> files = files_in(kFuzzDir / folder);
  ASSERT_FALSE(files.empty()) << "no inputs in " << (kFuzzDir / folder);
  for (const fs::path& file : files) EXPECT_EQ(replay(input, file), "") << file;
}

TEST(FuzzRegressions, Safetensors) {
  replay_folder("regressions/safetensors", recur::fuzz::fuzz_safetensors);
}

TEST(FuzzRegressions, Checkpoint) {
  replay_folder("regressions/checkpoint", recur::fuzz::fuzz_checkpoint);
}

// The seeds too: each is a finding as soon as it fails.
TEST(FuzzRegressions, SeedCorpus) {
  replay_folder("corpus/safetensors", recur::fuzz::fuzz_safetensors);
  replay_folder("corpus/checkpoint", recur::fuzz::fuzz_checkpoint);
}

// The checkpoint seeds start the fuzzer from files that load: the fuzzed model's own save
// must, or the seeds are stale (rerun tests/fuzz/make_seeds.cpp).
TEST(FuzzRegressions, CheckpointSeedLoads) {
  recur::RnnConfig config;
  config.cell = recur::CellKind::Lstm;
  config.input_size = 3;
  config.hidden_size = 4;
  config.num_layers = 2;
  recur::Rnn rnn(config);
  recur::Adam adam(rnn.parameters());
  const recur::CheckpointInfo info =
      recur::load_checkpoint((kFuzzDir / "corpus/checkpoint/adam").string(), rnn, &adam);
  EXPECT_EQ(info.step, 7);
}

}  // namespace
