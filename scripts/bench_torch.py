#!/usr/bin/env python3
"""The MXNet tutorial's LeNet and MLP in PyTorch, for comparing mnistctl's speed on the same machine.

Used by scripts/gpu-check.sh (LeNet on the GPU, the defaults) and scripts/bench.sh (both
networks on the CPU, --device cpu --threads N).

Same networks, initialisation and training as configs/lenet.yaml and configs/mlp.yaml:
  lenet: conv 20 5x5, tanh, max-pool 2, conv 50 5x5, tanh, max-pool 2, fc 500, tanh, fc 10;
  mlp:   fc 128, relu, fc 64, relu, fc 10;
softmax cross-entropy (mean over the batch); weights U(-0.01, 0.01), biases 0; batch 100;
plain SGD lr 0.1; reshuffled every epoch.
The data is read from the IDX .gz files directly (no torchvision, no network) and kept on
the device as float, as PyTorch users do for MNIST, so the timing is the training step alone.
FP32 with TF32 off (as mnistctl's default). cudnn.benchmark is on (mnistctl also times its
cuDNN algorithms once per shape); --no-benchmark turns it off. On the CPU, --threads N sets
torch.set_num_threads(N), to match mnistctl's --threads.

After each epoch the test set is classified in eval mode under torch.no_grad() at batch
--infer-batch (100, as mnistctl's validation pass and `mnistctl predict`), timed: that is the
inference speed, and its accuracy the test accuracy.

Prints one line per epoch (time, images/s, inference images/s, test accuracy) and the mean
and median over the epochs after the first (warm-up excluded); --json writes the same as one
JSON object.

    python3 scripts/bench_torch.py --data ../shared/datasets/mnist --epochs 3
    python3 scripts/bench_torch.py --data DIR --device cpu --threads 2 --net mlp
    python3 scripts/bench_torch.py --data DIR --device cpu --limit-batches 20   # quick dry run
"""
import argparse
import gzip
import json
import os
import re
import statistics
import struct
import sys
import time

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path):
    """Returns (dims, bytes) of a gzip IDX file of unsigned bytes; raises ValueError if malformed."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = raw[4 + 4 * ndim:]
    count = 1
    for d in dims:
        count *= d
    if len(data) != count:
        raise ValueError(f"{path}: header says {count} bytes of data, file has {len(data)}")
    return dims, data


def load_split(folder, split):
    img_name, lab_name = FILES[split]
    idims, images = read_idx(f"{folder}/{img_name}")
    ldims, labels = read_idx(f"{folder}/{lab_name}")
    if len(idims) != 3 or len(ldims) != 1 or idims[0] != ldims[0]:
        raise ValueError(f"{folder}: {split} images {idims} and labels {ldims} do not match")
    return idims, images, labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder with the four MNIST .gz files")
    ap.add_argument("--net", choices=["lenet", "mlp"], default="lenet",
                    help="the tutorial network (configs/lenet.yaml or configs/mlp.yaml)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch.set_num_threads(N) (CPU threads; 0: PyTorch's default)")
    ap.add_argument("--infer-batch", type=int, default=100, help="batch size of the timed test-set pass")
    ap.add_argument("--no-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = False")
    ap.add_argument("--limit-batches", type=int, default=0, help="train only this many batches per epoch")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.epochs < 1 or args.batch_size < 1 or args.infer_batch < 1 or args.threads < 0:
        ap.error("--epochs, --batch-size and --infer-batch must be >= 1, --threads >= 0")

    import torch  # imported here so that the IDX reader above works without torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = not args.no_benchmark
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"

    def to_device(split):
        dims, images, labels = load_split(args.data, split)
        x = torch.frombuffer(bytearray(images), dtype=torch.uint8).view(dims[0], 1, dims[1], dims[2])
        y = torch.frombuffer(bytearray(labels), dtype=torch.uint8).long()
        return x.to(dev).float().div_(255.0), y.to(dev)

    x_train, y_train = to_device("train")
    x_test, y_test = to_device("test")
    n = x_train.shape[0]

    if args.net == "lenet":
        model = nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.Tanh(), nn.MaxPool2d(2, 2),
            nn.Conv2d(20, 50, 5), nn.Tanh(), nn.MaxPool2d(2, 2),
            nn.Flatten(), nn.Linear(800, 500), nn.Tanh(), nn.Linear(500, 10),
        ).to(dev)
    else:
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10),
        ).to(dev)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.uniform_(-0.01, 0.01)
                m.bias.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def test_accuracy():
        """(accuracy, seconds) of one pass over the test set at --infer-batch, in eval mode."""
        model.eval()
        ib = args.infer_batch
        correct = torch.zeros((), dtype=torch.long, device=dev)
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, x_test.shape[0], ib):
                correct += (model(x_test[i:i + ib]).argmax(1) == y_test[i:i + ib]).sum()
        acc = correct.item() / x_test.shape[0]  # .item() also waits for the device
        dt = time.perf_counter() - t0
        model.train()
        return acc, dt

    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    threads = torch.get_num_threads()
    print(f"bench_torch: torch {torch.__version__}, {args.net}, {name}"
          + (f", cudnn.benchmark={torch.backends.cudnn.benchmark}, TF32 off" if cuda else f", {threads} threads")
          + f", batch {args.batch_size}, lr {args.lr}", flush=True)
    bs = args.batch_size
    # The last partial batch is kept, as mnistctl keeps it (none at the tutorial's 60,000 / 100).
    full = -(-n // bs)
    batches = full if not args.limit_batches else min(args.limit_batches, full)
    epochs = []
    for epoch in range(1, args.epochs + 1):
        sync()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        loss_sum = torch.zeros((), device=dev)  # read once per epoch: no sync per batch
        for b in range(batches):
            idx = perm[b * bs:(b + 1) * bs]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
        sync()
        dt = time.perf_counter() - t0
        acc, infer_dt = test_accuracy()
        e = {"epoch": epoch, "time_s": dt, "images_per_s": min(batches * bs, n) / dt,
             "loss": loss_sum.item() / batches, "test_accuracy": acc,
             "infer_time_s": infer_dt, "infer_images_per_s": x_test.shape[0] / infer_dt}
        epochs.append(e)
        print(f"epoch {epoch}: {dt:.3f} s, {e['images_per_s']:.0f} images/s, loss {e['loss']:.4f}, "
              f"test accuracy {acc:.4f}, inference {e['infer_images_per_s']:.0f} images/s", flush=True)

    timed = epochs[1:] if len(epochs) > 1 else epochs  # the first epoch includes warm-up
    mean_t = sum(e["time_s"] for e in timed) / len(timed)
    mean_ips = sum(e["images_per_s"] for e in timed) / len(timed)
    med_t = statistics.median(e["time_s"] for e in timed)
    med_ips = statistics.median(e["images_per_s"] for e in timed)
    med_infer = statistics.median(e["infer_images_per_s"] for e in timed)
    print(f"bench_torch: mean of epochs {timed[0]['epoch']}-{timed[-1]['epoch']}: {mean_t:.3f} s/epoch, "
          f"{mean_ips:.0f} images/s (median {med_t:.3f} s, {med_ips:.0f} images/s); inference {med_infer:.0f} "
          f"images/s (median); final test accuracy {epochs[-1]['test_accuracy']:.4f}")
    if args.json:
        result = {"tool": "pytorch", "torch": torch.__version__, "net": args.net, "device": name,
                  "threads": threads if not cuda else None,
                  "cudnn_benchmark": torch.backends.cudnn.benchmark, "batch_size": bs, "lr": args.lr,
                  "infer_batch": args.infer_batch, "batches_per_epoch": batches, "epochs": epochs,
                  "mean_time_s": mean_t, "mean_images_per_s": mean_ips,
                  "median_time_s": med_t, "median_images_per_s": med_ips,
                  "median_infer_images_per_s": med_infer,
                  "final_test_accuracy": epochs[-1]["test_accuracy"]}
        if not cuda:
            # Which kernels PyTorch's CPU build has: oneDNN (mkldnn) for conv, a BLAS for fc. A
            # "generic" BLAS build (Debian's) runs whatever libblas.so.3 resolves to: the library
            # really loaded is read from the process's memory map.
            blas = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
            loaded = set()
            try:
                for line in open("/proc/self/maps"):
                    path = line.split()[-1]
                    if re.search(r"lib(open)?blas", path):
                        loaded.add(os.path.realpath(path))
            except OSError:
                pass
            result["cpu_build"] = {"mkldnn": torch.backends.mkldnn.is_available(),
                                   "blas": blas.group(1) if blas else "unknown",
                                   "blas_loaded": sorted(loaded)}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
