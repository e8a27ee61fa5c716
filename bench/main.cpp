// bench/main.cpp: recur_bench, recur against oneDNN (CPU), cuDNN (GPU) and the sgemm
// ceiling on a grid of problems. Run with --help for the options; docs/benchmarks.md
// describes the method and the results.
#include <recur/recur.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "load.h"
#include "machine.h"
#include "report.h"
#include "result.h"

namespace {

const char* kUsage = R"(usage: recur_bench [options]
  --quick              small grid, few repetitions (about a minute on 2 CPU cores)
  --cpu, --gpu         devices to run (default: the CPU, and the GPU when one is usable)
  --mode M             inference, training or both (default both)
  --filter S           keep problems whose description or source contains S, e.g.
                       "lstm", "H=512", "target", "L=2" (repeatable: any match keeps)
  --deepbench[=SET]    add DeepBench's problems of SET (training [default],
                       inference_server, inference_device, all)
  --deepbench-csv F    the DeepBench CSV (default: the source tree's ../shared/bench)
  --deepbench-max-hidden N   skip DeepBench rows with larger H (default 1024 on the CPU)
  --only-deepbench     run the DeepBench problems alone, not the built-in grid
  --problem SPEC       run this problem instead of the built-in grid, e.g.
                       "lstm T=50 B=64 H=512" (also I=, L=, bi; repeatable)
  --reps N             timed rounds: recur and each anchor run once a round, side by side
                       (default 10; --quick 5)
  --warmup N           untimed calls first (default 2; --quick 1)
  --max-seconds S      stop after S seconds per implementation once 3 rounds are done
                       (default 10)
  --no-anchors         recur only;  --no-ceiling: skip the sgemm ceiling
  --math LIST          the precisions to time, comma-separated from fp32, tf32, bf16,
                       fp16: recur at each ("recur", "recur_bf16", ...) beside the anchors
                       of that precision (oneDNN f32/bf16/f16 on the CPU, cuDNN FP32, TF32,
                       BF16, FP16 on the GPU), each anchor paired with recur at its own
                       (default: fp32,bf16 on the CPU; fp32,tf32,bf16,fp16 on the GPU)
  --no-tf32            FP32 rows only, the same as --math fp32 (its meaning from before
                       the reduced-precision rows, when it dropped the TF32 ones)
  --beside-load N      time every problem twice: on the quiet machine, then beside N busy
                       processes (a neighbour sharing the cores); prints both
  --json FILE          also write every result as JSON
)";

struct Options {
  bench::TimingOptions timing;
  std::vector<bench::Mode> modes;
  bool quick = false, cpu = false, gpu = false, anchors = true, ceiling = true;
  std::vector<recur::Math> maths;  // --math (--no-tf32: fp32); empty: the device's default
  bool only_deepbench = false;
  std::vector<std::string> filters;
  std::vector<bench::Problem> problems;  // --problem
  std::string deepbench_set, deepbench_csv = bench::default_deepbench_path(), json;
  long long deepbench_max_hidden = -1;
  int load = 0;  // --beside-load
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "recur_bench: " << message << "\n" << kUsage;
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  int reps = -1, warmup = -1;
  double max_seconds = -1;
  std::string mode = "both";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    auto number = [&](const std::string& text) {
      try {
        return std::stod(text);
      } catch (const std::exception&) {
        usage_error(a + ": not a number: '" + text + "'");
      }
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--cpu") {
      o.cpu = true;
    } else if (a == "--gpu") {
      o.gpu = true;
    } else if (a == "--mode") {
      mode = value();
    } else if (a == "--filter") {
      o.filters.push_back(value());
    } else if (a == "--deepbench") {
      o.deepbench_set = "training";
    } else if (a.rfind("--deepbench=", 0) == 0) {
      o.deepbench_set = a.substr(12);
    } else if (a == "--deepbench-csv") {
      o.deepbench_csv = value();
    } else if (a == "--deepbench-max-hidden") {
      o.deepbench_max_hidden = static_cast<long long>(number(value()));
    } else if (a == "--only-deepbench") {
      o.only_deepbench = true;
      if (o.deepbench_set.empty()) o.deepbench_set = "training";
    } else if (a == "--problem") {
      bench::Problem p;
      std::string why;
      if (!bench::parse_problem(value(), &p, &why)) usage_error("--problem: " + why);
      o.problems.push_back(p);
    } else if (a == "--reps") {
      reps = static_cast<int>(number(value()));
    } else if (a == "--warmup") {
      warmup = static_cast<int>(number(value()));
    } else if (a == "--max-seconds") {
      max_seconds = number(value());
    } else if (a == "--no-anchors") {
      o.anchors = false;
    } else if (a == "--no-ceiling") {
      o.ceiling = false;
    } else if (a == "--math") {
      const std::string list = value() + ",";
      o.maths.clear();
      for (std::size_t at = 0, comma; (comma = list.find(',', at)) != std::string::npos;
           at = comma + 1) {
        recur::Math m{};
        if (!bench::parse_math(list.substr(at, comma - at), &m)) {
          usage_error("--math: expected fp32, tf32, bf16 or fp16, got '" +
                      list.substr(at, comma - at) + "'");
        }
        if (std::find(o.maths.begin(), o.maths.end(), m) == o.maths.end()) o.maths.push_back(m);
      }
    } else if (a == "--no-tf32") {
      o.maths = {recur::Math::Fp32};
    } else if (a == "--beside-load") {
      o.load = static_cast<int>(number(value()));
      if (o.load < 1 || o.load > 256) usage_error("--beside-load: expected 1 to 256 processes");
    } else if (a == "--json") {
      o.json = value();
    } else {
      usage_error("unknown option '" + a + "'");
    }
  }
  bench::TimingOptions& t = o.timing;
  if (o.quick) {
    t.reps = 5;
    t.warmup = 1;
    t.max_seconds = 3;
  }
  if (reps > 0) t.reps = reps;
  if (warmup >= 0) t.warmup = warmup;
  if (max_seconds > 0) t.max_seconds = max_seconds;
  t.min_reps = std::min(t.min_reps, t.reps);
  if (mode == "inference" || mode == "both") o.modes.push_back(bench::Mode::Inference);
  if (mode == "training" || mode == "both") o.modes.push_back(bench::Mode::Training);
  if (o.modes.empty()) usage_error("--mode: expected inference, training or both");
  return o;
}

