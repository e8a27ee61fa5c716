// recur/checkpoint.h: training checkpoints and PyTorch state dicts, as safetensors files.
//
//   recur::save_checkpoint("ckpt.safetensors", rnn, &adam, step);
//   ...
//   recur::CheckpointInfo info = recur::load_checkpoint("ckpt.safetensors", rnn, &adam);
//   step = info.step;
//
//   // A state dict saved in Python by safetensors.torch.save_file(lstm.state_dict(), path):
//   recur::load_state_dict(rnn, recur::SafetensorsFile::open(path));
//
// A checkpoint is a safetensors file (recur/safetensors.h) holding
//   - the Rnn's parameters under PyTorch's names ("weight_ih_l0", ..., and for Highway
//     "highway_weight_l1", ...), so that safetensors.torch.load_file() in Python gives a
//     state dict that nn.LSTM / nn.GRU / nn.RNN load (the highway tensors aside);
//   - the optimizer's state buffers (Optimizer::state()) under "optim.<state name>", e.g.
//     "optim.exp_avg", each [P] like the flat parameter buffer; further optimizers (see
//     CheckpointExtras) under "optim.<their name>.<state name>";
//   - extra tensors (CheckpointExtras::tensors) under their own names;
//   - metadata (strings; the JSON ones are JSON objects encoded as strings):
//       "format": "pt" (what Python's safetensors.torch writes; tools check it),
//       "recur.format": "recur.checkpoint", "recur.version": the library version,
//       "recur.step": the caller's step counter, in decimal,
//       "recur.config": the RnnConfig, e.g. {"cell": "Lstm", "input_size": 32, ...},
//       "recur.optimizer" / "recur.optimizer.<name>": the optimizer's type ("Sgd" or
//       "Adam"), hyper-parameters and counters (step_count, skipped_steps),
//       and the caller's own keys (CheckpointExtras::metadata).
// Gradients are not saved.
//
// Loading reads and validates EVERYTHING before it changes anything: the file's header,
// the config against the model's (an Error names the first field that differs), the
// optimizer's type, every expected tensor's presence, dtype (exactly the model's; no
// conversion) and shape, and that the file holds no tensor nobody asked for. Only then are
// parameters, optimizer state and counters written. A failed load throws recur::Error and
// leaves the model, the optimizers and the extra tensors exactly as they were.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "recur/export.h"
#include "recur/optim.h"
#include "recur/rnn.h"
#include "recur/safetensors.h"

namespace recur {

// What a checkpoint holds besides one Rnn and its optimizer; everything by reference.
struct CheckpointExtras {
  // Saved under their names, and read back into the same views on load (e.g. the
  // parameters of an Embedding and a Linear: {"embedding.weight", emb.weight()}).
  NamedTensors tensors;
  // More optimizers (e.g. one per module), by a name of their own: state under
  // "optim.<name>.<state name>", settings and counters in "recur.optimizer.<name>".
  // save_checkpoint only reads them.
  std::vector<std::pair<std::string, Optimizer*>> optimizers;
  // save_checkpoint: the caller's own metadata (keys must not start with "recur." nor be
  // "format"). load_checkpoint ignores this member; the file's metadata is returned.
  std::map<std::string, std::string> metadata;
};

struct CheckpointInfo {
  std::int64_t step = 0;                        // "recur.step"
  std::map<std::string, std::string> metadata;  // the file's whole metadata
};

// Writes a checkpoint atomically (save_safetensors). `optimizer` may be nullptr. Throws
// recur::Error for a bad argument (a name used twice, an optimizer not on the model's
// device, ...) or an I/O failure; the file at `path` is then unchanged.
RECUR_API void save_checkpoint(const std::string& path, const Rnn& rnn, const Optimizer* optimizer,
                               std::int64_t step, const CheckpointExtras& extras = {});

// Restores a checkpoint written by save_checkpoint into `rnn` (whose config must equal
// the saved one), `optimizer` (nullptr: the file's optimizer state, if any, is skipped;
// else the file must hold the state of an optimizer of the same type: its state buffers,
// counters and learning rate are restored), and `extras` (tensors and optimizers, which
// must all be in the file). See above for the all-or-nothing guarantee.
RECUR_API CheckpointInfo load_checkpoint(const std::string& path, Rnn& rnn, Optimizer* optimizer,
                                         const CheckpointExtras& extras = {});

// The Rnn's parameters as named views, in parameter_info() order: a state dict.
// save_safetensors(path, state_dict(rnn)) writes a file PyTorch can load.
RECUR_API NamedTensors state_dict(const Rnn& rnn);

struct StateDictOptions {
  // Only tensors whose names start with `prefix` are considered, with the prefix removed
  // (e.g. "rnn." for a state dict of a model that holds the LSTM as `self.rnn`).
  std::string prefix;
  // false: every tensor must have the model's dtype. true: F32, F64, BF16 and F16 tensors
  // are converted to the model's dtype as Tensor::to does (a float32 PyTorch model into
  // a float64 Rnn, a bfloat16 or float16 one into a float32 Rnn's weights).
  bool convert_dtype = false;
};

// Loads a state dict (e.g. written by Python's safetensors.torch.save_file from an
// nn.LSTM / nn.GRU / nn.RNN) into `rnn`, matching tensors to parameters by name. Every
// parameter must be present with its exact shape; a tensor that is not a parameter is an
// error (as PyTorch's strict loading). All tensors are read and checked before any
// parameter changes; on an error the model is unchanged.
RECUR_API void load_state_dict(Rnn& rnn, const SafetensorsFile& file,
                               const StateDictOptions& options = {});

}  // namespace recur
