#!/usr/bin/env bash
# Gather what scripts/gpu_check.sh reads on the GPU machine, where ../shared does not travel: the
# shared corpus and the BabyLM 2025 fast BLiMP set, copied into .gpu_data/ (ignored by git, ~45 MB,
# under the device's 64 MiB limit). Then, in the session that holds the GPU, one call:
#   run(command="scripts/gpu_check.sh $OUT --data .gpu_data", carry=[".gpu_data"], timeout_s=540)
#   scripts/gpu_bundle.sh [SHARED_DATA_DIR]      (default: $ANTLM_SHARED_DATA or ../shared/data)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-${ANTLM_SHARED_DATA:-$repo/../shared/data}}
dst="$repo/.gpu_data"
for need in babylm_2024_100M_snippets babylm_2025_eval/fast_eval/blimp_fast; do
  [ -d "$src/$need" ] || { echo "gpu_bundle: $src/$need is missing" >&2; exit 2; }
done
mkdir -p "$dst/babylm_2025_eval/fast_eval"
cp -r "$src/babylm_2024_100M_snippets" "$dst/"
cp -r "$src/babylm_2025_eval/fast_eval/blimp_fast" "$dst/babylm_2025_eval/fast_eval/"
echo "gpu_bundle: $(du -sh "$dst" | cut -f1) in $dst"