bool keep(const Options& o, const bench::Problem& p) {
  if (o.filters.empty()) return true;
  const std::string text = bench::describe(p) + " " + p.source;
  for (const std::string& f : o.filters) {
    if (text.find(f) != std::string::npos) return true;
  }
  return false;
}

std::vector<bench::Problem> problems_for(const Options& o, bool gpu) {
  std::vector<bench::Problem> all;
  if (!o.problems.empty()) {
    all = o.problems;
  } else if (!o.only_deepbench) {
    all = o.quick ? bench::quick_grid() : (gpu ? bench::gpu_grid() : bench::cpu_grid());
  }
  if (!o.deepbench_set.empty() && o.deepbench_csv.empty()) {
    std::cerr << "recur_bench: DeepBench CSV not found (--deepbench-csv); no DeepBench problems\n";
  } else if (!o.deepbench_set.empty()) {
    const long long max_hidden =
        o.deepbench_max_hidden > 0 ? o.deepbench_max_hidden : (gpu ? 1LL << 40 : 1024);
    const std::vector<bench::Problem> db =
        bench::read_deepbench(o.deepbench_csv, o.deepbench_set, max_hidden);
    all.insert(all.end(), db.begin(), db.end());
  }
  std::vector<bench::Problem> kept;
  for (const bench::Problem& p : all) {
    if (keep(o, p)) kept.push_back(p);
  }
  return kept;
}

// The precisions timed on the device: --math's, or the default (the GPU runs all four; the
// CPU FP32 and BF16, the one reduced format its anchor has).
std::vector<recur::Math> maths_for(const Options& o, bool gpu) {
  using recur::Math;
  if (!o.maths.empty()) return o.maths;
  return gpu ? std::vector<Math>{Math::Fp32, Math::Tf32, Math::Bf16, Math::Fp16}
             : std::vector<Math>{Math::Fp32, Math::Bf16};
}

// The anchor of precision `math` on the device, if it has one: oneDNN on the CPU (which has
// no TF32), cuDNN on the GPU.
void add_anchor(const bench::Problem& p, bool gpu, bench::Mode mode, recur::Math math,
                std::vector<bench::Prepared>& prepared) {
#ifdef RECUR_BENCH_ONEDNN
  if (!gpu && math != recur::Math::Tf32) prepared.push_back(bench::prepare_onednn(p, mode, math));
#endif
#ifdef RECUR_BENCH_CUDNN
  if (gpu) prepared.push_back(bench::prepare_cudnn(p, math, mode));
#endif
  (void)p, (void)gpu, (void)mode, (void)math, (void)prepared;
}

// One mode of one problem on one device: recur at each precision and the anchors, measured
// side by side.
std::vector<bench::Result> run_mode(const Options& o, const bench::Problem& p, bool gpu,
                                    bench::Mode mode) {
  std::vector<bench::Prepared> prepared;
  const std::vector<recur::Math> maths = maths_for(o, gpu);
  for (recur::Math m : maths) prepared.push_back(bench::prepare_recur(p, gpu, mode, m));
  if (o.anchors) {
    for (recur::Math m : maths) add_anchor(p, gpu, mode, m, prepared);
  }
  std::vector<bench::TimedCall> calls;
  std::vector<std::size_t> timed;  // index in `prepared` of each call
  for (std::size_t i = 0; i < prepared.size(); ++i) {
    if (!prepared[i].call) continue;
    calls.push_back(prepared[i].call);
    timed.push_back(i);
  }
  const bench::SideBySide times = bench::time_side_by_side(calls, o.timing);
  for (std::size_t c = 0; c < timed.size(); ++c) {
    bench::Result& r = prepared[timed[c]].result;
    if (!times.errors[c].empty()) {
      r.note = "error: " + times.errors[c];
      continue;
    }
    r.ok = true;
    r.stats = bench::summarize(times.ms[c]);
    // Each anchor against recur at its own precision, where that ran.
    for (std::size_t mine = 0; mine < timed.size(); ++mine) {
      if (times.errors[mine].empty() && bench::pairs_with(r, prepared[timed[mine]].result)) {
        r.vs_recur = bench::paired_ratio(times.ms[c], times.ms[mine]);
      }
    }
  }
  std::vector<bench::Result> out;
  for (bench::Prepared& pr : prepared) out.push_back(std::move(pr.result));
  return out;
}

