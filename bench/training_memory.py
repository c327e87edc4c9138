"""Peak memory of a training run with the cached backbone features in memory or on disk, at two sizes.

    .venv/bin/python -m bench.training_memory [--counts 1000 3000] [--data DIR]

Each run is a child process (so each peak is its own) that trains every model for one epoch on the
first N images of a generated dataset: the features and the evaluation are what grow with the data, not
the epochs. Its memory is sampled every 0.1 s: peak anonymous memory (RssAnon, the process's own; the
pages of memory-mapped feature files are the operating system's page cache, which it reclaims under
pressure) and peak resident memory (VmRSS, both). The slope between the two sizes, per image, gives
what the full K-Fashion's 1.2 M images would need.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

FULL_KFASHION_IMAGES = 1_200_000


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(count: int, store: str, data: str) -> None:
    """One run; prints its figures as JSON."""
    from training.run import TrainConfig, train_run

    peaks = {"RssAnon": 0, "VmRSS": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for field in peaks:
                peaks[field] = max(peaks[field], _status_kb(field))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = train_run(
            TrainConfig(
                data=data,
                out=out,
                limit=count,
                feature_store=store,
                detector_epochs=1,
                attribute_epochs=1,
                style_epochs=1,
            )
        )
        features = json.loads((Path(out) / "config.json").read_text(encoding="utf-8"))["features"]
    done.set()
    sampler.join()
    print(
        json.dumps(
            {
                "images": result["data"]["images"],
                "store": store,
                "feature_bytes": features["bytes"],
                "peak_anon_mb": round(peaks["RssAnon"] / 1024),
                "peak_rss_mb": round(peaks["VmRSS"] / 1024),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", type=int, nargs=2, default=[1000, 3000])
    parser.add_argument("--data", type=Path, default=Path("data/bench-training"))
    parser.add_argument("--child", nargs=3, metavar=("COUNT", "STORE", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1], args.child[2])
        return
    from training.synth.dataset import generate_dataset

    if not (args.data / "split.json").is_file():
        generate_dataset(args.data, max(args.counts), seed=5)
    rows = []
    for store in ("memory", "disk"):
        for count in args.counts:
            command = [
                sys.executable,
                "-m",
                "bench.training_memory",
                "--child",
                str(count),
                store,
                str(args.data),
            ]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{platform.processor() or platform.machine()}, one epoch per model\n")
    print("| store | images | features | peak own memory (RssAnon) | peak resident (VmRSS) | run |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['store']} | {row['images']:,} | {row['feature_bytes'] / 1e9:.2f} GB | "
            f"{row['peak_anon_mb']:,} MB | {row['peak_rss_mb']:,} MB | {row['seconds']:.0f} s |"
        )
    print()
    for store in ("memory", "disk"):
        small, large = (r for r in rows if r["store"] == store)
        per_image = (large["peak_anon_mb"] - small["peak_anon_mb"]) / (large["images"] - small["images"])
        full = small["peak_anon_mb"] + per_image * (FULL_KFASHION_IMAGES - small["images"])
        print(
            f"{store}: {per_image * 1024:.0f} kB of own memory per image; "
            f"1.2 M images: about {full / 1024:,.0f} GB"
        )


if __name__ == "__main__":
    main()
