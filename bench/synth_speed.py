"""Generator and label-reader throughput on this machine.

    .venv/bin/python -m bench.synth_speed --count 1000

Measures, in one run: generating COUNT images with 1 worker and with every core (the ratio is the
parallel speed-up), then reading every label file back. The issue's target: 1,000 images in under
2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from shared.labels import LabelError, iter_records
from training.synth.dataset import generate_dataset


def _timed_generate(out: Path, count: int, seed: int, workers: int) -> float:
    started = time.perf_counter()
    generate_dataset(out, count, seed, workers=workers)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--single-count", type=int, default=200, help="images for the 1-worker baseline")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="kf-bench-"))
    try:
        single = _timed_generate(root / "single", args.single_count, 1, workers=1)
        full = _timed_generate(root / "full", args.count, 1, workers=cores)
        started = time.perf_counter()
        results = list(iter_records([root / "full"]))
        read_s = time.perf_counter() - started
        errors = sum(isinstance(r, LabelError) for _, r in results)
        size_mb = sum(p.stat().st_size for p in (root / "full").rglob("*") if p.is_file()) / 1e6
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_image_single = single / args.single_count
    per_image_full = full / args.count
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}")
    print(
        f"generate {args.count} images, {cores} workers: {full:.1f} s ({args.count / full:.1f} images/s), "
        f"{size_mb:.0f} MB on disk"
    )
    print(
        f"generate {args.single_count} images, 1 worker: {single:.1f} s "
        f"({args.single_count / single:.1f} images/s)"
    )
    print(f"parallel speed-up ({cores} workers vs 1): {per_image_single / per_image_full:.2f}x")
    print(
        f"read back {len(results)} label files: {read_s:.2f} s ({len(results) / read_s:.0f} files/s), "
        f"{errors} errors"
    )


if __name__ == "__main__":
    main()
