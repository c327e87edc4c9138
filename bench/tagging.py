"""/tagging speed over HTTP on loopback: latency for one 800x800 image, batch throughput, and the cost of
microservice mode relative to embedded, all measured in one run.

    .venv/bin/python -m bench.tagging [--images 40] [--requests 60]

Starts real servers (`kfashion serve`, uvicorn) like the tests do: first embedded, then the three model
services plus a gateway. Pictures are generated K-Fashion-format images scaled to 800x800 (JPEG q90).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import cv2
import httpx2
import numpy as np

from shared.imaging import decode_image, encode_jpeg
from shared.settings import ImageLimits
from tests.servers import Server
from training.synth.dataset import generate_dataset

SEED = 4242


def _pictures(folder: Path, count: int) -> list[tuple[str, bytes]]:
    _, labels = generate_dataset(folder, count, SEED, workers=2)
    pictures = []
    for label in labels:
        image = next(label.parent.glob(f"{label.stem}.jpg"))
        pixels = decode_image(image.read_bytes(), ImageLimits()).pixels
        pictures.append(
            (image.name, encode_jpeg(cv2.resize(pixels, (800, 800), interpolation=cv2.INTER_AREA)))
        )
    return pictures


def _latency(url: str, pictures: list[tuple[str, bytes]], requests: int) -> np.ndarray:
    with httpx2.Client(timeout=60) as client:
        for name, data in pictures[:3]:  # warm-up
            client.post(f"{url}/tagging", files=[("files", (name, data))])
        times = []
        for k in range(requests):
            name, data = pictures[k % len(pictures)]
            started = time.perf_counter()
            response = client.post(f"{url}/tagging", files=[("files", (name, data))])
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    return np.array(times)


def _batch_rate(url: str, pictures: list[tuple[str, bytes]], per_request: int = 16) -> float:
    """Images per second through synchronous /tagging, `per_request` images a request."""
    with httpx2.Client(timeout=300) as client:
        started = time.perf_counter()
        done = 0
        for start in range(0, len(pictures), per_request):
            chunk = pictures[start : start + per_request]
            response = client.post(f"{url}/tagging", files=[("files", item) for item in chunk])
            assert response.status_code == 200 and response.json()["body"]["counts"]["done"] == len(chunk)
            done += len(chunk)
    return done / (time.perf_counter() - started)


def _job_rate(url: str, pictures: list[tuple[str, bytes]]) -> float:
    """Images per second of a background job, from submission to its last result."""
    with httpx2.Client(timeout=300) as client:
        started = time.perf_counter()
        job = client.post(f"{url}/tagging/jobs", files=[("files", item) for item in pictures]).json()["body"]
        while True:
            status = client.get(f"{url}/tagging/jobs/{job['id']}").json()["body"]
            if status["status"] == "done":
                break
            time.sleep(0.05)
    return len(pictures) / (time.perf_counter() - started)


def _measure(url: str, pictures: list[tuple[str, bytes]], requests: int) -> dict[str, float]:
    times = _latency(url, pictures, requests)
    return {
        "p50": float(np.median(times)),
        "p95": float(np.percentile(times, 95)),
        "batch": _batch_rate(url, pictures),
        "job": _job_rate(url, pictures),
    }


def _print(results: dict[str, dict[str, float]], images: int) -> None:
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; {images} images 800x800")
    print("| mode | p50 ms (1 image) | p95 ms | batch images/s (16 a request) | job images/s |")
    print("|---|---|---|---|---|")
    for mode, r in results.items():
        print(f"| {mode} | {r['p50']:.0f} | {r['p95']:.0f} | {r['batch']:.1f} | {r['job']:.1f} |")
    if "embedded, baseline models" in results:
        e, b = results["embedded"], results["embedded, baseline models"]
        print(
            f"models / baseline models: p50 x{e['p50'] / b['p50']:.2f}, "
            f"batch throughput x{e['batch'] / b['batch']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another models folder, measured embedded in the same run"
    )
    parser.add_argument("--embedded-only", action="store_true", help="skip the microservice mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pictures = _pictures(folder / "pictures", args.images)
        results = {}
        runs = [("embedded", {})]
        if args.baseline:
            runs.append(("embedded, baseline models", {"KFASHION_MODELS_DIR": str(args.baseline.resolve())}))
        for mode, env in runs:
            embedded = Server([], {"KFASHION_DATA_DIR": str(folder / mode), **env}).start()
            try:
                results[mode] = _measure(embedded.url, pictures, args.requests)
            finally:
                embedded.kill()
        if args.embedded_only:
            _print(results, args.images)
            return
        services = {
            name: Server(["--service", name]).start(wait=False)
            for name in ("detector", "attributes", "style")
        }
        urls = [arg for name, s in services.items() for arg in (f"--{name}-url", s.url)]
        gateway = Server(["--service", "gateway", *urls], {"KFASHION_DATA_DIR": str(folder / "micro")})
        servers = [*services.values(), gateway.start(wait=False)]
        try:
            for server in servers:
                server.wait_ready()
            results["microservices"] = _measure(gateway.url, pictures, args.requests)
        finally:
            for server in servers:
                server.kill()
    _print(results, args.images)
    e, m = results["embedded"], results["microservices"]
    print(
        f"microservices / embedded: p50 x{m['p50'] / e['p50']:.2f}, p95 x{m['p95'] / e['p95']:.2f}, "
        f"batch throughput x{m['batch'] / e['batch']:.2f}, job throughput x{m['job'] / e['job']:.2f}"
    )


if __name__ == "__main__":
    main()
