#!/usr/bin/env bash
# Data parallelism on one machine: the epoch time of 2 ranks x 1 thread (mpirun -np 2
# --bind-to none) against 1 process x 2 threads, for the MLP and LeNet, alternating the two
# so that both see the same machine load. Prints one line per run and the load average.
#   scripts/bench_dist.sh [rounds]        (build/bin/mnistctl, MNIST from $MNISTCTL_DATA or
#                                          ../shared/datasets beside the checkout; LeNet on
#                                          $LENET_LIMIT training images, default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
exe=${MNISTCTL:-build/bin/mnistctl}
data=${MNISTCTL_DATA:-../shared/datasets}
work=$(mktemp -d /tmp/mnistctl-bench-dist.XXXXXX)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
epoch2() {  # the second epoch's training time and images/s from a run's metrics.jsonl
  python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
e = [json.loads(l) for l in open(sys.argv[1]) if '"type":"epoch"' in l][-1]
print(f"epoch {e['epoch']} time {e['time_s']:.3f} s  {e['images_per_s']:.0f} images/s  val_accuracy {e['val_accuracy']:.4f}")
PY
}
for r in $(seq "$rounds"); do
  for net in mlp lenet; do
    limit=60000
    [ "$net" = lenet ] && limit=${LENET_LIMIT:-20000}
    common=(train --config "configs/$net.yaml" --data-dir "$data" --epochs 2 --set "data.train_limit=$limit")
    "$exe" "${common[@]}" --threads 2 --out "$work/$net-1x2-$r" >/dev/null
    echo "round $r $net 1 process x 2 threads: $(epoch2 "$work/$net-1x2-$r")  load $(cut -d' ' -f1 /proc/loadavg)"
    mpirun -q --oversubscribe --bind-to none -np 2 "$exe" "${common[@]}" --threads 1 --out "$work/$net-2x1-$r" >/dev/null
    echo "round $r $net 2 ranks x 1 thread:     $(epoch2 "$work/$net-2x1-$r")  load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
rm -rf "$work"
