#!/usr/bin/env bash
# tests/bench/check_quick_run.sh RECUR_BENCH JSON: a quick CPU run of the benchmark driver
# over the vanilla-RNN problems succeeds, and its JSON has recur's rows, measured; where
# the oneDNN anchor ran, each recur row carries the side-by-side ratio to it.
set -euo pipefail
bench=$1 json=$2
rm -f "$json"
"$bench" --cpu --quick --filter rnn_tanh --no-ceiling --json "$json" >/dev/null

fail() { echo "check_quick_run: $*" >&2; exit 1; }
[ -s "$json" ] || fail "no JSON written"
recur_ok=$(grep -c '"impl": "recur", "device": "cpu".*"ok": true' "$json" || true)
recur_all=$(grep -c '"impl": "recur"' "$json" || true)
[ "$recur_all" -gt 0 ] || fail "no recur rows"
[ "$recur_ok" -eq "$recur_all" ] || fail "$recur_ok of $recur_all recur rows measured"
if grep -q '"impl": "onednn", .*"ok": true' "$json"; then
  paired=$(grep -c '"impl": "recur".*"vs_anchor_paired_rounds": [1-9]' "$json" || true)
  [ "$paired" -eq "$recur_all" ] || fail "$paired of $recur_all recur rows paired with oneDNN"
fi
echo "check_quick_run: $recur_all recur rows measured"
