"""Concurrent requests through switchyard with RouteLLM's mf router behind a slow embedding service.

RouteLLM's own server, with mf behind a 200 ms embedding service, took 2.55 s for 10
concurrent requests (it scores one prompt at a time, blocking). This starts the fake
backend, a fake /v1/embeddings server with a fixed delay, and switchyard with ``mf``
(a random-weight checkpoint of RouteLLM's real shape: 1536-d embeddings, 128 hidden, 64
models), then times rounds of N concurrent chat requests.

Needs .venv-routellm (scripts/setup_routellm.sh):
    .venv-routellm/bin/python bench/routellm_concurrency.py [--concurrency 10] [--delay 0.2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dynamo.nemo_switchyard.routers import registry
from dynamo.nemo_switchyard.routers import routellm as rl

from fake_embeddings import FakeEmbeddings
from processes import fake_backend_command, free_port, running, switchyard_command


def make_mf(folder: Path) -> None:
    import torch

    model_module = rl._import("routellm.routers.matrix_factorization.model", "mf")
    torch.manual_seed(0)
    model_module.MFModel(dim=128, num_models=64, text_dim=1536, num_classes=1, use_proj=True).save_pretrained(folder)


def chat(port: int, prompt: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": prompt}], "max_tokens": 3})
        connection.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("x-switchyard-decision") or ""
    finally:
        connection.close()


def round_of(port: int, n: int, tag: str) -> tuple[float, list[tuple[int, str]]]:
    barrier = threading.Barrier(n + 1)
    results: list = [None] * n

    def one(i: int) -> None:
        barrier.wait()
        results[i] = chat(port, f"{tag} request {i}: explain the proof of the prime number theorem")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the embedding service takes per request")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    name = "mf" if "mf" in registry.names() else "dynamo.nemo_switchyard.routers.routellm:MatrixFactorizationRouter"
    with tempfile.TemporaryDirectory() as tmp, FakeEmbeddings(dim=1536, delay=args.delay) as embeddings:
        make_mf(Path(tmp) / "mf")
        backend_port, port = free_port(), free_port()
        options = {name: {"embedding_base_url": embeddings.url, "embedding_model": "fake"}}
        flags = [
            "--http-host", "127.0.0.1", "--http-port", str(port), "--backend-url", f"http://127.0.0.1:{backend_port}",
            "--strong-model", "strong-model", "--weak-model", "weak-model", "--router-type", name,
            "--checkpoint-path", str(Path(tmp) / "mf"), "--router-options", json.dumps(options), "--router-timeout", "30",
            "--log-level", "warning",
        ]
        with running(fake_backend_command(backend_port), f"http://127.0.0.1:{backend_port}/_fake/log", Path(tmp) / "backend.log"), \
                running(switchyard_command(*flags), f"http://127.0.0.1:{port}/health", Path(tmp) / "switchyard.log", timeout=120):
            assert chat(port, "warm-up")[0] == 200
            single = []
            for i in range(3):
                t = time.perf_counter()
                chat(port, f"single {i}")
                single.append(time.perf_counter() - t)
            times = []
            for r in range(args.rounds):
                embeddings.reset()
                elapsed, results = round_of(port, args.concurrency, f"round {r}")
                assert all(status == 200 and decision in ("strong", "weak") for status, decision in results), results
                times.append(elapsed)
                print(
                    f"round {r}: {args.concurrency} concurrent requests in {elapsed:.3f} s; embedding service saw "
                    f"{len(embeddings.batch_sizes)} requests, batch sizes {embeddings.batch_sizes}, max {embeddings.max_in_flight} in flight",
                    flush=True,
                )
    print(f"one request alone: {statistics.median(single):.3f} s (embedding delay {args.delay:.3f} s)")
    print(
        f"{args.concurrency} concurrent requests: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
        f"max {max(times):.3f} s over {args.rounds} rounds (RouteLLM's server: 2.55 s for 10 at 0.2 s)"
    )


if __name__ == "__main__":
    main()
