#!/usr/bin/env bash
# The CPU benchmark: mnistctl against PyTorch on the same machine, in the same invocation.
#
#   scripts/bench.sh                      # both networks, 3 epochs, threads = cores
#   scripts/bench.sh --epochs 10          # the tutorial's full 10 epochs
#   scripts/bench.sh --only lenet --threads 1
#   scripts/bench.sh --bf16 no            # skip LeNet in BF16
#
# Options: --epochs N (3), --threads N (the number of cores), --only mlp|lenet,
#          --bf16 auto|yes|no (auto: LeNet is also trained with `--precision bf16` where the
#          CPU has AVX-512 BF16; its row is compared with the same PyTorch FP32 processes),
#          --repeats N (3: processes per tool and network; the best one counts),
#          --data-dir D (the folder that holds mnist/), --out-dir D ($BUILD_DIR).
# Environment: BUILD_DIR (build-bench), OUT_DIR, MNISTCTL_DATA, MNISTCTL_MIRROR, PYTHON (the
# python3 with torch; default: python3 if it imports torch, else /usr/bin/python3).
#
# What it does, and why this way:
# - Installs its own dependencies when missing: Debian's python3-torch (PyTorch 1.13, CPU,
#   OpenBLAS) and GNU time. They are benchmark dependencies, not build ones, so they are not
#   in scripts/setup.sh.
# - Builds mnistctl (Release, CUDA off: the CPU is measured) in $BUILD_DIR.
# - Trains each network with the tutorial's recipe (configs/mlp.yaml, configs/lenet.yaml:
#   batch 100, SGD lr 0.1, U(-0.01, 0.01) init, reshuffled each epoch) with mnistctl and
#   with scripts/bench_torch.py, interleaved (mnistctl MLP, PyTorch MLP, mnistctl LeNet,
#   PyTorch LeNet) so that background load hits both alike. Machines are noisy: the ratios
#   are the result, the absolute times only tell the machine.
# - Each tool runs in --repeats separate processes (3) and the process with the fastest median
#   epoch counts: PyTorch 1.13 here is bimodal from process to process, because glibc's malloc
#   returns its large per-batch buffers to the kernel (mmap/munmap: millions of minor page
#   faults per epoch). The PyTorch processes therefore run with the malloc tuning that its CPU
#   guides get from jemalloc or tcmalloc ($TORCH_TUNABLES below); every process's minor page
#   faults are reported, mnistctl's too. The same tunables put PyTorch's malloc on transparent
#   huge pages (glibc.malloc.hugetlb=1, glibc 2.35 or later), as mnistctl places its dataset
#   and large tensors (core/huge_pages.h): without them PyTorch pays page walks that mnistctl
#   avoids, and ran a LeNet epoch about 12% slower here.
# - Both tools time the epoch's shuffle inside the epoch and keep the last partial batch.
# - A warning (stderr and the report) when the load average before, or after minus the
#   benchmark's own threads, exceeds a quarter of the cores: the figures are then not a result.
#   "Before" is read after the build of mnistctl, once the load average has settled from it
#   (the script waits up to 3 minutes).
# - Training speed: the median epoch time and images/s of epochs 2..N (epoch 1 is warm-up:
#   JIT kernels, page faults); mnistctl's from its metrics.jsonl.
# - Inference speed: one pass over the 10,000 test images at batch 100 after each epoch,
#   in-process (mnistctl: the validation pass, val_time_s; PyTorch: eval() + no_grad()),
#   median of epochs 2..N. `mnistctl predict` is also timed end to end (start-up, model and
#   data loading, CSV output) and on 100 images, for its start-up cost.
# - Peak memory: max RSS of each whole training process (GNU time -v).
# Writes the tables to stdout and to $OUT_DIR/bench.md; the raw logs stay in
# $OUT_DIR/bench-work/.
set -euo pipefail

cd "$(dirname "$0")/.."
src=$(pwd)
cmdline="scripts/bench.sh$(printf ' %q' "$@")"

