"""``dl-serve ckpt_path=<export folder or checkpoint>``: the HTTP API on uvicorn.

FastAPI + uvicorn rather than LitServe: LitServe runs on FastAPI + uvicorn itself and
adds worker processes fed through queues, which this server does not need (ONNX Runtime
batches and threads inside one process); with FastAPI the limits (body, batch, time) and
the answers to bad requests are a few lines of our own, and uvicorn's SIGTERM handling
(stop accepting, finish what is in flight, exit 0) is the graceful shutdown.

Settings are ``key=value`` words like every dl-* command's: ``host`` (127.0.0.1: this
machine only), ``port`` (8000; 0 picks a free one, printed), ``max_batch``,
``max_body_mb``, ``timeout_s``, ``threads`` (ONNX Runtime's; 0: its default).
"""

from __future__ import annotations

import signal
import socket
import sys
from dataclasses import dataclass, fields
from typing import Any

from dltrain.errors import ConfigError, did_you_mean
from dltrain.serve.card import is_export_folder  # noqa: F401  (the CLI asks here)
from dltrain.serve.predictor import Predictor, need

#: What ``dl-serve --help`` prints.
USAGE = """usage: dl-serve ckpt_path=<export folder or .ckpt> [key=value ...]

Serve a model's predictions over HTTP: POST /predict, GET /health, GET /card.
An export folder (dl-export) is run by ONNX Runtime alone; a checkpoint by torch.

  ckpt_path    export folder (<run dir>/export/onnx) or a checkpoint file
  host         address to bind (default 127.0.0.1: this machine only)
  port         port (default 8000; 0 picks a free one, printed)
  max_batch    most inputs in one request (default 64)
  max_body_mb  largest request body in MB (default 10)
  timeout_s    longest a request may take, in seconds (default 10)
  threads      ONNX Runtime / torch threads (default 0: the library's default)

Stops cleanly (exit 0) on SIGTERM or Ctrl-C."""


@dataclass
class Options:
    ckpt_path: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 64
    max_body_mb: float = 10.0
    timeout_s: float = 10.0
    threads: int = 0


def parse(argv: list[str]) -> Options:
    """``key=value`` words into ``Options``; a word that is not one is refused."""
    opts, names = Options(), {f.name: f.type for f in fields(Options)}
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep or key not in names:
            raise ConfigError(
                f"dl-serve does not take '{word}'{did_you_mean(key, names)}",
                f"use key=value with keys {', '.join(names)}",
            )
        kind = {"int": int, "float": float}.get(str(names[key]), str)
        try:
            setattr(opts, key, kind(value))
        except ValueError:
            raise ConfigError(f"{key}={value} is not a number", f"e.g. {key}=10") from None
    if not opts.ckpt_path:
        raise ConfigError(
            "nothing to serve", "pass ckpt_path=<run dir>/export/onnx (or a checkpoint)"
        )
    if opts.max_batch < 1 or opts.max_body_mb <= 0 or opts.timeout_s <= 0:
        raise ConfigError(
            "max_batch, max_body_mb and timeout_s must be positive", "e.g. max_batch=64"
        )
    return opts


def serve(predictor: Predictor, opts: Options, what: str) -> int:
    """Bind, say where, serve until SIGTERM/SIGINT; 0 once stopped cleanly."""
    need("fastapi")
    uvicorn = need("uvicorn")
    from dltrain.serve.app import Limits, create_app  # FastAPI: checked above

    limits = Limits(int(opts.max_body_mb * 2**20), opts.max_batch, opts.timeout_s)
    config = uvicorn.Config(
        create_app(predictor, limits),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=max(5, int(opts.timeout_s) + 1),
        lifespan="off",
    )
    server = uvicorn.Server(config)
    family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
    # proto named: asyncio sets TCP_NODELAY only on sockets that say they are TCP (else
    # each keep-alive answer waits ~40 ms for the client's delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((opts.host, opts.port))
    except OSError as ex:
        raise ConfigError(
            f"cannot listen on {opts.host}:{opts.port} ({ex.strerror})",
            "pick another port=, or stop what uses it",
        ) from None
    sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # handler it found: ours notes it, so the process ends with 0 and a last line. Set
    # before the address is printed: a client may stop the server at once.
    stopped_by: list[int] = []

    def stop(number: int, frame: object) -> None:
        stopped_by.append(number)
        server.should_exit = True  # a signal before uvicorn took over: it stops at once

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    host, port = sock.getsockname()[:2]
    scope = (
        "this machine only; host=0.0.0.0 listens on every interface"
        if host in ("127.0.0.1", "::1")
        else "reachable from other machines"
    )
    print(
        f"serving {what} on http://{_url_host(host)}:{port} ({scope})\n"
        f"limits: {limits.max_batch} items a request, {opts.max_body_mb:g} MB a body, "
        f"{limits.timeout_s:g} s a prediction; stop with Ctrl-C or SIGTERM",
        flush=True,
    )
    server.run(sockets=[sock])
    names = ", ".join(signal.Signals(n).name for n in dict.fromkeys(stopped_by))
    print(f"dl-serve stopped{f' ({names})' if names else ''}", flush=True)
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def describe(predictor: Predictor, source: str) -> str:
    spec = predictor.spec
    what = "regression" if spec.task == "regression" else "classification"
    return f"{source} ({spec.kind} {what}, {_runtime(predictor)})"


def _runtime(predictor: Predictor) -> str:
    card: Any = predictor.card or {}
    return str(card.get("runtime") or "onnxruntime")


def main(argv: list[str] | None = None) -> int:
    """``dl-serve`` on an export folder (the checkpoint case goes through the CLI)."""
    from dltrain.serve.predictor import onnx_predictor

    opts = parse(sys.argv[1:] if argv is None else argv)
    predictor = onnx_predictor(opts.ckpt_path, opts.threads)
    return serve(predictor, opts, describe(predictor, opts.ckpt_path))
