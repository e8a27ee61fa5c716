#!/usr/bin/env bash
# Vanishing and exploding gradients, made visible: builds recur, runs
# examples/gradient_flow and examples/long_range in full (a few minutes on a 2-core CPU;
# they use a GPU when one is usable), and writes docs/gradients.md (the tables) and
# docs/gradient_flow.png, docs/long_range_{distance,clipping,depth}.png.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${RECUR_BUILD_DIR:-build}"
if [ ! -f "$build/CMakeCache.txt" ]; then bash scripts/setup.sh; fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target gradient_flow long_range

# The plots need matplotlib and numpy; install them when missing (Debian).
if ! /usr/bin/python3 -c 'import matplotlib, numpy' 2>/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq python3-matplotlib python3-numpy
fi

data="$build/gradients"
mkdir -p "$data" docs
"$build/examples/gradient_flow" --out "$data" | tee "$data/gradient_flow.log"
"$build/examples/long_range" --out "$data"
/usr/bin/python3 examples/plot_gradients.py "$data" docs

{
  echo "# Vanishing and exploding gradients, made visible"
  echo
  echo "Produced by \`bash scripts/gradients.sh\` on $(uname -m) ($(nproc) cores), recur $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"
  echo "device: $(head -1 "$data/gradient_flow.log" | sed 's/^gradient flow on \(.*\): T = .*/\1/')."
  echo "Sources: examples/gradient_flow.cpp, examples/long_range.cpp, examples/plot_gradients.py;"
  echo "the API: include/recur/diagnostics.h; how it works: docs/design.md, \"Gradient-flow diagnostics\"."
  echo
  echo "## ‖∂J⁽ⁱ⁾/∂h⁽ʲ⁾‖ against i − j"
  echo
  echo "One layer, H = 64, float64, batch 16, T = 100, the same random input; J = ⟨w, y_i⟩ at i = 99"
  echo "with ‖w‖ = 1. The vanilla RNNs' W_hh is scaled to the largest singular value σ_max shown;"
  echo "the gated cells keep PyTorch's initialisation, once more with the forget gate's (LSTM)"
  echo "or update gate's (GRU) b_hh raised by 3."
  echo
  cat "$data/gradient_flow.md"
  echo
  echo "![gradient flow](gradient_flow.png)"
  echo
  echo "## Training"
  echo
  cat "$data/long_range.md"
  echo
  echo "![adding problem against distance](long_range_distance.png)"
  echo
  echo "![without and with clipping](long_range_clipping.png)"
  echo
  echo "![8-layer stacks](long_range_depth.png)"
} > docs/gradients.md
echo "wrote docs/gradients.md and docs/*.png"
