// src/cuda/nccl_link.h: NCCL inside the CUDA backend, loaded at run time (dlopen), so that
// librecur_cuda.so needs no libnccl to load.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../cuda_backend.h"

namespace recur::detail {

bool nccl_usable(int device, std::string* why);
bool nccl_unique_id(std::vector<char>* id, std::string* why);
std::unique_ptr<NcclLink> make_nccl_link(int device, const std::vector<char>& id, int rank,
                                         int ranks);

}  // namespace recur::detail
