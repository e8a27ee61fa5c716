// tests/fuzz/fuzz_inputs.h: what one fuzz input does to the file readers, shared by the
// libFuzzer targets and the regression test (tests/test_fuzz_regressions.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace recur::fuzz {

// Each writes `data` to this process's scratch file (scratch_path()) and runs a reader
// over it. The only acceptable outcomes are success and recur::Error, so both return 0;
// any other exception propagates to the caller, which reports it as a finding (as a crash
// or a sanitizer report would be).

// SafetensorsFile::open, then names(), contains(), info() and metadata(), and every
// tensor read as it is (read, read_bytes) and converted (read_converted).
int fuzz_safetensors(const std::uint8_t* data, std::size_t size);

// load_checkpoint into a fixed model (an LSTM, I = 3, H = 4, 2 layers) with an Adam
// optimizer and without one, and load_state_dict, strict and converting.
int fuzz_checkpoint(const std::uint8_t* data, std::size_t size);

// The file the inputs go to: one per process, made on first use in a tmpfs folder
// (/dev/shm, else $TMPDIR, else /tmp) and overwritten by each input, so that a run costs
// no disk writes and leaves nothing behind.
const std::string& scratch_path();

}  // namespace recur::fuzz
