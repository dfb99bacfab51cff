"""The baseline: the seed recipe trained the way the hand-written seed example does.

torchvision ``datasets.MNIST`` + ``DataLoader`` with ``ToTensor`` + ``Normalize``, a
plain PyTorch loop: MLP 784-256-128-10 (ReLU), batch 64 shuffled, Adam 1e-3, 3 epochs,
then the test set. ``scripts/bench.py`` times it against ``dl-train experiment=seed_mlp``.
Prints one JSON line: test accuracy, fit seconds, samples per second.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--limit-batches", type=int, default=0, help="0: all (smoke runs: few)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train_set = datasets.MNIST(args.data_dir, train=True, download=False, transform=transform)
    test_set = datasets.MNIST(args.data_dir, train=False, download=False, transform=transform)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=1000)

    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256),
        nn.ReLU(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    started = time.monotonic()
    samples = 0
    for epoch in range(args.epochs):
        model.train()
        for i, (x, y) in enumerate(train_loader):
            if args.limit_batches and i >= args.limit_batches:
                break
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            samples += len(y)
        print(f"epoch {epoch}: loss {loss.item():.4f}", flush=True)
    fit_s = time.monotonic() - started

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for i, (x, y) in enumerate(test_loader):
            if args.limit_batches and i >= args.limit_batches:
                break
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    result = {"test_acc": correct / total, "fit_s": fit_s, "train_samples_per_s": samples / fit_s}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
