// bench/report.h: the printed table and the JSON file.
//
// Definitions used by both:
//   gflops           flops(problem, mode) / median time (config.h), GEMM FLOPs only
//   ceiling_gflops   sgemm at the problem's GEMM shapes (sgemm_ceiling.cpp)
//   of_ceiling       gflops / ceiling_gflops
//   vs_anchor        (recur rows) anchor median time / recur median time, the anchor being
//                    the one of the same precision (pairs_with(), result.h): oneDNN on the
//                    CPU, cuDNN on the GPU, onednn_bf16 for recur_bf16, cudnn_tf32 for
//                    recur_tf32 and so on: > 1 means recur is faster, 0.5 means recur takes
//                    twice as long
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "machine.h"
#include "result.h"

namespace bench {

// The anchor result for recur's row r (pairs_with(a, r)), or nullptr.
const Result* anchor_for(const Result& r, const std::vector<Result>& all);

void print_header(std::ostream& out, const MachineInfo& m);
// `header` false: the rows alone (the runner's progress, one problem at a time).
void print_table(std::ostream& out, const std::vector<Result>& results, bool header = true);
// Throws std::runtime_error when the file cannot be written.
void write_json(const std::string& path, const MachineInfo& m, const std::vector<Result>& results,
                const std::vector<GemmRate>& gemms);
void print_gemms(std::ostream& out, const std::vector<GemmRate>& gemms);

}  // namespace bench
