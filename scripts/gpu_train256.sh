#!/usr/bin/env bash
# The 256 px model's whole job on a lent GPU (the device tool: one call, a fixed lease).
#
# Run from the repository root with:
#   GPU_DIR   a folder holding default/ (the shipped model's pipeline.json, latent_bank.json, autoencoder/,
#             parts/ without its banks, generator/:
#             what configs/guided256_gpu.toml starts from) and faces256/ (scripts/compact_dataset.py)
#   OUT       where the files to bring back go (at most 8 files of 16 MB)
#   MINUTES   training time (train.max_minutes), default 6
# Brings back: the EMA generator as float16 (generator/model.safetensors + config.json), the
# metrics log, the last sample grid, the run's config and the job log (7 files).
# scripts/assemble_gpu_model.py turns them into a complete pipeline folder on the CPU machine.
set -euo pipefail
: "${GPU_DIR:?set GPU_DIR}" "${OUT:?set OUT}"
MINUTES=${MINUTES:-6}
RUN=${RUN:-/tmp/guided256_gpu}
DEVICE=${DEVICE:-cuda}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "cpus: $(nproc)"
} 2>&1 | tee "$OUT/job.log"

start=$(date +%s)
"$python" -m sketch2anime train configs/guided256_gpu.toml \
  --set "experiment.output_dir=\"$RUN\"" \
  --set "data.root=\"$GPU_DIR/faces256\"" \
  --set "experiment.autoencoder_dir=\"$GPU_DIR/default\"" \
  --set "experiment.parts_dir=\"$GPU_DIR/default\"" \
  --set "experiment.init_generator=\"$GPU_DIR/default/generator\"" \
  --set "train.max_minutes=$MINUTES" \
  --set train.progress=false \
  --set "train.device=\"$DEVICE\"" "$@" 2>&1 | tee -a "$OUT/job.log"
echo "job: $(( $(date +%s) - start )) s" | tee -a "$OUT/job.log"

# The generator in float16 (the shipped form): fp32 would pass the 16 MB limit on files brought back.
"$python" - "$RUN/model/generator" "$OUT/generator" <<'PY'
import sys
from pathlib import Path
from safetensors.torch import load_file, save_file
src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(src / "model.safetensors").items()}
save_file(tensors, out / "model.safetensors")
(out / "config.json").write_text((src / "config.json").read_text())
print("generator:", sum(v.numel() for v in tensors.values()), "values ->", out)
PY
cp "$RUN/metrics.jsonl" "$RUN/config.toml" "$OUT/"
last=$(ls "$RUN/samples" | sort | tail -1)
cp "$RUN/samples/$last" "$OUT/samples_last.png"
ls -la "$OUT" "$OUT/generator"
