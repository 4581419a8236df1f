#!/usr/bin/env bash
# Targets 1 and 4 of benchmarks/README.md on a CUDA GPU, in fp32 and bf16, plus the CUDA/AMP
# tests (tests/test_cuda.py, skipped on machines without a GPU). About 3 minutes on one H100.
#
#   bash benchmarks/gpu.sh [OUTPUT_FILE]      # from the repository root, package installed
#
# Everything it prints also goes to OUTPUT_FILE (default: benchmarks/gpu-results.txt), whose
# figures belong in the "GPU" section of benchmarks/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/gpu-results.txt}
python=${PYTHON:-python}
"$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu.sh: no CUDA GPU here')"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$python" -m pytest -q -p no:cacheprovider tests/test_cuda.py
  for precision in fp32 bf16; do
    "$python" benchmarks/sepformer_inference.py --device cuda --precision "$precision" \
      --seconds 4 16 --warmup 3 --runs 10 --rounds 1
    "$python" benchmarks/train_step.py --device cuda --precision "$precision" \
      --warmup 2 --runs 5 --rounds 1
  done
} 2>&1 | tee "$out"