// Result r's sgemm ceiling (problem p on the GPU or the CPU); a failed measurement leaves
// it unset and says why.
void set_ceiling(const Options& o, const bench::Problem& p, bool gpu, bench::Result& r) {
  try {
    r.ceiling_gflops = bench::sgemm_ceiling_gflops(p, r.mode, gpu, o.timing);
  } catch (const std::exception& e) {
    std::cerr << "sgemm ceiling: " << e.what() << "\n";
  }
}

// Every measurement of one problem on one device: recur, the anchors, the ceiling.
std::vector<bench::Result> run_problem(const Options& o, const bench::Problem& p, bool gpu) {
  std::vector<bench::Result> out;
  for (bench::Mode mode : o.modes) {
    std::vector<bench::Result> r = run_mode(o, p, gpu, mode);
    out.insert(out.end(), r.begin(), r.end());
    if (o.load > 0) {
      const bench::CompetingLoad load(o.load);
      for (bench::Result& loaded : run_mode(o, p, gpu, mode)) {
        loaded.load = o.load;
        out.push_back(std::move(loaded));
      }
    }
  }
  for (bench::Result& r : out) {
    if (!r.ok) continue;
    r.gflops = bench::flops(p, r.mode) / (r.stats.median_ms * 1e6);
    if (o.ceiling && r.load == 0) set_ceiling(o, p, gpu, r);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  bench::MachineInfo machine = bench::collect_machine_info();
  for (int i = 0; i < argc; ++i) machine.command_line += (i ? " " : "") + std::string(argv[i]);
  bench::print_header(std::cout, machine);

  const bool gpu_usable = recur::cuda_device_count() > 0;
  std::vector<bool> devices;  // false: CPU, true: GPU
  if (o.cpu || !o.gpu) devices.push_back(false);
  if (o.gpu && !gpu_usable) {
    std::cerr << "recur_bench: --gpu: no usable CUDA device (recur built with CUDA: "
              << (recur::cuda_built() ? "yes" : "no") << ")\n";
    return 2;
  }
  if (o.gpu || (!o.cpu && gpu_usable)) devices.push_back(true);

  std::vector<bench::Result> results;
  std::vector<std::pair<bench::Problem, bool>> result_of;  // each result's problem and device
  try {
    for (bool gpu : devices) {
      const std::vector<bench::Problem> problems = problems_for(o, gpu);
      for (std::size_t i = 0; i < problems.size(); ++i) {
        std::cerr << "[" << (gpu ? "gpu" : "cpu") << " " << i + 1 << "/" << problems.size() << "] "
                  << bench::describe(problems[i]) << " (" << problems[i].source << ")\n";
        const std::vector<bench::Result> r = run_problem(o, problems[i], gpu);
        results.insert(results.end(), r.begin(), r.end());
        result_of.insert(result_of.end(), r.size(), {problems[i], gpu});
        // As it goes, so that a run stopped at a time limit keeps what it measured: the
        // problem's rows, and the JSON of every problem so far.
        bench::print_table(std::cerr, r, false);
        if (!o.json.empty()) bench::write_json(o.json, machine, results, {});
      }
    }
    // Each shape once more, minutes later; the faster measurement of each sets the ceilings.
    if (o.ceiling) {
      std::cerr << "sgemm ceiling: measuring every shape again\n";
      bench::remeasure_sgemm_shapes(o.timing);
      for (std::size_t i = 0; i < results.size(); ++i) {
        if (results[i].ok && results[i].load == 0)
          set_ceiling(o, result_of[i].first, result_of[i].second, results[i]);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "recur_bench: " << e.what() << "\n";
    return 2;
  }
  machine.load_end = bench::load_average();
  bench::print_table(std::cout, results);
  bench::print_gemms(std::cout, bench::measured_gemm_rates());
  std::cout << "load average at start " << machine.load_start << ", at end " << machine.load_end
            << "\n";
  if (!o.json.empty()) {
    try {
      bench::write_json(o.json, machine, results, bench::measured_gemm_rates());
      std::cout << "wrote " << o.json << "\n";
    } catch (const std::exception& e) {
      std::cerr << "recur_bench: " << e.what() << "\n";
      return 2;
    }
  }
  // A recur row that failed (not one skipped by design) fails the run.
  for (const bench::Result& r : results) {
    if (bench::is_recur(r) && !r.ok && r.note.rfind("error", 0) == 0) return 1;
  }
  return 0;
}
