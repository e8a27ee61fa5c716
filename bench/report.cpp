// bench/report.cpp: the table and the JSON.
#include "report.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace bench {
namespace {

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  return fmt("%.6g", v);
}

// recur against anchor a (> 1: recur faster): the median of the round-by-round ratios
// where they ran side by side, else the ratio of the medians.
double vs_anchor(const Result& a, const Result& r) {
  return a.vs_recur.reps > 0 ? a.vs_recur.median_ms : a.stats.median_ms / r.stats.median_ms;
}

}  // namespace

const Result* anchor_for(const Result& r, const std::vector<Result>& all) {
  for (const Result& a : all) {
    if (a.ok && pairs_with(a, r)) return &a;
  }
  return nullptr;
}

void print_header(std::ostream& out, const MachineInfo& m) {
  out << "recur_bench " << m.date_utc << " on " << m.hostname << "\n"
      << "  cpu: " << m.cpu_model << ", " << m.cpu_threads << " threads; load " << m.load_start
      << "\n"
      << "  gpu: " << (m.gpu.empty() ? "none" : m.gpu) << "\n"
      << "  recur " << m.recur_version << "; OpenBLAS " << m.openblas << "; oneDNN "
      << (m.onednn.empty() ? "not built" : m.onednn) << "; cuDNN "
      << (m.cudnn.empty() ? "not used" : m.cudnn) << "\n"
      << "  recur's CPU backend: " << m.recur_cpu << "\n";
}

void print_table(std::ostream& out, const std::vector<Result>& results, bool header) {
  char line[512];
  std::snprintf(line, sizeof line, "%-4s %-38s %-9s %-11s %10s %21s %8s %7s  %s\n", "dev",
                "problem", "mode", "impl", "median ms", "[p10, p90] ms", "GFLOP/s", "sgemm%",
                "vs anchor (>1: recur faster)");
  if (header) out << line;
  for (const Result& r : results) {
    const std::string impl = r.load > 0 ? r.impl + "@load" + std::to_string(r.load) : r.impl;
    if (!r.ok) {
      std::snprintf(line, sizeof line, "%-4s %-38s %-9s %-11s %s\n", r.device.c_str(),
                    describe(r.problem).c_str(), mode_name(r.mode), impl.c_str(), r.note.c_str());
      out << line;
      continue;
    }
    const std::string spread =
        "[" + fmt("%.2f", r.stats.p10_ms) + ", " + fmt("%.2f", r.stats.p90_ms) + "]";
    const std::string ceiling =
        r.ceiling_gflops > 0 ? fmt("%.0f%%", 100 * r.gflops / r.ceiling_gflops) : "-";
    std::string versus;
    if (const Result* a = anchor_for(r, results)) {
      versus = fmt("%.2fx ", vs_anchor(*a, r)) + a->impl;
      if (a->vs_recur.reps > 0) {
        versus += fmt(" [%.2f, ", a->vs_recur.p10_ms) + fmt("%.2f]", a->vs_recur.p90_ms);
      }
    }
    std::snprintf(line, sizeof line, "%-4s %-38s %-9s %-11s %10.2f %21s %8.1f %7s  %s\n",
                  r.device.c_str(), describe(r.problem).c_str(), mode_name(r.mode), impl.c_str(),
                  r.stats.median_ms, spread.c_str(), r.gflops, ceiling.c_str(), versus.c_str());
    out << line;
  }
  // Each implementation beside the competing load against itself on the quiet machine.
  for (const Result& l : results) {
    if (!l.ok || l.load == 0) continue;
    for (const Result& q : results) {
      if (q.ok && q.load == 0 && q.impl == l.impl && q.device == l.device && q.mode == l.mode &&
          same_problem(q.problem, l.problem)) {
        out << "beside " << l.load << " busy process" << (l.load > 1 ? "es" : "") << ": " << l.impl
            << " " << describe(l.problem) << " " << mode_name(l.mode) << ": "
            << fmt("%.2f", q.stats.median_ms) << " ms quiet, " << fmt("%.2f", l.stats.median_ms)
            << " ms loaded (" << fmt("%.2fx", l.stats.median_ms / q.stats.median_ms)
            << " the quiet time)\n";
      }
    }
  }
  // recur on the GPU against recur on the CPU, where both ran.
  for (const Result& g : results) {
    if (!g.ok || g.impl != "recur" || g.device != "gpu") continue;
    for (const Result& c : results) {
      if (c.ok && c.impl == "recur" && c.device == "cpu" && c.mode == g.mode && c.load == 0 &&
          g.load == 0 && same_problem(c.problem, g.problem)) {
        out << "recur gpu vs cpu: " << describe(g.problem) << " " << mode_name(g.mode) << ": "
            << fmt("%.1fx", c.stats.median_ms / g.stats.median_ms) << "\n";
      }
    }
  }
}

void print_gemms(std::ostream& out, const std::vector<GemmRate>& gemms) {
  if (gemms.empty()) return;
  out << "sgemm at the RNN's shapes (column-major, C[M,N] = op(A)[M,K] op(B)[K,N]):\n";
  char line[160];
  for (const GemmRate& g : gemms) {
    std::snprintf(line, sizeof line, "  %s %c%c M=%-6lld N=%-6lld K=%-6lld %8.1f GFLOP/s",
                  g.gpu ? "cublas" : "cpu   ", g.trans_a ? 'T' : 'N', g.trans_b ? 'T' : 'N',
                  static_cast<long long>(g.m), static_cast<long long>(g.n),
                  static_cast<long long>(g.k), g.gflops);
    out << line;
    if (!g.gpu) {
      std::snprintf(line, sizeof line, "  (openblas %.1f, onednn %s)", g.openblas_gflops,
                    g.onednn_gflops > 0 ? fmt("%.1f", g.onednn_gflops).c_str() : "-");
      out << line;
    }
    out << "\n";
  }
}

