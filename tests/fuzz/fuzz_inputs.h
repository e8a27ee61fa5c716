// tests/fuzz/fuzz_inputs.h: what one fuzz input does to the file readers, shared by the
// libFuzzer targets and the regression test (tests/test_fuzz_regressions.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "recur/loss_scale.h"
#include "recur/lr_schedule.h"
#include "recur/model_checkpoint.h"
#include "recur/modules.h"
#include "recur/optim.h"
#include "recur/rnn.h"

namespace recur::fuzz {

// Each writes `data` to this process's scratch file (scratch_path()) and runs a reader
// over it. The only acceptable outcomes are success and recur::Error, so both return 0;
// any other exception propagates to the caller, which reports it as a finding (as a crash
// or a sanitizer report would be).

// SafetensorsFile::open, then names(), contains(), info() and metadata(), and every
// tensor read as it is (read, read_bytes) and converted (read_converted).
int fuzz_safetensors(const std::uint8_t* data, std::size_t size);

// The Rnn every checkpoint input loads into: an LSTM, I = 3, H = 4, 2 layers.
RnnConfig fuzz_rnn_config();

// The whole model model-checkpoint inputs load into (make_seeds.cpp saves it as a seed):
// that Rnn, an Embedding (7 x 3) and a Linear (4 -> 7) under one Adam of three groups, a
// schedule and a loss scaler.
struct FuzzModel {
  FuzzModel();
  Rnn rnn;
  Embedding embedding;
  Linear head;
  Adam adam;
  LrSchedule schedule;
  LossScaler scaler;
  ModelParts parts();
  TrainingParts training();
};

// load_checkpoint into the fixed Rnn with an Adam optimizer and without one,
// load_state_dict, strict and converting, and read_model_checkpoint and
// load_model_checkpoint into a FuzzModel.
int fuzz_checkpoint(const std::uint8_t* data, std::size_t size);

// The file the inputs go to: one per process, made on first use in a tmpfs folder
// (/dev/shm, else $TMPDIR, else /tmp) and overwritten by each input, so that a run costs
// no disk writes and leaves nothing behind.
const std::string& scratch_path();

}  // namespace recur::fuzz
