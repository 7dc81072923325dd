#pragma once
// hopgrad: tensors, reverse-mode autograd, CPU (oneDNN) and CUDA (cuBLAS) backends, and Hopfield layers.
//
//   #include <hopgrad/hopgrad.h>
//   auto w = hg::randn({3, 1}).requires_grad_();
//   auto loss = hg::mse_loss(hg::matmul(x, w), y);
//   loss.backward();
#include <hopgrad/core/device.h>
#include <hopgrad/core/dtype.h>
#include <hopgrad/core/error.h>
#include <hopgrad/core/generator.h>
#include <hopgrad/core/print.h>
#include <hopgrad/core/shape.h>
#include <hopgrad/core/tensor.h>
#include <hopgrad/core/threads.h>

#include <hopgrad/autograd/engine.h>
#include <hopgrad/autograd/grad_mode.h>

#include <hopgrad/ops/memory_stats.h>
#include <hopgrad/ops/ops.h>

#include <hopgrad/nn/metrics/classification.h>
#include <hopgrad/nn/metrics/roc_auc.h>

#include <hopgrad/nn/train/csv_log.h>
#include <hopgrad/nn/train/flags.h>
#include <hopgrad/nn/train/run_files.h>
#include <hopgrad/nn/train/progress.h>
#include <hopgrad/nn/train/svg_plot.h>

#include <hopgrad/nn/data/bag_datasets.h>
#include <hopgrad/nn/data/bit_pattern.h>
#include <hopgrad/nn/data/cifar10.h>
#include <hopgrad/nn/data/collate.h>
#include <hopgrad/nn/data/dataloader.h>
#include <hopgrad/nn/data/dataset.h>
#include <hopgrad/nn/data/deeprc.h>
#include <hopgrad/nn/data/matlab.h>
#include <hopgrad/nn/data/mil.h>
#include <hopgrad/nn/data/mnist.h>
#include <hopgrad/nn/data/mnist_bags.h>
#include <hopgrad/nn/data/random.h>
#include <hopgrad/nn/data/simulated_repertoires.h>
#include <hopgrad/nn/data/splits.h>

#include <hopgrad/nn/optim/adam.h>
#include <hopgrad/nn/optim/adamw.h>
#include <hopgrad/nn/optim/clip_grad.h>
#include <hopgrad/nn/optim/lr_scheduler.h>
#include <hopgrad/nn/optim/optimizer.h>
#include <hopgrad/nn/optim/sgd.h>

#include <hopgrad/nn/hopfield/efficient_attention.h>
#include <hopgrad/nn/hopfield/encoder_layer.h>
#include <hopgrad/nn/hopfield/energy.h>
#include <hopgrad/nn/hopfield/forgetting.h>
#include <hopgrad/nn/hopfield/hopfield.h>
#include <hopgrad/nn/hopfield/hopfield_layer.h>
#include <hopgrad/nn/hopfield/hopfield_pooling.h>
#include <hopgrad/nn/hopfield/kernel_map.h>
#include <hopgrad/nn/hopfield/kernel_retrieval.h>
#include <hopgrad/nn/hopfield/learnable_hopfield.h>
#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/hopfield/separation_loss.h>

#include <hopgrad/nn/containers.h>
#include <hopgrad/nn/init.h>
#include <hopgrad/nn/layers/activation.h>
#include <hopgrad/nn/layers/attention.h>
#include <hopgrad/nn/layers/conv.h>
#include <hopgrad/nn/layers/dropout.h>
#include <hopgrad/nn/layers/embedding.h>
#include <hopgrad/nn/layers/flatten.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/nn/layers/normalization.h>
#include <hopgrad/nn/layers/pooling.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

#include <hopgrad/nn/serialize/atomic_file.h>
#include <hopgrad/nn/serialize/checkpoint.h>
#include <hopgrad/nn/serialize/safetensors.h>
