#!/usr/bin/env bash
# One prepared device check for a machine with a CUDA GPU (run it once, keep the output):
#   1. the Triton kernel tests compiled for the GPU (no interpreter), against the PyTorch reference;
#   2. the attention-backend benchmark (eager / SDPA / compile / Triton) at long sequences, bf16;
#   3. training throughput of the standard model through deconstruct on the GPU (backend auto → Triton).
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (needs torch with CUDA and triton installed)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
mkdir -p "$out"
unset TRITON_INTERPRET
export PYTHONUNBUFFERED=1
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" \
    | tee "$out/device.txt" || exit 1
python -m pytest -m gpu tests/kernels -q -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.txt"
python -m pytest tests/kernels -q -p no:cacheprovider -m "not gpu" 2>&1 | tail -3 | tee -a "$out/gpu_tests.txt"
python benchmarks/bench_attention.py --device cuda --dtype bf16 --seq-lens 1024 2048 4096 8192 2>&1 | tee "$out/bench_attention.txt"
python -m deconstruct train studies/quickstart.yaml --device cuda --set model.d_model=512 --set model.heads=8 \
    --set model.layers=8 --set task.seq_len=1024 --set train.batch_size=16 --set train.steps=200 \
    --set train.eval_every=200 --format json 2>/dev/null | tee "$out/train_cuda.json"
