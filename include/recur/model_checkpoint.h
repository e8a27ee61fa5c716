// recur/model_checkpoint.h: self-describing checkpoints of a whole model and its training
// state, as safetensors files: enough to rebuild the model from the file alone.
//
//   recur::ModelParts model{{{"rnn", &rnn}}, {{"embedding", &embed}}, {{"head", &head}}};
//   recur::TrainingParts training{&opt, &schedule, &scaler, step, {{"rollbacks", 2}}};
//   recur::save_model_checkpoint("run.safetensors", model, training);
//   ...
//   // A new process, from the file alone:
//   recur::ModelCheckpointInfo info = recur::read_model_checkpoint("run.safetensors");
//   recur::Rnn rnn(info.rnns.at(0).second, device);   // configs as they were saved
//   ... build the optimizer, schedule and scaler the same way, then:
//   recur::load_model_checkpoint("run.safetensors", model, training);  // step, counters too
//
// A model checkpoint holds, besides safetensors' "format": "pt",
//   - "recur.format": "recur.model", "recur.version", "recur.modules": the module names in
//     order, comma-separated; for each module, its kind and every field of its config as a
//     metadata entry of its own: "recur.module.<name>.kind" (Rnn, Embedding, Linear), then
//     e.g. "recur.module.rnn.hidden_size": "64", "recur.module.rnn.cell": "Lstm" (an Rnn:
//     cell, input_size, hidden_size, num_layers, bidirectional, connection, bias, dropout,
//     batch_first, dtype, math; an Embedding: num_embeddings, embedding_dim, padding_idx
//     ("none" or the row; files of earlier versions lack it, meaning "none"), dtype; a
//     Linear: in_features, out_features, bias, dtype);
//   - each module's parameters under "<name>.<parameter>" ("rnn.weight_ih_l0",
//     "head.weight"), so that a PyTorch model with the same module names loads them;
//   - the optimizer (if any): "recur.optimizer" (type, settings, counters, groups) and its
//     state under "optim.<state name>" ("optim.rnn.exp_avg" for a group named "rnn");
//   - the schedule's and the loss scaler's state (if any): "lr_schedule.state",
//     "loss_scale.state";
//   - "recur.step" and the trainer's counters, "recur.counter.<name>": integers.
// Gradients are not saved.
//
// Module names: non-empty, unique, of letters, digits and '_' only; not "optim",
// "lr_schedule" nor "loss_scale". Counter names likewise. Every pointer in the parts must
// be non-null.
//
// load_model_checkpoint reads and checks EVERYTHING before it changes anything: the same
// modules (name, kind, order), every config field equal (an Error names the module and the
// field, e.g. "module 'rnn': hidden_size is 64 in the checkpoint, 32 in the model"), the
// optimizer's type, every tensor's presence, dtype and shape, no tensor nobody asked for,
// the same schedule / scaler presence. Only then are parameters, state and counters
// written. A failed load throws recur::Error and leaves every part as it was.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "recur/config.h"
#include "recur/export.h"
#include "recur/loss_scale.h"
#include "recur/lr_schedule.h"
#include "recur/modules.h"
#include "recur/optim.h"
#include "recur/rnn.h"

namespace recur {

// The modules of a model, by reference, in the order they are saved: Rnns, then
// Embeddings, then Linears.
struct ModelParts {
  std::vector<std::pair<std::string, Rnn*>> rnns;
  std::vector<std::pair<std::string, Embedding*>> embeddings;
  std::vector<std::pair<std::string, Linear*>> linears;
};

// What trains it, by reference (each may be null), and the trainer's own counters.
struct TrainingParts {
  Optimizer* optimizer = nullptr;  // e.g. one Adam over ParamGroups (recur/optim.h)
  LrSchedule* schedule = nullptr;
  LossScaler* loss_scaler = nullptr;
  std::int64_t step = 0;                         // load: set from the file
  std::map<std::string, std::int64_t> counters;  // load: set from the file
};

// What a model checkpoint says, read from its header alone.
struct ModelCheckpointInfo {
  struct EmbeddingConfig {
    std::int64_t num_embeddings = 0, embedding_dim = 0;
    std::int64_t padding_idx = EmbeddingOptions::kNoPadding;
    DType dtype = DType::Float32;
  };
  struct LinearConfig {
    std::int64_t in_features = 0, out_features = 0;
    bool bias = true;
    DType dtype = DType::Float32;
  };
  std::vector<std::pair<std::string, RnnConfig>> rnns;
  std::vector<std::pair<std::string, EmbeddingConfig>> embeddings;
  std::vector<std::pair<std::string, LinearConfig>> linears;
  std::string optimizer;  // "Sgd", "Adam", or empty
  bool schedule = false, loss_scaler = false;
  std::int64_t step = 0;
  std::map<std::string, std::int64_t> counters;
  std::map<std::string, std::string> metadata;  // the file's whole metadata
};

// Writes atomically (save_safetensors); on an Error the file at `path` is unchanged.
RECUR_API void save_model_checkpoint(const std::string& path, const ModelParts& model,
                                     const TrainingParts& training);

// The configs, step and counters of a model checkpoint, with every field checked (an
// Error names a missing or malformed one).
RECUR_API ModelCheckpointInfo read_model_checkpoint(const std::string& path);

// Restores a model checkpoint into `model` and `training` (see above); returns what it
// read.
RECUR_API ModelCheckpointInfo load_model_checkpoint(const std::string& path,
                                                    const ModelParts& model,
                                                    TrainingParts& training);

}  // namespace recur
