// recur/recur.h: everything a user of recur includes.
#pragma once

#include "recur/checkpoint.h"
#include "recur/clip.h"
#include "recur/config.h"
#include "recur/device.h"
#include "recur/diagnostics.h"
#include "recur/error.h"
#include "recur/half.h"
#include "recur/init.h"
#include "recur/loss_scale.h"
#include "recur/lr_schedule.h"
#include "recur/modules.h"
#include "recur/optim.h"
#include "recur/rnn.h"
#include "recur/safetensors.h"
#include "recur/tensor.h"
#include "recur/version.h"
