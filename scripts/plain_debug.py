"""The floor under ``dl-train debug=fast``: the same one-batch digits run as a plain
PyTorch script, the least any tool can do for it.

scikit-learn's digits (as dl-train loads them), 360 test rows held out and a 90/10
train/val split of the rest, the default
MLP (64 -> 256 -> 128 -> 10, ReLU), Adam at 1e-3; one training batch of 64, one
validation batch and one test batch of 512, then the weights and optimizer state saved
with ``torch.save``. No Hydra, no Lightning, no metrics but accuracy, no plots.
``scripts/bench_startup.py`` times it beside ``import torch`` and ``dl-train debug=fast``:
``torch.optim``'s first optimizer imports ``torch._dynamo`` (``add_param_group`` is
wrapped by ``torch._disable_dynamo``), so any training script pays that on top of
``import torch``.

    python scripts/plain_debug.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn


def main(out: Path) -> float:
    torch.manual_seed(42)
    x, y = load_digits(return_X_y=True)
    x = torch.as_tensor(x, dtype=torch.float32) / 16.0
    y = torch.as_tensor(y)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(42))
    test, rest = perm[:360], perm[360:]
    n_val = round(0.1 * len(rest))
    train, val = rest[n_val:], rest[:n_val]
    net = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = train[:64]
    loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
    opt.zero_grad()
    loss.backward()
    opt.step()
    net.eval()
    with torch.no_grad():
        val_acc = float((net(x[val[:512]]).argmax(1) == y[val[:512]]).float().mean())
        test_acc = float((net(x[test]).argmax(1) == y[test]).float().mean())
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict()}, out / "last.pt")
    print(f"val/acc={val_acc:.4f} test/acc={test_acc:.4f}")
    return test_acc


if __name__ == "__main__":
    main(Path(sys.argv[1]))