void write_json(const std::string& path, const MachineInfo& m, const std::vector<Result>& results,
                const std::vector<GemmRate>& gemms) {
  std::ostringstream j;
  j << "{\n  \"machine\": {"
    << "\"cpu_model\": " << json_string(m.cpu_model) << ", \"cpu_threads\": " << m.cpu_threads
    << ", \"gpu\": " << json_string(m.gpu) << ", \"hostname\": " << json_string(m.hostname)
    << ", \"date_utc\": " << json_string(m.date_utc)
    << ", \"load_start\": " << json_string(m.load_start)
    << ", \"load_end\": " << json_string(m.load_end)
    << ", \"command_line\": " << json_string(m.command_line) << "},\n"
    << "  \"versions\": {\"recur\": " << json_string(m.recur_version)
    << ", \"recur_cpu\": " << json_string(m.recur_cpu)
    << ", \"openblas\": " << json_string(m.openblas) << ", \"onednn\": " << json_string(m.onednn)
    << ", \"cudnn\": " << json_string(m.cudnn) << "},\n"
    << "  \"definitions\": {"
    << "\"gflop\": \"GEMM FLOPs: forward 2*G*H*(I_l+H)*T*B per layer and direction, "
       "training 3x forward\", "
    << "\"ceiling_gflops\": \"sgemm GFLOP/s at the problem's GEMM shapes, FLOP-weighted (CPU: "
       "the faster of OpenBLAS and oneDNN at each shape; GPU: cuBLAS)\", "
    << "\"vs_anchor\": \"median over the rounds of anchor time / recur time in the same round "
       "(side by side; p10 and p90 of the same ratios); > 1 means recur is faster\"},\n"
    << "  \"results\": [";
  for (std::size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    const Problem& p = r.problem;
    const Result* a = anchor_for(r, results);
    j << (i ? ",\n    " : "\n    ") << "{\"impl\": " << json_string(r.impl)
      << ", \"device\": " << json_string(r.device)
      << ", \"math\": " << json_string(math_name(r.math))
      << ", \"cell\": " << json_string(cell_name(p.cell)) << ", \"T\": " << p.T
      << ", \"B\": " << p.B << ", \"I\": " << p.I << ", \"H\": " << p.H
      << ", \"layers\": " << p.layers
      << ", \"bidirectional\": " << (p.bidirectional ? "true" : "false")
      << ", \"source\": " << json_string(p.source)
      << ", \"mode\": " << json_string(mode_name(r.mode))
      << ", \"ok\": " << (r.ok ? "true" : "false") << ", \"note\": " << json_string(r.note)
      << ", \"gflop\": " << json_number(flops(p, r.mode) * 1e-9);
    if (r.ok) {
      j << ", \"reps\": " << r.stats.reps << ", \"median_ms\": " << json_number(r.stats.median_ms)
        << ", \"p10_ms\": " << json_number(r.stats.p10_ms)
        << ", \"p90_ms\": " << json_number(r.stats.p90_ms)
        << ", \"min_ms\": " << json_number(r.stats.min_ms)
        << ", \"max_ms\": " << json_number(r.stats.max_ms)
        << ", \"mean_ms\": " << json_number(r.stats.mean_ms)
        << ", \"gflops\": " << json_number(r.gflops) << ", \"load\": " << r.load
        << ", \"ceiling_gflops\": " << json_number(r.ceiling_gflops) << ", \"of_ceiling\": "
        << json_number(r.ceiling_gflops > 0 ? r.gflops / r.ceiling_gflops : NAN);
      if (a != nullptr) {
        j << ", \"anchor\": " << json_string(a->impl)
          << ", \"vs_anchor\": " << json_number(vs_anchor(*a, r));
        if (a->vs_recur.reps > 0) {
          j << ", \"vs_anchor_p10\": " << json_number(a->vs_recur.p10_ms)
            << ", \"vs_anchor_p90\": " << json_number(a->vs_recur.p90_ms)
            << ", \"vs_anchor_paired_rounds\": " << a->vs_recur.reps;
        }
      }
    }
    j << "}";
  }
  j << "\n  ],\n  \"sgemm\": [";
  for (std::size_t i = 0; i < gemms.size(); ++i) {
    const GemmRate& g = gemms[i];
    j << (i ? ",\n    " : "\n    ") << "{\"device\": " << json_string(g.gpu ? "gpu" : "cpu")
      << ", \"trans_a\": " << (g.trans_a ? "true" : "false")
      << ", \"trans_b\": " << (g.trans_b ? "true" : "false") << ", \"M\": " << g.m
      << ", \"N\": " << g.n << ", \"K\": " << g.k << ", \"gflops\": " << json_number(g.gflops);
    if (!g.gpu) {
      j << ", \"openblas_gflops\": " << json_number(g.openblas_gflops)
        << ", \"onednn_gflops\": " << json_number(g.onednn_gflops > 0 ? g.onednn_gflops : NAN);
    }
    j << "}";
  }
  j << "\n  ]\n}\n";
  // Written whole, then renamed over the old file: the runner rewrites it after every
  // problem, and a run killed at its time limit then leaves the last whole file.
  const std::string partial = path + ".partial";
  {
    std::ofstream out(partial);
    out << j.str();
    if (!out.flush()) throw std::runtime_error("cannot write '" + partial + "'");
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("cannot rename '" + partial + "' to '" + path + "'");
  }
}

}  // namespace bench
