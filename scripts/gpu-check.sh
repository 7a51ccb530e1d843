#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU from the repository root, with the
# bundle made by scripts/gpu-bundle.sh beside it:
#
#   bash scripts/gpu-check.sh            (bundle: .gpu-bundle, or $GPU_BUNDLE)
#
# Steps: (1) the backend parity test (test_backend_ops must test "gpu", not skip it),
# (2) test_gpu, (3) LeNet trained 10 epochs on the GPU, its checkpoint evaluated on the
# CPU and on the GPU (>= 0.98), a CPU-trained MLP evaluated and used for predict on the GPU
# (the same accuracy and predictions as on the CPU), (4) determinism: two --deterministic runs give byte-identical
# checkpoints (and what determinism costs: epoch 2 times of a deterministic and a default run),
# (4a) CUDA graphs (train.cuda_graphs=true, opt-in): the deterministic run again, replayed from graphs,
# must give step 4's parameters and optimizer state byte for byte; images/s of both,
# (4b) data parallelism's GPU path: mpirun -np 1 ... --ctx gpu (MPI, NCCL) against the plain run of
# step 4, byte for byte (SKIPPED where the GPU machine has no mpirun), (5) the same LeNet in PyTorch on the same GPU
# (scripts/bench_torch.py), (6) a Markdown table comparing the two, (7) `mnistctl bench --ctx gpu`.
# Exits non-zero when any step failed, after a summary. Everything printed is also written
# to $OUT (when set), with the metrics, the parity log and the table.
# Needs: bash, python3 (with torch for step 5), nvidia-smi; no network. About 2-3 minutes.
set -uo pipefail

bundle=$(cd "${GPU_BUNDLE:-.gpu-bundle}" 2>/dev/null && pwd) ||
  { echo "gpu-check: no bundle at ${GPU_BUNDLE:-.gpu-bundle} (make it with scripts/gpu-bundle.sh)" >&2; exit 2; }
src=$(pwd)
[ -f "$src/configs/lenet.yaml" ] || src=$bundle  # configs from the checkout, else the bundle's
work=$(mktemp -d /tmp/mnistctl-gpu-check.XXXXXX)
out_dir=${OUT:-}
if [ -n "$out_dir" ]; then
  mkdir -p "$out_dir"
  exec > >(tee "$out_dir/gpu-check.log") 2>&1
fi
t_start=$(date +%s)

