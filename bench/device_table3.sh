#!/usr/bin/env bash
# Table 3 on a lent GPU machine (the workplace's device tool runs this from the repo root).
#
# That machine has python3 with torch and numpy but not micheck's other dependencies and no
# network: they travel as wheels in .whl/ (pydantic and what it needs, cp312), MNIST as
# .devdata/mnist.pkl.gz (both ignored by git; named in the call's `carry`). micheck is not
# installed there: its parts are linked into one package under /tmp/pkg, as pyproject's
# package-dir maps them. A 20-step smoke run on the GPU comes first, so a broken setup
# costs seconds; then the full run writes each estimator's result JSON as it finishes
# ($OUT/table3/<tag>/<estimator>.json), and the docs are made later, here, from those files
# (python -m bench table3 --report-only with the same arguments).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/out}"
BUDGET="${BUDGET:-420}"  # seconds after which no further estimator starts
log() { echo "[$(date +%T)] $*"; }

log "install wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .whl/*.whl || exit 1
REPO="$PWD"
rm -rf /tmp/pkg && mkdir -p /tmp/pkg && cp -r micheck /tmp/pkg/micheck && ln -s "$REPO/bench" /tmp/pkg/bench
for part in workers service clients; do ln -s "$REPO/$part" "/tmp/pkg/micheck/$part"; done
# run from /tmp/pkg: `python -m` puts the working directory first on the path, and the
# repo's own micheck/ (without its parts) must not shadow the linked one
cd /tmp/pkg
export PYTHONPATH="/tmp/pkg:/tmp/site" PYTHONUNBUFFERED=1
export MICHECK_MNIST_FILE="$REPO/.devdata/mnist.pkl.gz" MICHECK_CACHE_DIR=/tmp/micheck-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch, pydantic; print("torch", torch.__version__, "cuda",
torch.cuda.is_available(), torch.cuda.get_device_name(0), "pydantic", pydantic.VERSION)' || exit 1
log "load $(cat /proc/loadavg)"

common=(--critic joint --block 16 --width 0.25 --lr 5e-4 --threads 0)
log "smoke run"
python3 -m bench table3 "${common[@]}" --table3-estimators smile5,gm --steps 20 \
  --max-steps 20 --seeds 2 --transforms rotation --eval-samples 512 --out /tmp/smoke \
  --docs /tmp/smoke-docs || { log "smoke run failed"; exit 2; }

log "full run, budget ${BUDGET} s"
python3 -m bench table3 "${common[@]}" --table3-estimators "${ESTIMATORS:-smile5,mine,smileinf,gm}" \
  --steps 600 --max-steps 1875 --seeds 8 --max-seeds 16 --budget-s "$BUDGET" \
  --out "$OUT" --docs /tmp/docs
log "done; load $(cat /proc/loadavg)"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
