"""dl-predict and dl-serve on an ONNX export folder: the same answers as the checkpoint,
in a process that cannot import torch; the server over real HTTP on loopback (bad
payloads, caps, a burst of concurrent clients, SIGTERM)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import BIN, run_cli, run_dir_of

# Any import of the training stack fails: the serving path must never need it.
NO_TORCH = """
import sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "lightning", "torchvision", "pandas", "scipy"):
            raise ImportError(f"{name} imported on the serving path")
        return None

sys.meta_path.insert(0, _Blocked())
"""


def no_torch_env(tmp_path: Path) -> dict[str, str]:
    shim = tmp_path / "no_torch"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(NO_TORCH)
    return {"PYTHONPATH": str(shim), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A digits run (one short epoch), its ONNX export by dl-export, and a few PNGs (the
    digits set stores 0..16, files hold 0..255: the card's scale is not the files')."""
    base = tmp_path_factory.mktemp("digits")
    out = run_cli(["debug=fast", "trainer.max_epochs=1"], base, env={"OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    run = run_dir_of(base, "debug")
    ckpt = sorted((run / "checkpoints").glob("*.ckpt"))[-1]
    # dl-export as a user runs it (the other serving tests export with onnx_fixture.py)
    done = run_cli([f"ckpt_path={ckpt}", "format=onnx"], base, cmd="dl-export",
                   env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    folder = run / "export" / "onnx"
    images = base / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):  # odd sizes and RGB: resized and converted as training's decoder
        pixels = rng.integers(0, 256, size=(8 + i, 9, 3 if i % 2 else 1), dtype=np.uint8)
        Image.fromarray(pixels.squeeze()).save(images / f"d{i}.png")
    return {"base": base, "ckpt": ckpt, "export": folder, "images": images}


def predictions(base: Path, args: list[str], name: str, env: dict | None = None) -> dict:
    out = run_cli([*args, f"hydra.run.dir={base / name}"], base, cmd="dl-predict", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads((base / name / "predictions.json").read_text())


def test_predict_on_an_export_matches_the_checkpoint_without_torch(
    digits: dict, tmp_path: Path
) -> None:
    common = [f"inputs={digits['images']}", "top_k=10", "batch_size=4"]
    want = predictions(tmp_path, [f"ckpt_path={digits['ckpt']}", *common], "ckpt")
    got = predictions(
        tmp_path, [f"ckpt_path={digits['export']}", *common], "onnx", env=no_torch_env(tmp_path)
    )
    assert got["checkpoint"] == str(digits["export"])
    assert len(got["predictions"]) == 6
    for g, w in zip(got["predictions"], want["predictions"], strict=True):
        assert g["input"] == w["input"]
        assert [t["class"] for t in g["top"]] == [t["class"] for t in w["top"]]
        assert [t["prob"] for t in g["top"]] == pytest.approx(
            [t["prob"] for t in w["top"]], abs=1e-4
        )
    csv_lines = (tmp_path / "onnx" / "predictions.csv").read_text().splitlines()
    assert csv_lines[0] == "input,rank,class,name,probability" and len(csv_lines) == 1 + 60


def test_the_shim_does_block_torch(tmp_path: Path, digits: dict) -> None:
    """The check above can fail: the checkpoint path under the same shim does."""
    args = [f"ckpt_path={digits['ckpt']}", f"inputs={digits['images']}"]
    out = run_cli(args, tmp_path, cmd="dl-predict", env=no_torch_env(tmp_path))
    assert out.returncode != 0 and "imported on the serving path" in out.stderr


def test_predict_export_errors(digits: dict, tmp_path: Path) -> None:
    args = [f"ckpt_path={digits['export']}", "text=hello"]
    out = run_cli(args, tmp_path, cmd="dl-predict", env=no_torch_env(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: text= was given, but this model classifies images — "
        "pass image files or folders with inputs="
    )
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    out = run_cli([f"ckpt_path={digits['export']}", f"inputs={bad}"], tmp_path, cmd="dl-predict")
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"error: cannot decode {bad} as an image (UnidentifiedImageError) — send PNG or JPEG data"
    )


# ---- dl-serve over HTTP ------------------------------------------------------------------


class Server:
    """``dl-serve`` as a user starts it, on a free port it picks (``port=0``)."""

    def __init__(self, args: list[str], cwd: Path, env: dict | None = None) -> None:
        full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [str(BIN / "dl-serve"), *args, "port=0"], cwd=cwd, env=full, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.first = self.proc.stdout.readline()
        assert "serving" in self.first, self.first + self.proc.stderr.read()
        self.url = self.first.split(" on ")[1].split()[0]
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        return rc, self.proc.stdout.read()


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_serve_an_export_over_http(digits: dict, tmp_path: Path) -> None:
    server = Server([f"ckpt_path={digits['export']}", "max_batch=8", "max_body_mb=0.01"],
                    tmp_path, env=no_torch_env(tmp_path))  # fmt: skip
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert "(this machine only; host=0.0.0.0 listens on every interface)" in server.first
        c = server.client
        assert c.get("/health").json() == {
            "status": "ok",
            "kind": "image",
            "task": "classification",
        }
        card = c.get("/card").json()
        assert card["format"] == "onnx" and card["input"]["kind"] == "image"

        files = sorted(digits["images"].glob("*.png"))
        want = predictions(tmp_path, [f"ckpt_path={digits['ckpt']}", f"inputs={digits['images']}",
                                      "top_k=10"], "ckpt")["predictions"]  # fmt: skip
        answer = c.post("/predict", json={"images": [b64(f) for f in files]})
        assert answer.status_code == 200, answer.text
        got = answer.json()["predictions"]
        for g, w in zip(got, want, strict=True):
            best = w["top"][0]
            assert g["label"] == best["name"]
            for t in w["top"]:
                assert g["probabilities"][t["name"]] == pytest.approx(t["prob"], abs=1e-4)

        bad = {  # payload -> (status, the one-line message)
            b"nope": (400, "the body is not valid JSON — send a JSON object"),
            b'{"texts": ["a"]}': (
                422, 'this model takes images: send {"images": [...]} (got texts)'),
            b'{"images": []}': (422, '"images" must be a non-empty list'),
            b'{"images": [3]}': (422, "images[0] is a int, not a str"),
            b'{"images": ["%%%"]}': (
                422, "images[0] is not base64 — send the file's bytes, base64-encoded"),
            b'{"images": ["aGVsbG8="]}': (
                422, "cannot decode images[0] as an image (UnidentifiedImageError) — "
                "send PNG or JPEG data"),
            json.dumps({"images": ["aGVsbG8="] * 9}).encode(): (
                422, "9 images in one request, over the limit of 8 — "
                "split them into several requests"),
        }  # fmt: skip
        for body, (status, message) in bad.items():
            r = c.post("/predict", content=body, headers={"content-type": "application/json"})
            assert (r.status_code, r.json()) == (status, {"error": message}), body
        big = {"images": ["A" * 20_000]}
        r = c.post("/predict", json=big)
        assert (r.status_code, r.json()["error"]) == (
            413,
            "the body is over 10485 bytes — send fewer or smaller items",
        )
        chunked = c.post("/predict", content=iter([b'{"images": ["', b"A" * 20_000, b'"]}']))
        assert chunked.status_code == 413  # no Content-Length: counted as it streams in
        assert c.get("/nothing").status_code == 404

        # A burst: 8 clients at once, good and bad payloads mixed; only 2xx/4xx answers.
        def client(k: int) -> list[int]:
            with httpx.Client(base_url=server.url, timeout=30) as own:
                body = {"images": [b64(files[k % 6])]} if k % 2 else {"images": ["%"]}
                return [own.post("/predict", json=body).status_code for _ in range(10)]

        with ThreadPoolExecutor(8) as pool:
            codes = [s for got in pool.map(client, range(8)) for s in got]
        assert sorted(set(codes)) == [200, 422] and codes.count(200) == 40
        assert c.get("/health").status_code == 200
    finally:
        rc, rest = server.stop()
    assert rc == 0 and rest.strip().endswith("dl-serve stopped (SIGTERM)")


def test_serve_a_checkpoint_answers_as_its_export(digits: dict, tmp_path: Path) -> None:
    files = sorted(digits["images"].glob("*.png"))
    body = {"images": [b64(f) for f in files]}
    answers = []
    for path in (digits["ckpt"], digits["export"]):
        server = Server([f"ckpt_path={path}"], tmp_path)
        try:
            answers.append(server.client.post("/predict", json=body).json()["predictions"])
        finally:
            assert server.stop()[0] == 0
    for c, o in zip(*answers, strict=True):
        assert c["label"] == o["label"]
        assert list(c["probabilities"].values()) == pytest.approx(
            list(o["probabilities"].values()), abs=1e-4)  # fmt: skip


def test_serve_time_cap_and_settings(digits: dict, tmp_path: Path) -> None:
    server = Server([f"ckpt_path={digits['export']}", "timeout_s=0.000001"], tmp_path)
    try:
        r = server.client.post("/predict", json={"images": [b64(next(digits["images"].glob("*")))]})
        assert (r.status_code, r.json()) == (
            503,
            {"error": "the prediction took over 1e-06 s — send fewer items"},
        )
    finally:
        assert server.stop()[0] == 0
    out = run_cli([f"ckpt_path={digits['export']}", "hots=0.0.0.0"], tmp_path, cmd="dl-serve")
    assert (out.returncode, out.stderr.strip()) == (
        2,
        (
            "error: dl-serve does not take 'hots=0.0.0.0' (did you mean 'host'?) — use key=value "
            "with keys ckpt_path, host, port, max_batch, max_body_mb, timeout_s, threads"
        ),
    )
    out = run_cli([f"ckpt_path={tmp_path}"], tmp_path, cmd="dl-serve")
    assert (out.returncode, out.stderr.strip()) == (
        1,
        (
            f"error: {tmp_path} is neither a checkpoint file nor an export folder (no card.json) — "
            "pass a .ckpt written by dl-train, or the folder dl-export wrote"
        ),
    )


def test_without_onnxruntime_the_extra_is_named(digits: dict, tmp_path: Path) -> None:
    env = no_torch_env(tmp_path)
    shim = Path(env["PYTHONPATH"]) / "sitecustomize.py"
    shim.write_text(shim.read_text().replace('"scipy")', '"scipy", "onnxruntime")'))
    for cmd, args in (("dl-serve", []), ("dl-predict", [f"inputs={digits['images']}"])):
        out = run_cli([f"ckpt_path={digits['export']}", *args], tmp_path, cmd=cmd, env=env)
        assert (out.returncode, out.stderr.strip()) == (2, (
            "error: predicting or serving an export needs onnxruntime, which is not installed "
            "— pip install 'dl-train[serve]'")), cmd  # fmt: skip


def test_serve_help_lists_every_setting_and_exits_0() -> None:
    from dataclasses import fields

    from dltrain.serve.server import Options

    done = subprocess.run([str(BIN / "dl-serve"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: dl-serve ckpt_path=")
    listed = [ln.split()[0] for ln in done.stdout.splitlines() if ln.startswith("  ")]
    assert listed == [f.name for f in fields(Options)]
