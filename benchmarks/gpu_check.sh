#!/usr/bin/env bash
# One prepared device check for a machine with a CUDA GPU (run it once, keep the output):
#   1. the GPU tests, natively (no interpreter): the Triton kernels (FlashAttention, fused sigmoid/ReLU,
#      differential, chunked Taylor linear attention) against their PyTorch references, FlexAttention
#      window/biformer forward+backward against the dense masked reference, the sigmoid/ReLU and
#      approximate (Taylor) mixers through their kernels;
#   2. every kernel's TFLOP/s and its ratio against SDPA (softmax) or the eager/dense baseline (the others;
#      Taylor: against the eager chunked form, forward alone and forward+backward);
#   3. the attention-backend benchmark (eager / SDPA / compile / Triton) at long sequences, bf16;
#   4. every token mixer × backend on the GPU (bench attention --variants);
#   5. training throughput of the standard model through deconstruct on the GPU (backend auto → SDPA),
#      and of a window model (auto → FlexAttention).
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (needs torch with CUDA and triton installed)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
mkdir -p "$out"
unset TRITON_INTERPRET
export PYTHONUNBUFFERED=1
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" \
    | tee "$out/device.txt" || exit 1
python -m pytest -m gpu tests/kernels tests/builtin/test_sparse_paths.py -q -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.txt"
python -m pytest tests/kernels -q -p no:cacheprovider -m "not gpu" 2>&1 | tail -3 | tee -a "$out/gpu_tests.txt"
python benchmarks/kernel_flops.py 2>&1 | tee "$out/kernel_flops.txt"
python benchmarks/bench_attention.py --device cuda --dtype bf16 --seq-lens 1024 2048 4096 8192 2>&1 | tee "$out/bench_attention.txt"
python -m deconstruct train studies/quickstart.yaml --device cuda --set model.d_model=512 --set model.heads=8 \
    --set model.layers=8 --set task.seq_len=1024 --set train.batch_size=16 --set train.steps=200 \
    --set train.eval_every=200 --format json 2>/dev/null | tee "$out/train_cuda.json"
python -m deconstruct bench attention --variants --device cuda -T 1024 -T 4096 --d-model 512 --heads 8 --format json \
    2>/dev/null | tee "$out/bench_variants.json"
python -m deconstruct train studies/quickstart.yaml --device cuda --set model.mixer.kind=window --set model.d_model=512 \
    --set model.heads=8 --set model.layers=8 --set task.seq_len=2048 --set train.batch_size=8 --set train.steps=100 \
    --set train.eval_every=100 --format json 2>/dev/null | tee "$out/train_cuda_window.json"
