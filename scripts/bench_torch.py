#!/usr/bin/env python3
"""The MXNet tutorial's LeNet in PyTorch, for comparing mnistctl's speed on the same GPU.

Same network, initialisation and training as configs/lenet.yaml: conv 20 5x5, tanh, max-pool
2, conv 50 5x5, tanh, max-pool 2, fc 500, tanh, fc 10, softmax cross-entropy (mean over the
batch); weights U(-0.01, 0.01), biases 0; batch 100; plain SGD lr 0.1; reshuffled every epoch.
The data is read from the IDX .gz files directly (no torchvision, no network) and kept on
the GPU as float, as PyTorch users do for MNIST, so the timing is the training step alone.
FP32 with TF32 off (as mnistctl's default). cudnn.benchmark is on (mnistctl also times its
cuDNN algorithms once per shape); --no-benchmark turns it off.

Prints one line per epoch (time, images/s, test accuracy) and the mean over the epochs after
the first (warm-up excluded); --json writes the same as one JSON object.

    python3 scripts/bench_torch.py --data ../shared/datasets/mnist --epochs 3
    python3 scripts/bench_torch.py --data DIR --device cpu --limit-batches 20   # quick dry run
"""
import argparse
import gzip
import json
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
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = False")
    ap.add_argument("--limit-batches", type=int, default=0, help="train only this many batches per epoch")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    import torch  # imported here so that the IDX reader above works without torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = not args.no_benchmark
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

    model = nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.Tanh(), nn.MaxPool2d(2, 2),
        nn.Conv2d(20, 50, 5), nn.Tanh(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(800, 500), nn.Tanh(), nn.Linear(500, 10),
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
        model.eval()
        correct = torch.zeros((), dtype=torch.long, device=dev)
        with torch.no_grad():
            for i in range(0, x_test.shape[0], 1000):
                correct += (model(x_test[i:i + 1000]).argmax(1) == y_test[i:i + 1000]).sum()
        model.train()
        return correct.item() / x_test.shape[0]

    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    print(f"bench_torch: torch {torch.__version__}, {name}, cudnn.benchmark={torch.backends.cudnn.benchmark}, "
          f"TF32 off, batch {args.batch_size}, lr {args.lr}", flush=True)
    bs = args.batch_size
    batches = n // bs if not args.limit_batches else min(args.limit_batches, n // bs)
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
        acc = test_accuracy()
        e = {"epoch": epoch, "time_s": dt, "images_per_s": batches * bs / dt,
             "loss": loss_sum.item() / batches, "test_accuracy": acc}
        epochs.append(e)
        print(f"epoch {epoch}: {dt:.3f} s, {e['images_per_s']:.0f} images/s, loss {e['loss']:.4f}, "
              f"test accuracy {acc:.4f}", flush=True)

    timed = epochs[1:] if len(epochs) > 1 else epochs  # the first epoch includes warm-up
    mean_t = sum(e["time_s"] for e in timed) / len(timed)
    mean_ips = sum(e["images_per_s"] for e in timed) / len(timed)
    print(f"bench_torch: mean of epochs {timed[0]['epoch']}-{timed[-1]['epoch']}: {mean_t:.3f} s/epoch, "
          f"{mean_ips:.0f} images/s; final test accuracy {epochs[-1]['test_accuracy']:.4f}")
    if args.json:
        result = {"tool": "pytorch", "torch": torch.__version__, "device": name,
                  "cudnn_benchmark": torch.backends.cudnn.benchmark, "batch_size": bs, "lr": args.lr,
                  "batches_per_epoch": batches, "epochs": epochs, "mean_time_s": mean_t,
                  "mean_images_per_s": mean_ips}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