epochs=3
repeats=3
threads=$(nproc)
only=""
bf16=auto
data_root=""
out_dir=${OUT_DIR:-}
die() { echo "bench: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] || die "$1 needs a whole number >= 1, got '$2'"; }
while [ $# -gt 0 ]; do
  case $1 in
    --epochs) [ $# -ge 2 ] || die "--epochs needs a value"; need_int --epochs "$2"; epochs=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a value"; need_int --threads "$2"; threads=$2; shift 2 ;;
    --repeats) [ $# -ge 2 ] || die "--repeats needs a value"; need_int --repeats "$2"; repeats=$2; shift 2 ;;
    --only) [ $# -ge 2 ] || die "--only needs mlp or lenet"
            [[ $2 == mlp || $2 == lenet ]] || die "--only takes mlp or lenet, got '$2'"; only=$2; shift 2 ;;
    --bf16) [ $# -ge 2 ] || die "--bf16 needs auto, yes or no"
            [[ $2 == auto || $2 == yes || $2 == no ]] || die "--bf16 takes auto, yes or no, got '$2'"; bf16=$2; shift 2 ;;
    --data-dir) [ $# -ge 2 ] || die "--data-dir needs a folder"; data_root=$2; shift 2 ;;
    --out-dir) [ $# -ge 2 ] || die "--out-dir needs a folder"; out_dir=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
nets=(mlp lenet)
[ -n "$only" ] && nets=("$only")
# BF16 needs AVX-512 BF16 (mnistctl refuses it otherwise, rather than emulating it slowly).
if [ "$bf16" = auto ]; then
  grep -qw avx512_bf16 /proc/cpuinfo && bf16=yes || bf16=no
fi
[[ " ${nets[*]} " == *" lenet "* ]] || bf16=no
[ "$epochs" -ge 2 ] || echo "bench: WARNING: with --epochs 1 the only epoch timed is the warm-up one" >&2
[ "$repeats" -ge 3 ] || echo "bench: WARNING: fewer than 3 processes per tool: a slow-mode process may count" >&2
# glibc malloc: keep large freed blocks instead of unmapping them, on huge pages (see the header).
TORCH_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.hugetlb=1

build_dir=${BUILD_DIR:-build-bench}
out_dir=${out_dir:-$build_dir}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
work=$out_dir/bench-work
rm -rf "$work"
mkdir -p "$work"

# ---- dependencies (installed on first use) ------------------------------------------------
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to install $*"
    sudo=sudo
  fi
  echo "bench: installing $* (apt)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}
# PyTorch's Python: $PYTHON, else the first python3 that imports torch (Debian's python3-torch
# is for /usr/bin/python3, which a pyenv or venv python3 earlier on PATH does not see).
find_torch_python() {
  local c
  for c in ${PYTHON:-python3 /usr/bin/python3}; do
    "$c" -c "import torch" 2>/dev/null && { py=$c; return 0; }
  done
  return 1
}
py=""
find_torch_python || { [ -z "${PYTHON:-}" ] && apt_install python3-torch; } || true
[ -n "$py" ] || find_torch_python || die "no python3 that imports torch (${PYTHON:-python3, /usr/bin/python3})"
[ -x /usr/bin/time ] || apt_install time
# Debian's torch is built against the generic libblas.so.3, which is the slow reference BLAS
# unless an OpenBLAS is installed. The OpenMP build of OpenBLAS, because torch runs its own
# OpenMP pool: with the pthread build the two pools fight over the cores (measured here: the
# MLP trained 50x slower). It is given to the PyTorch runs alone, through LD_LIBRARY_PATH,
# whatever the system's libblas.so.3 alternative points to.
openblas=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/openblas-openmp
[ -f "$openblas/libblas.so.3" ] || apt_install libopenblas0-openmp
[ -f "$openblas/libblas.so.3" ] || die "no OpenMP OpenBLAS at $openblas after installing libopenblas0-openmp"
torch_pkg=$(dpkg-query -W -f='${Version}' python3-torch 2>/dev/null || true)

# ---- mnistctl, Release, CPU only ----------------------------------------------------------
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  echo "bench: configuring $build_dir (Release, CUDA off)"
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMNISTCTL_ENABLE_CUDA=OFF \
    -DBUILD_TESTING=OFF >"$work/configure.log" 2>&1 || { tail -20 "$work/configure.log"; die "configure failed"; }
fi
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
[ "$btype" = Release ] || echo "bench: WARNING: $build_dir is a '$btype' build, not Release: timings are not representative" >&2
echo "bench: building mnistctl in $build_dir"
cmake --build "$build_dir" --target mnistctl -j"$(nproc)" >"$work/build.log" 2>&1 ||
  { tail -30 "$work/build.log"; die "build failed (log: $work/build.log)"; }
mnistctl=$(cd "$build_dir" && pwd)/bin/mnistctl

# ---- data ---------------------------------------------------------------------------------
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
has_mnist() { local f; for f in "${files[@]}"; do [ -f "$1/mnist/$f" ] || return 1; done; }
if [ -z "$data_root" ]; then
  default_root=${MNISTCTL_DATA:-${XDG_CACHE_HOME:+$XDG_CACHE_HOME/mnistctl}}
  default_root=${default_root:-$HOME/.cache/mnistctl}
  if has_mnist "$default_root"; then
    data_root=$default_root
  elif has_mnist "$src/../shared/datasets"; then
    data_root=$src/../shared/datasets
  else
    echo "bench: fetching MNIST into $default_root"
    "$mnistctl" fetch --dataset mnist --data-dir "$default_root" || die "mnistctl fetch failed (set MNISTCTL_MIRROR?)"
    data_root=$default_root
  fi
fi
has_mnist "$data_root" || die "$data_root/mnist/ does not hold the four MNIST .gz files"
data_root=$(cd "$data_root" && pwd)

# 100 test images as a raw IDX file: `mnistctl predict` on it is start-up + model loading.
python3 - "$data_root/mnist/t10k-images-idx3-ubyte.gz" "$work/test100.idx" <<'PY'
import gzip, struct, sys
raw = gzip.open(sys.argv[1]).read()
n, rows, cols = struct.unpack(">III", raw[4:16])
open(sys.argv[2], "wb").write(raw[:4] + struct.pack(">III", 100, rows, cols) + raw[16:16 + 100 * rows * cols])
PY

# ---- the runs -----------------------------------------------------------------------------
timed() {  # timed NAME COMMAND...: runs it under GNU time -v, output in $work/NAME.log
  local name=$1
  shift
  if ! /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1; then
    tail -15 "$work/$name.log" >&2
    die "$name failed (log: $work/$name.log)"
  fi
}
wall() {  # wall COMMAND...: prints the wall time in seconds of COMMAND (output discarded)
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/wall.err" || { cat "$work/wall.err" >&2; die "failed: $*"; }
  t1=$(date +%s.%N)
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.4f}')" "$t0" "$t1"
}

# A build just now loads the 1-minute load average itself: wait (3 minutes at most) until it
# is back under a quarter of the cores, so that the check below sees other work, not ours.
over_quarter() { awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v c="$(nproc)" 'BEGIN { exit !(l > c / 4) }'; }
for wait_round in $(seq 1 36); do
  over_quarter || break
  if [ "$wait_round" = 1 ]; then
    echo "bench: waiting for the load average ($(cut -d' ' -f1 /proc/loadavg)) to settle under a quarter of the cores"
  fi
  sleep 5
done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
for rep in $(seq 1 "$repeats"); do
  for net in "${nets[@]}"; do
    echo "bench: $net: mnistctl train, $epochs epochs, $threads threads (process $rep of $repeats)"
    timed "mnistctl-$net-$rep" "$mnistctl" train --config "configs/$net.yaml" --ctx cpu --threads "$threads" \
      --data-dir "$data_root" --epochs "$epochs" --out "$work/run-$net-$rep"
    if [ "$net" = lenet ] && [ "$bf16" = yes ]; then
      echo "bench: lenet: mnistctl train --precision bf16, $epochs epochs, $threads threads (process $rep of $repeats)"
      timed "mnistctl-lenet-bf16-$rep" "$mnistctl" train --config configs/lenet.yaml --precision bf16 --ctx cpu \
        --threads "$threads" --data-dir "$data_root" --epochs "$epochs" --out "$work/run-lenet-bf16-$rep"
    fi
    echo "bench: $net: PyTorch (scripts/bench_torch.py), $epochs epochs, $threads threads (process $rep of $repeats)"
    timed "torch-$net-$rep" env LD_LIBRARY_PATH="$openblas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      GLIBC_TUNABLES="$TORCH_TUNABLES" OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
      "$py" scripts/bench_torch.py --net "$net" --device cpu --threads "$threads" \
      --data "$data_root/mnist" --epochs "$epochs" --json "$work/torch-$net-$rep.json"
  done
done
for net in "${nets[@]}"; do
  echo "bench: $net: mnistctl predict (test set, and 100 images), 3 times each"
  for i in 1 2 3; do
    wall "$mnistctl" predict --model "$work/run-$net-1" --ctx cpu --threads "$threads" --data-dir "$data_root" \
      >>"$work/predict-$net-test.txt"
    wall "$mnistctl" predict --model "$work/run-$net-1" --ctx cpu --threads "$threads" --input "$work/test100.idx" \
      >>"$work/predict-$net-100.txt"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
# The load average right after the runs includes the benchmark's own threads (they kept
# $threads cores busy for minutes): only what is above them is other work.
load_warning=$(python3 -c "import sys; c, t = int(sys.argv[1]), int(sys.argv[2]); b, a = float(sys.argv[3]), float(sys.argv[4])
other = max(b, a - min(t, c))
print('' if other <= c / 4 else f'WARNING: other work loaded the machine (load average {b:.2f} before, {a:.2f} after, of which '
      f'up to {min(t, c)} is this benchmark): more than a quarter of the {c} cores, these figures are not a result')" \
  "$(nproc)" "$threads" "${load_before%% *}" "${load_after%% *}")
[ -z "$load_warning" ] || echo "bench: $load_warning" >&2

# ---- the report ---------------------------------------------------------------------------
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
avx512=no
grep -qw avx512f /proc/cpuinfo && avx512=yes
export BENCH_WORK=$work BENCH_NETS="${nets[*]}" BENCH_EPOCHS=$epochs BENCH_THREADS=$threads \
  BENCH_CMD=$cmdline BENCH_CPU="${cpu_model:-unknown}" BENCH_CORES=$(nproc) BENCH_AVX512=$avx512 \
  BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') BENCH_VERSION=$("$mnistctl" --version | head -1) \
  BENCH_REPEATS=$repeats BENCH_BF16=$bf16 BENCH_LOAD_WARNING=$load_warning BENCH_TORCH_TUNABLES=$TORCH_TUNABLES \
  BENCH_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
  BENCH_DIRTY=$(git rev-parse -q HEAD >/dev/null 2>&1 && ! git diff --quiet HEAD 2>/dev/null && echo " + uncommitted changes" || true) \
  BENCH_TORCH_PKG=${torch_pkg:+Debian python3-torch $torch_pkg, } \
  BENCH_LOAD="$load_before before, $load_after after (the after figure includes this benchmark's $threads threads)" BENCH_SECONDS=$(($(date +%s) - t_start))
python3 - >"$work/bench.md" <<'PY'
import json, os, re, statistics

env = os.environ
work = env["BENCH_WORK"]
names = {"mlp": "MLP (configs/mlp.yaml)", "lenet": "LeNet (configs/lenet.yaml)"}


def max_rss_mib(name):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{work}/{name}.time").read())
    return int(m.group(1)) / 1024


def minor_faults(name):
    m = re.search(r"Minor \(reclaiming a frame\) page faults: (\d+)", open(f"{work}/{name}.time").read())
    return int(m.group(1))


def timed_epochs(records):
    return records[1:] if len(records) > 1 else records  # epoch 1 is warm-up


def med(xs):
    return statistics.median(list(xs))


onednn = "unknown"
torch_version = "unknown"
torch_build = ""
out = []
repeats = int(env["BENCH_REPEATS"])


def mnistctl_epochs(run, rep):
    mx = [json.loads(l) for l in open(f"{work}/run-{run}-{rep}/metrics.jsonl")]
    return [e for e in mx if e.get("type") == "epoch"]


def best_mnistctl(run):
    """The process with the fastest median epoch: (its epochs, each process's median, its number)."""
    runs = {r: mnistctl_epochs(run, r) for r in range(1, repeats + 1)}
    meds = {r: med(e["time_s"] for e in timed_epochs(v)) for r, v in runs.items()}
    best = min(meds, key=meds.get)
    return runs[best], meds, best


for net in env["BENCH_NETS"].split():
    # The process with the fastest median epoch, per tool: a slow-mode process is no result.
    mx, m_med, mr = best_mnistctl(net)
    t_runs = {r: json.load(open(f"{work}/torch-{net}-{r}.json")) for r in range(1, repeats + 1)}
    t_med = {r: med(e["time_s"] for e in timed_epochs(v["epochs"])) for r, v in t_runs.items()}
    tr = min(t_med, key=t_med.get)
    tm = timed_epochs(mx)
    m = re.search(r"oneDNN [0-9.]+", open(f"{work}/mnistctl-{net}-{mr}.log").read())
    if m:
        onednn = m.group(0)
    tj = t_runs[tr]
    torch_version = tj["torch"]
    cb = tj.get("cpu_build", {})
    loaded = [os.path.basename(os.path.dirname(p)) + "/" + os.path.basename(p) for p in cb.get("blas_loaded", [])]
    loaded = [p for p in loaded if "libopenblas" in p] or loaded  # the reference BLAS is a libblas alone
    torch_build = (f"BLAS {', '.join(loaded) or cb.get('blas', '?')}, "
                   f"oneDNN (mkldnn) {'on' if cb.get('mkldnn') else 'off'}")
    tt = timed_epochs(tj["epochs"])
    rows = [
        ("mnistctl", med(e["time_s"] for e in tm), med(e["images_per_s"] for e in tm),
         med(10000 / e["val_time_s"] for e in tm), max_rss_mib(f"mnistctl-{net}-{mr}"), mx[-1]["val_accuracy"],
         minor_faults(f"mnistctl-{net}-{mr}")),
        (f"PyTorch {torch_version}", med(e["time_s"] for e in tt), med(e["images_per_s"] for e in tt),
         med(e["infer_images_per_s"] for e in tt), max_rss_mib(f"torch-{net}-{tr}"), tt[-1]["test_accuracy"],
         minor_faults(f"torch-{net}-{tr}")),
    ]
    bf16_note = ""
    if net == "lenet" and env["BENCH_BF16"] == "yes":
        bx, b_med, br = best_mnistctl("lenet-bf16")
        bt = timed_epochs(bx)
        rows.insert(1, ("mnistctl, `--precision bf16`", med(e["time_s"] for e in bt), med(e["images_per_s"] for e in bt),
                        med(10000 / e["val_time_s"] for e in bt), max_rss_mib(f"mnistctl-lenet-bf16-{br}"),
                        bx[-1]["val_accuracy"], minor_faults(f"mnistctl-lenet-bf16-{br}")))
        bf16_note = (f" The BF16 row is compared with the same PyTorch FP32 processes; its median epoch time per "
                     f"process: {', '.join(f'{b_med[r]:.3f}' for r in sorted(b_med))} s.")
    t_ips, t_inf = rows[-1][2], rows[-1][3]
    first = tm[0]["epoch"]
    span = f"epoch {first}" if len(tm) == 1 else f"epochs {first}-{tm[-1]['epoch']}"
    out.append(f"### {names[net]}, {len(mx)} epochs\n")
    out.append(f"| tool | epoch time (s) | training images/s | ratio mnistctl/PyTorch | "
               f"inference images/s | ratio | peak RSS (MiB) | minor page faults | test accuracy |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for i, (tool, t, ips, inf, rss, acc, faults) in enumerate(rows):
        last = i == len(rows) - 1
        r1 = "1.00x" if last else f"**{ips / t_ips:.2f}x**"
        r2 = "1.00x" if last else f"**{inf / t_inf:.2f}x**"
        out.append(f"| {tool} | {t:.3f} | {ips:,.0f} | {r1} | {inf:,.0f} | {r2} | {rss:.0f} | {faults:,} | {acc:.4f} |")
    if len(tm) > 1 and len(tt) > 1:
        fm, ft = min(e["time_s"] for e in tm), min(e["time_s"] for e in tt)
        fastest = (f" Fastest timed epoch (the least disturbed by other load): mnistctl {fm:.3f} s, "
                   f"PyTorch {ft:.3f} s, ratio {ft / fm:.2f}x.")
    else:
        fastest = ""
    pt = [float(x) for x in open(f"{work}/predict-{net}-test.txt").read().split()]
    p1 = [float(x) for x in open(f"{work}/predict-{net}-100.txt").read().split()]
    out.append("")
    out.append(f"Median of {span} (epoch 1 is warm-up). Ratios: mnistctl's images/s over PyTorch's "
               f"(above 1: mnistctl is faster). Inference: the 10,000 test images at batch 100, in-process. "
               f"`mnistctl predict` end to end (start-up, model and data loading, inference, CSV) over the "
               f"test set: {med(pt):.3f} s; on 100 images (start-up and model loading): {med(p1):.3f} s; "
               f"median of 3.{fastest} Best of {repeats} processes per tool; median epoch time of each "
               f"process: mnistctl {', '.join(f'{m_med[r]:.3f}' for r in sorted(m_med))} s, PyTorch "
               f"{', '.join(f'{t_med[r]:.3f}' for r in sorted(t_med))} s.{bf16_note} Minor page faults: the whole "
               f"process, start-up and data loading included.\n")

hdr = [
    f"CPU benchmark, mnistctl vs PyTorch, {env['BENCH_EPOCHS']} epochs, {env['BENCH_THREADS']} threads",
    "",
    f"- machine: {env['BENCH_CPU']}, {env['BENCH_CORES']} cores, AVX-512 {env['BENCH_AVX512']}; "
    f"load average {env['BENCH_LOAD']}",
    f"- date: {env['BENCH_DATE']}; {env['BENCH_SECONDS']} s in all",
    f"- versions: {env['BENCH_VERSION']} (commit {env['BENCH_COMMIT']}{env['BENCH_DIRTY']}), {onednn}; "
    f"PyTorch {torch_version} ({env.get('BENCH_TORCH_PKG', '')}{torch_build})",
    f"- PyTorch processes run with GLIBC_TUNABLES={env['BENCH_TORCH_TUNABLES']}",
    f"- command: `{env['BENCH_CMD']}`",
    "",
]
if env.get("BENCH_LOAD_WARNING"):
    hdr.insert(1, f"\n**{env['BENCH_LOAD_WARNING']}**")
print("\n".join(hdr + out).rstrip())
PY
mv "$work/bench.md" "$out_dir/bench.md.tmp.$$" && mv "$out_dir/bench.md.tmp.$$" "$out_dir/bench.md"
echo
cat "$out_dir/bench.md"
echo
echo "bench: written to $out_dir/bench.md (logs: $work)"
