// kernels/dispatch.h: which functor runs for which step kernel.
//
// Both backends map a StepKind to its functor here, and only here: the CPU backend
// hands the functor to a loop, the CUDA backend to a kernel launch.
#pragma once

#include "connection.cuh"
#include "gather.cuh"
#include "gru.cuh"
#include "layer_norm.cuh"
#include "lstm.cuh"
#include "projection.cuh"
#include "rnn_cell.cuh"

namespace recur::kernels {

// One fused element-wise kernel of a time step. Most cells have one per step and
// direction; the reset-before-product GRU has two (see gru.cuh).
enum class StepKind {
  RnnTanh,
  RnnRelu,
  RnnSigmoid,
  Lstm,
  GruLinearBeforeReset,
  GruRbpGates,   // reset-before-product, phase 1 forward / phase B backward
  GruRbpOutput,  // reset-before-product, phase 2 forward / phase A backward
  LnLstm,        // layer-normalised cells (layer_norm.cuh): row-by-row functors (PerRow)
  LnGruLinearBeforeReset,
  LnGruRbpGates,  // as GruRbpGates / GruRbpOutput, layer-normalised
  LnGruRbpOutput,
  Projection,  // a projected LSTM's h_{t-1} and dJ/dh_t, P wide (projection.cuh)
};

// Every element-by-element StepKind (PerElement), for tests that visit them all.
inline constexpr StepKind kStepKinds[] = {StepKind::RnnTanh,
                                          StepKind::RnnRelu,
                                          StepKind::RnnSigmoid,
                                          StepKind::Lstm,
                                          StepKind::GruLinearBeforeReset,
                                          StepKind::GruRbpGates,
                                          StepKind::GruRbpOutput,
                                          StepKind::Projection};
// Every row-by-row StepKind (PerRow).
inline constexpr StepKind kRowStepKinds[] = {StepKind::LnLstm, StepKind::LnGruLinearBeforeReset,
                                             StepKind::LnGruRbpGates, StepKind::LnGruRbpOutput};

// Calls fn(functor) with the forward functor of `kind`.
template <typename T, class Fn>
void dispatch_forward(StepKind kind, Fn&& fn) {
  switch (kind) {
    case StepKind::RnnTanh: return fn(RnnForward<T, Tanh>{});
    case StepKind::RnnRelu: return fn(RnnForward<T, Relu>{});
    case StepKind::RnnSigmoid: return fn(RnnForward<T, Sigmoid>{});
    case StepKind::Lstm: return fn(LstmForward<T>{});
    case StepKind::GruLinearBeforeReset: return fn(GruLbrForward<T>{});
    case StepKind::GruRbpGates: return fn(GruRbpGatesForward<T>{});
    case StepKind::GruRbpOutput: return fn(GruRbpOutputForward<T>{});
    case StepKind::LnLstm: return fn(LnLstmForward<T>{});
    case StepKind::LnGruLinearBeforeReset: return fn(LnGruLbrForward<T>{});
    case StepKind::LnGruRbpGates: return fn(LnGruRbpGatesForward<T>{});
    case StepKind::LnGruRbpOutput: return fn(LnGruRbpOutputForward<T>{});
    case StepKind::Projection: return fn(ProjectionForward<T>{});
  }
}

// Calls fn(functor) with the backward functor of `kind`.
template <typename T, class Fn>
void dispatch_backward(StepKind kind, Fn&& fn) {
  switch (kind) {
    case StepKind::RnnTanh: return fn(RnnBackward<T, Tanh>{});
    case StepKind::RnnRelu: return fn(RnnBackward<T, Relu>{});
    case StepKind::RnnSigmoid: return fn(RnnBackward<T, Sigmoid>{});
    case StepKind::Lstm: return fn(LstmBackward<T>{});
    case StepKind::GruLinearBeforeReset: return fn(GruLbrBackward<T>{});
    case StepKind::GruRbpGates: return fn(GruRbpGatesBackward<T>{});
    case StepKind::GruRbpOutput: return fn(GruRbpOutputBackward<T>{});
    case StepKind::LnLstm: return fn(LnLstmBackward<T>{});
    case StepKind::LnGruLinearBeforeReset: return fn(LnGruLbrBackward<T>{});
    case StepKind::LnGruRbpGates: return fn(LnGruRbpGatesBackward<T>{});
    case StepKind::LnGruRbpOutput: return fn(LnGruRbpOutputBackward<T>{});
    case StepKind::Projection: return fn(ProjectionBackward<T>{});
  }
}

// The element-wise kernel of a connection between layers (kernels/connection.cuh).
enum class ConnectionKind {
  ResidualForward,
  ResidualBackward,
  HighwayForward,
  HighwayBackward,
  DropoutForward,
  DropoutBackward
};

// Calls fn(functor) with the connection functor of `kind`.
template <typename T, class Fn>
void dispatch_connection(ConnectionKind kind, Fn&& fn) {
  switch (kind) {
    case ConnectionKind::ResidualForward: return fn(ResidualForward<T>{});
    case ConnectionKind::ResidualBackward: return fn(ResidualBackward<T>{});
    case ConnectionKind::HighwayForward: return fn(HighwayForward<T>{});
    case ConnectionKind::HighwayBackward: return fn(HighwayBackward<T>{});
    case ConnectionKind::DropoutForward: return fn(DropoutForward<T>{});
    case ConnectionKind::DropoutBackward: return fn(DropoutBackward<T>{});
  }
}

}  // namespace recur::kernels
