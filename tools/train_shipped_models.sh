#!/usr/bin/env bash
# Train every shipped model side by side (docs/models.md). Each run is exactly
#   firereg train --config configs/models/NAME.yaml --out runs/models/NAME --device DEVICE
# stopped after SECONDS by SIGTERM if it has not finished (checkpoints are atomic, so the last
# one, every 250 steps, is intact; the reproducing command is then the same with --iterations
# set to that checkpoint's step, because each step's batch is a pure function of (seed, step)).
#
# usage: tools/train_shipped_models.sh [SECONDS] [DEVICE] [NAME ...]
set -u
budget=${1:-450}
device=${2:-cuda}
shift 2 2>/dev/null || shift $#
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(t1_t2_2d pd_t2_2d t1_pd_2d t1_t2_3d)
python=${PYTHON:-python3}
mkdir -p runs/models
for name in "${names[@]}"; do
  timeout --signal=TERM "$budget" "$python" -m firereg train --config "configs/models/$name.yaml" \
    --out "runs/models/$name" --device "$device" --no-progress >"runs/models/$name.log" 2>&1 &
done
wait
for name in "${names[@]}"; do
  echo "== $name: $(cat "runs/models/$name/latest" 2>/dev/null || echo 'no checkpoint')"
  tail -n 2 "runs/models/$name.log"
  cat "runs/models/$name/val.csv" 2>/dev/null
done