# ---- unpack ------------------------------------------------------------------------------
unxz_file() {  # f.xz -> f, keeping f.xz so that a rerun works
  local f=$1 dst=${1%.xz}
  [ -f "$dst" ] && [ "$dst" -nt "$f" ] && return 0
  if command -v xz >/dev/null; then
    xz -dkc "$f" >"$dst.tmp" && mv "$dst.tmp" "$dst"
  else
    python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as i, open(sys.argv[2], "wb") as o: shutil.copyfileobj(i, o)' "$f" "$dst.tmp" &&
      mv "$dst.tmp" "$dst"
  fi
}
for f in "$bundle"/bin/*.xz "$bundle"/lib/*.xz; do
  [ -e "$f" ] || continue
  unxz_file "$f" || { echo "gpu-check: cannot unpack $f" >&2; exit 2; }
done
chmod +x "$bundle"/bin/* 2>/dev/null

# ---- libraries: the bundle's, then the CUDA libraries of PyTorch's pip packages --------
nvidia_libs=$(python3 - <<'PY' 2>/dev/null
import os
try:
    import nvidia
except Exception:
    raise SystemExit(0)
dirs = set()
for base in list(nvidia.__path__):
    for root, _, files in os.walk(base):
        if any(f.startswith(("libcudart.so", "libcublas", "libcudnn", "libnccl")) for f in files):
            dirs.add(root)
print(":".join(sorted(dirs)))
PY
)
libpath=$bundle/lib
[ -n "$nvidia_libs" ] && libpath=$libpath:$nvidia_libs
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/local/cuda/lib64; do
  [ -d "$d" ] && libpath=$libpath:$d
done
# Only our binaries get this path; python3 keeps its own libraries.
run() { env LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }
mnistctl=$bundle/bin/mnistctl
data=$bundle/data

echo "gpu-check: bundle $bundle, work folder $work"
echo "gpu-check: GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
echo "gpu-check: CUDA libraries from: ${nvidia_libs:-<none found through python3>}"
missing=$(run ldd "$bundle/bin/libmnistctl_cuda.so" "$mnistctl" 2>&1 | grep "not found" | sort -u)
[ -n "$missing" ] && echo "gpu-check: WARNING, unresolved libraries:" && echo "$missing"

# ---- steps -------------------------------------------------------------------------------
summary=()
failed=0
step() {  # step NAME COMMAND...: runs it, records ok/FAILED with its time
  local name=$1 t0 rc
  shift
  echo
  echo "=== $name"
  t0=$(date +%s.%N)
  "$@"
  rc=$?
  local dt
  dt=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
  if [ $rc -eq 0 ]; then
    summary+=("ok      ${dt}s  $name")
  elif [ $rc -eq 77 ]; then  # a step whose tool is missing on this machine says so, and why
    summary+=("SKIPPED ${dt}s  $name")
  else
    summary+=("FAILED  ${dt}s  $name (exit $rc)")
    failed=$((failed + 1))
  fi
  return 0
}

parity() {
  local log=$work/parity.log rc
  run timeout 240 "$bundle/bin/test_backend_ops" >"$log" 2>&1
  rc=$?
  [ -n "$out_dir" ] && cp "$log" "$out_dir/parity.log"
  tail -3 "$log"
  if ! grep -q "^testing gpu:" "$log"; then
    echo "parity: the gpu backend was NOT tested:"
    run "$bundle/bin/test_backend_ops" -s "backends under test" 2>&1 | grep -E "gpu|testing" | head -5
    return 1
  fi
  grep "^testing " "$log"
  # The worst relative difference of every gpu comparison. A value that is not a finite
  # number (nan, inf) is a failure of its own, never read as 0.
  awk '$1 == "gpu" && /max rel/ {
         n++
         if ($NF !~ /^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/) { bad++; print "parity: not a finite difference: " $0; next }
         rel = $NF + 0; if (rel > worst) { worst = rel; what = $0 } }
       END { printf "parity: %d gpu comparisons with ref, worst max rel %.3e:\n  %s\n", n, worst, what
             if (bad) { printf "parity: %d comparisons with a non-finite difference\n", bad; exit 1 } }' "$log" || rc=1
  return $rc
}

gpu_tests() {
  run env MNISTCTL_TEST_EXE="$mnistctl" MNISTCTL_TEST_SOURCE_DIR="$src" MNISTCTL_TEST_MNIST="$data/mnist" \
    timeout 120 "$bundle/bin/test_gpu"
}

train_lenet() {
  run timeout 200 "$mnistctl" train --config "$src/configs/lenet.yaml" --ctx gpu --data-dir "$data" \
    --out "$work/lenet" || return $?
  [ -n "$out_dir" ] && cp "$work/lenet/metrics.jsonl" "$out_dir/lenet-gpu-metrics.jsonl"
  return 0
}

eval_on() {
  run timeout 100 "$mnistctl" eval --ctx "$1" --model "$work/lenet" --data-dir "$data" --min-accuracy 0.98
}

same_tensors() {  # same_tensors A.ckpt B.ckpt: the tensor records (parameters, optimizer state), byte for byte
  # The files themselves differ where they should: the meta record holds the measured
  # training time, the config record the run's own settings (docs/checkpoint.md: the layout).
  python3 - "$1" "$2" <<'PY'
import struct, sys
def tensors(path):
    b = open(path, "rb").read()
    at = 16  # magic, version, record count
    for _ in range(2):  # the config and meta text records
        kind, n = struct.unpack_from("<II", b, at)
        at += 8 + n
        (size,) = struct.unpack_from("<Q", b, at)
        at += 8 + size
    return b[at:-4]  # every tensor record, without the CRC
sys.exit(0 if tensors(sys.argv[1]) == tensors(sys.argv[2]) else 1)
PY
}

determinism() {
  # Two epochs: the second one's time is the steady state (the first includes cuDNN's
  # algorithm search, a timing run in the default mode, heuristics only in deterministic mode).
  local common=(train --config "$src/configs/lenet.yaml" --ctx gpu --data-dir "$data" --epochs 2
                --set data.train_limit=10000)
  run timeout 100 "$mnistctl" "${common[@]}" --deterministic --out "$work/det1" >"$work/det1.log" 2>&1 &&
    run timeout 100 "$mnistctl" "${common[@]}" --deterministic --out "$work/det2" >"$work/det2.log" 2>&1 &&
    run timeout 100 "$mnistctl" "${common[@]}" --out "$work/nondet" >"$work/nondet.log" 2>&1 ||
    { tail -n 5 "$work"/det1.log "$work"/det2.log "$work"/nondet.log; return 1; }
  for r in det1 det2 nondet; do
    python3 - "$work/$r/metrics.jsonl" "$r" <<'PY'
import json, sys
e = [json.loads(l) for l in open(sys.argv[1]) if '"epoch"' in l and '"time_s"' in l][-1]
print(f"{sys.argv[2]:7s} epoch {e['epoch']} time {e['time_s']:.3f} s  {e['images_per_s']:.0f} images/s  "
      f"val_accuracy {e['val_accuracy']:.4f}  loss {e['loss']:.6f}")
PY
  done
  if same_tensors "$work/det1/last.ckpt" "$work/det2/last.ckpt"; then
    echo "determinism: the two --deterministic checkpoints hold byte-identical tensors"
  else
    echo "determinism: the tensors of the two --deterministic checkpoints DIFFER"
    return 1
  fi
  if same_tensors "$work/det1/last.ckpt" "$work/nondet/last.ckpt"; then
    echo "determinism: (the default run's tensors are identical too)"
  else
    echo "determinism: (the default run's tensors differ from the deterministic one's, as they may)"
  fi
}

torch_bench() {
  timeout 240 python3 "$src/scripts/bench_torch.py" --data "$data/mnist" --epochs 3 --json "$work/torch.json" ||
    return $?
  [ -n "$out_dir" ] && cp "$work/torch.json" "$out_dir/torch.json"
  return 0
}

table() {
  python3 - "$work/lenet/metrics.jsonl" "$work/torch.json" <<'PY' | tee "$work/table.md"
import json, os, sys
rows = []
mx = [json.loads(l) for l in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
mx = [e for e in mx if e.get("type", "epoch") == "epoch" and "time_s" in e]
if len(mx) >= 3:
    t = (mx[1]["time_s"] + mx[2]["time_s"]) / 2
    ips = (mx[1]["images_per_s"] + mx[2]["images_per_s"]) / 2
    rows.append(("mnistctl (cuDNN + cuBLAS)", t, ips, mx[2]["val_accuracy"], mx[-1]["val_accuracy"], len(mx)))
if os.path.exists(sys.argv[2]):
    tj = json.load(open(sys.argv[2]))
    rows.append((f"PyTorch {tj['torch']} (cudnn.benchmark={tj['cudnn_benchmark']})", tj["mean_time_s"],
                 tj["mean_images_per_s"], tj["epochs"][min(2, len(tj["epochs"]) - 1)]["test_accuracy"],
                 tj["epochs"][-1]["test_accuracy"], len(tj["epochs"])))
print("| tool | epoch time (s), mean of epochs 2-3 | images/s | test accuracy after epoch 3 | final test accuracy (epochs) |")
print("| --- | ---: | ---: | ---: | ---: |")
for name, t, ips, acc3, acc, n in rows:
    print(f"| {name} | {t:.3f} | {ips:,.0f} | {acc3:.4f} | {acc:.4f} ({n}) |")
if len(rows) == 2:
    print(f"\nmnistctl / PyTorch speed: {rows[0][2] / rows[1][2]:.2f}x (training images/s, FP32, TF32 off)")
if len(rows) < 2:
    sys.exit(1)
PY
  local rc=${PIPESTATUS[0]}
  [ -n "$out_dir" ] && cp "$work/table.md" "$out_dir/table.md"
  return "$rc"
}

gpu_bench() {  # per-layer timing of one LeNet step on the GPU, and the whole step apart
  run timeout 120 "$mnistctl" bench --ctx gpu --iters 50 --json >"$work/bench-gpu.json" || return 1
  run timeout 120 "$mnistctl" bench --ctx gpu --iters 50 | tee "$work/bench-gpu.txt" || return 1
  [ -n "$out_dir" ] && cp "$work/bench-gpu.json" "$work/bench-gpu.txt" "$out_dir/"
  python3 - "$work/bench-gpu.json" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
t = [row["forward_ms"] for row in r["rows"]] + [row["backward_ms"] for row in r["rows"] if row["backward_ms"]]
t.append(r["step_ms"])
ok = all(math.isfinite(x["median"]) and x["median"] > 0 for x in t) and math.isfinite(r["gemm_gflops"])
print(f"bench: {len(r['rows'])} rows, whole step {r['step_ms']['median']:.3f} ms, sum of rows "
      f"{r['sum_of_medians_ms']:.3f} ms, GEMM limit {r['gemm_gflops']:.0f} GFLOP/s")
sys.exit(0 if ok else 1)
PY
}

cpu_to_gpu() {  # the other direction: a CPU-trained checkpoint, scored and used on the GPU
  local m=$work/mlp-cpu
  run timeout 100 "$mnistctl" train --config "$src/configs/mlp.yaml" --ctx cpu --data-dir "$data" --out "$m" \
    --epochs 2 >"$work/mlp-cpu.log" 2>&1 || { tail -n 5 "$work/mlp-cpu.log"; return 1; }
  local ctx
  for ctx in cpu gpu; do
    run timeout 60 "$mnistctl" eval --ctx $ctx --model "$m" --data-dir "$data" --json >"$work/eval-$ctx.json" &&
      run timeout 60 "$mnistctl" predict --ctx $ctx --model "$m" --data-dir "$data" --output "$work/pred-$ctx.csv" ||
      return 1
  done
  python3 - "$work" <<'PY'
import csv, json, sys
w = sys.argv[1]
acc = {c: json.load(open(f"{w}/eval-{c}.json"))["accuracy"] for c in ("cpu", "gpu")}
rows = {c: list(csv.reader(open(f"{w}/pred-{c}.csv")))[1:] for c in ("cpu", "gpu")}
same = sum(a[2] == b[2] for a, b in zip(rows["cpu"], rows["gpu"]))
dp = max(abs(float(x) - float(y)) for a, b in zip(rows["cpu"], rows["gpu"]) for x, y in zip(a[3:], b[3:]))
print(f"cpu->gpu: eval accuracy cpu {acc['cpu']:.4f}, gpu {acc['gpu']:.4f}; predict: {same}/{len(rows['cpu'])} "
      f"classes agree, max probability difference {dp:.2e}")
ok = abs(acc["cpu"] - acc["gpu"]) <= 1e-4 and len(rows["cpu"]) == 10000 and same >= 9999 and dp < 1e-4
sys.exit(0 if ok else 1)
PY
}

graphs() {  # train.cuda_graphs (opt-in): the bits of step 4's deterministic eager run, and its speed
  [ -f "$work/det1/last.ckpt" ] || { echo "graphs: step 4's det1 run is missing"; return 1; }
  run timeout 100 "$mnistctl" train --config "$src/configs/lenet.yaml" --ctx gpu --data-dir "$data" --epochs 2 \
    --set data.train_limit=10000 --deterministic --set train.cuda_graphs=true --out "$work/graphs" \
    >"$work/graphs.log" 2>&1 || { tail -n 8 "$work/graphs.log"; return 1; }
  [ -n "$out_dir" ] && cp "$work/graphs.log" "$out_dir/graphs.log"
  grep "cuda_graphs" "$work/graphs.log"
  grep -q "replayed from CUDA graphs" "$work/graphs.log" || { echo "graphs: the run did not replay graphs"; return 1; }
  # A capture that failed later (the validation graph, say) turns graphs off with a warning and
  # the run goes on eagerly, with the same bits: that is a failure of this step.
  if grep -q "warning: train.cuda_graphs" "$work/graphs.log"; then
    grep "warning: train.cuda_graphs" "$work/graphs.log"; echo "graphs: a capture failed"; return 1
  fi
  # The checkpoint holds only the parameters (LeNet's SGD has no state), so compare every
  # epoch's training and validation figures as well: the validation graph's sums show only here.
  python3 - "$work/det1" "$work/graphs" <<'PY' || return 1
import json, sys
def epochs(run):
    return [json.loads(l) for l in open(f"{run}/metrics.jsonl") if '"type":"epoch"' in l]
a, g = epochs(sys.argv[1]), epochs(sys.argv[2])
print(f"graphs: epoch 2 eager {a[-1]['images_per_s']:.0f} images/s ({a[-1]['time_s']:.3f} s), graphs "
      f"{g[-1]['images_per_s']:.0f} images/s ({g[-1]['time_s']:.3f} s): {g[-1]['images_per_s'] / a[-1]['images_per_s']:.2f}x")
keys = ("loss", "train_accuracy", "val_loss", "val_accuracy", "lr")
bad = [(x["epoch"], k, x[k], y[k]) for x, y in zip(a, g) for k in keys if x[k] != y[k]]
if len(a) != len(g) or len(a) < 2 or bad:
    print(f"graphs: epoch figures DIFFER from the eager deterministic run ({len(a)} and {len(g)} epochs): {bad}")
    sys.exit(1)
print(f"graphs: loss, accuracy, validation loss and accuracy of all {len(a)} epochs equal the eager run's")
PY
  if same_tensors "$work/det1/last.ckpt" "$work/graphs/last.ckpt"; then
    echo "graphs: parameters and optimizer state byte-identical to the eager deterministic run"
  else
    echo "graphs: parameters and optimizer state DIFFER from the eager deterministic run"
    return 1
  fi
}

mpi_gpu() {  # data parallelism's GPU path: mpirun -np 1 goes through MPI + NCCL; same bits as step 4
  local mpirun_bin
  mpirun_bin=$(command -v mpirun) || { echo "mpi-gpu: SKIPPED: no mpirun on this machine (Open MPI not installed)"; return 77; }
  [ -f "$work/det1/last.ckpt" ] || { echo "mpi-gpu: step 4's det1 run is missing"; return 1; }
  echo "mpi-gpu: $("$mpirun_bin" --version 2>&1 | head -1)"
  run env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 120 "$mpirun_bin" -np 1 --bind-to none \
    -x LD_LIBRARY_PATH "$mnistctl" train --config "$src/configs/lenet.yaml" --ctx gpu --data-dir "$data" \
    --epochs 2 --set data.train_limit=10000 --deterministic --out "$work/mpi1" >"$work/mpi1.log" 2>&1 ||
    { tail -n 8 "$work/mpi1.log"; return 1; }
  grep -E "data parallel|Epoch\[2\] Train" "$work/mpi1.log"
  grep -q "gradients summed by NCCL" "$work/mpi1.log" || { echo "mpi-gpu: the run did not use NCCL"; return 1; }
  if same_tensors "$work/det1/last.ckpt" "$work/mpi1/last.ckpt"; then
    echo "mpi-gpu: mpirun -np 1 (MPI + NCCL) and the plain GPU run give byte-identical tensors"
  else
    echo "mpi-gpu: the tensors of mpirun -np 1 and the plain GPU run DIFFER"
    return 1
  fi
}

step "1 parity: test_backend_ops (gpu vs ref, max rel < 1e-4)" parity
step "2 test_gpu" gpu_tests
step "3a train LeNet 10 epochs on gpu" train_lenet
step "3b eval the GPU checkpoint on cpu (>= 0.98)" eval_on cpu
step "3c eval the GPU checkpoint on gpu (>= 0.98)" eval_on gpu
step "3d a CPU-trained MLP on the gpu: eval and predict agree with the cpu" cpu_to_gpu
step "4 determinism: two --deterministic runs, byte-identical checkpoints" determinism
step "4a train.cuda_graphs=true: the deterministic run's weights, byte for byte; images/s" graphs
step "4b mpirun -np 1 --ctx gpu (MPI + NCCL) equals the plain GPU run" mpi_gpu
step "5 PyTorch LeNet on the same GPU (scripts/bench_torch.py)" torch_bench
step "6 comparison table" table
step "7 mnistctl bench on the gpu (per-layer timing, finite)" gpu_bench

echo
echo "=== summary ($(($(date +%s) - t_start)) s, work folder $work)"
printf '%s\n' "${summary[@]}"
if [ $failed -ne 0 ]; then
  echo "gpu-check: FAILED ($failed of ${#summary[@]} steps)"
  exit 1
fi
echo "gpu-check: all ${#summary[@]} steps passed"
