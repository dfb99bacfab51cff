"""dl-serve under load and dl-predict's start-up on an ONNX export (``make bench``).

Serves an export folder with ``dl-serve``, then: requests/s and latency with 1 client,
then with 8 concurrent clients for ``--seconds`` (30 by default), one image per request;
the answers' status codes; the server's resident memory (VmRSS) sampled each second,
after warm-up and at the end. Also the wall time of ``dl-predict`` on one image with the
export (ONNX Runtime, no torch) beside the same with the checkpoint, medians of
``--repeats`` runs. Without ``--export``: trains a digits run (one short epoch) and
exports it with dl-export in a temporary folder first.

Figures are medians on whatever machine runs this; a shared, loaded machine (such as the
2-core development box) gives lower and noisier numbers. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

BIN = Path(sys.executable).parent
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return done


def make_export(work: Path) -> tuple[Path, Path]:
    """(checkpoint, export folder) of a short digits run."""
    run([str(BIN / "dl-train"), "debug=fast", "trainer.max_epochs=1", "logger=none"], work)
    ckpt = sorted(work.glob("outputs/*/runs/*/checkpoints/*.ckpt"))[-1]
    run([str(BIN / "dl-export"), f"ckpt_path={ckpt}", "format=onnx"], work)
    return ckpt, ckpt.parent.parent / "export" / "onnx"


def request_body(export: Path, work: Path) -> tuple[dict, Path | None]:
    """One item per request: an image file (base64) or a sentence, by the card's kind;
    and the image file (for dl-predict's start-up), if any."""
    kind = json.loads((export / "card.json").read_text())["input"]["kind"]
    if kind == "text":
        return {"texts": ["a gripping , funny and smart film with a fine cast"]}, None
    if kind != "image":
        sys.exit(f"bench_serve.py measures image and text exports, not {kind}")
    image = image_for(export, work)
    return {"images": [base64.b64encode(image.read_bytes()).decode()]}, image


def image_for(export: Path, work: Path) -> Path:
    shape = json.loads((export / "card.json").read_text())["input"]["shape"]
    pixels = np.random.default_rng(0).integers(0, 256, size=(shape[1], shape[2]), dtype=np.uint8)
    path = work / "one.png"
    Image.fromarray(pixels).convert("RGB" if shape[0] == 3 else "L").save(path)
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(url: str, body: dict, clients: int, seconds: float, pid: int) -> dict:
    """``clients`` threads posting ``body`` for ``seconds``; latencies, codes, RSS."""
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    codes: dict[int, int] = {}
    lock = threading.Lock()

    def client() -> None:
        # TCP_NODELAY: httpx writes headers and body apart; without it Nagle's algorithm
        # and the server's delayed ACK add ~40 ms to every request of one client.
        transport = httpx.HTTPTransport(socket_options=[NODELAY])
        with httpx.Client(base_url=url, timeout=30, transport=transport) as c:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                status = c.post("/predict", json=body).status_code
                took = time.perf_counter() - t0
                with lock:
                    latencies.append(took)
                    codes[status] = codes.get(status, 0) + 1

    rss: list[float] = []
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        rss.append(rss_mb(pid))
        time.sleep(1.0)
    for t in threads:
        t.join()
    lat = np.asarray(latencies) * 1000
    return {"clients": clients, "requests": len(lat), "rps": len(lat) / seconds,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "codes": codes, "rss": rss}  # fmt: skip


def startup(model: Path, image: Path, work: Path, repeats: int) -> float:
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        run([str(BIN / "dl-predict"), f"ckpt_path={model}", f"inputs={image}",
             f"hydra.run.dir={work / f'p{i}'}"], work)  # fmt: skip
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, help="an export folder (default: build one)")
    parser.add_argument("--ckpt", type=Path, help="its checkpoint (for the start-up baseline)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt, export = (args.ckpt, args.export) if args.export else make_export(work)
        body, image = request_body(export, work)
        print(f"export: {export}\nCPU: {os.cpu_count()} cores visible", flush=True)
        if image is not None:
            onnx_s = startup(export, image, work, args.repeats)
            base = ""
            if ckpt:
                base = f", checkpoint (torch) {startup(ckpt, image, work, args.repeats):.2f} s"
            print(f"dl-predict on one image, median of {args.repeats}: export (onnxruntime) "
                  f"{onnx_s:.2f} s{base}")  # fmt: skip

        server = subprocess.Popen(
            [str(BIN / "dl-serve"), f"ckpt_path={export}", "port=0"], cwd=work, text=True,
            stdout=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        url = server.stdout.readline().split(" on ")[1].split()[0]
        try:
            load(url, body, 8, 5.0, server.pid)  # warm-up
            for clients, seconds in ((1, min(args.seconds, 10.0)), (8, args.seconds)):
                r = load(url, body, clients, seconds, server.pid)
                print(f"{clients} client(s), {seconds:g} s: {r['rps']:.0f} requests/s, "
                      f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                      f"status codes {r['codes']}, server RSS {r['rss'][0]:.1f} MB at start "
                      f"-> {max(r['rss']):.1f} MB max -> {r['rss'][-1]:.1f} MB at end")  # fmt: skip
        finally:
            server.send_signal(signal.SIGTERM)
            print(f"dl-serve exit code after SIGTERM: {server.wait(timeout=60)}")


if __name__ == "__main__":
    main()
