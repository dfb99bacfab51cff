"""logger=wandb: an offline W&B run inside the run directory, and no API key anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import run_cli, run_dir_of

FAKE_KEY = "fake0123456789abcdef0123456789abcdef0123"
SMALL = ["data=synthetic", "data.shape=[1,6,6]", "data.num_classes=3", "trainer.max_epochs=2"]


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of an offline ``run-<id>.wandb`` file (what `wandb sync`
    uploads): a 7-byte ``:W&B`` header, then LevelDB-log framed records in 32 KiB blocks
    (4-byte checksum, 2-byte length, 1-byte type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, chunk = 7, b""
    while pos + 7 <= len(data):
        space = 32768 - pos % 32768
        if space < 7:  # a block's tail too short for a header is padding
            pos += space
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if kind == 0:
            break
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(chunk)
            yield record
            chunk = b""


def key_of(item: Any) -> str:
    """W&B stores keys with a slash as a nested key path."""
    return item.key or "/".join(item.nested_key)


def test_offline_wandb_run_has_metrics_and_config_and_no_api_key(tmp_path: Path) -> None:
    home = tmp_path / "wandb_home"  # W&B's own config/cache dirs, so they are checked too
    env = {
        "WANDB_API_KEY": FAKE_KEY,
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_DATA_DIR": str(home / "data"),
    }
    out = run_cli(["logger=wandb", "tags=[smoke]", *SMALL], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = run_dir_of(tmp_path)
    runs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, runs
    records = list(wandb_records(runs[0]))
    kinds = {r.WhichOneof("record_type") for r in records}
    assert {"run", "config", "history", "exit"} <= kinds
    history: dict[str, list[float]] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            for item in r.history.item:
                history.setdefault(key_of(item), []).append(json.loads(item.value_json))
    assert len(history["val/acc"]) == 2 and len(history["train/loss"]) == 2
    results = json.loads((run_dir / "results.json").read_text())
    assert history["test/acc"] == [results["metrics"]["test/acc"]]
    config = {
        key_of(item): json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }
    assert config["model/_target_"] == "dltrain.nets.mlp.MLP"
    assert [list(r.run.tags) for r in records if r.WhichOneof("record_type") == "run"] == [
        ["smoke"]
    ]

    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert leaked == []
    assert FAKE_KEY not in out.stdout + out.stderr
