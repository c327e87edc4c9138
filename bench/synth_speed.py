"""Generator and label-reader throughput on this machine.

    .venv/bin/python -m bench.synth_speed --count 1000

Measures, in one run: generating COUNT images with 1 worker and with every core (the ratio is the
parallel speed-up), then reading every label file back. The issue's target: 1,000 images in under
2 minutes on 2 cores.

    .venv/bin/python -m bench.synth_speed --against /tmp/old   # a checkout of another commit

compares this tree's renderer with that checkout's instead, in one run: the same pictures rendered by
each in turn, blocks of 20, one process per block, and whether both made the same pixels and labels.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared.labels import LabelError, iter_records
from training.synth.dataset import generate_dataset


def _timed_generate(out: Path, count: int, seed: int, workers: int) -> float:
    started = time.perf_counter()
    generate_dataset(out, count, seed, workers=workers)
    return time.perf_counter() - started


# Run in a tree's own folder: seconds spent rendering pictures [start, stop) of seed 0, and a sha256 of
# their pixels and labels.
_RENDER_BLOCK = """
import hashlib, sys, time
from training.synth.render import render_sample
digest, seconds = hashlib.sha256(), 0.0
for index in range(int(sys.argv[1]), int(sys.argv[2])):
    began = time.perf_counter()
    sample = render_sample(index, 0)
    seconds += time.perf_counter() - began
    digest.update(sample.pixels.tobytes())
    digest.update(repr(sample.record).encode())
print(seconds, digest.hexdigest())
"""


def compare_renderers(other: Path, count: int, block: int = 20) -> None:
    """This tree's renderer against `other`'s on the same pictures, alternating block by block."""
    trees = {"this tree": Path(__file__).resolve().parents[1], str(other): other.resolve()}
    seconds = dict.fromkeys(trees, 0.0)
    same = True
    for start in range(0, count, block):
        digests = set()
        for name, tree in trees.items():
            done = subprocess.run(
                [sys.executable, "-c", _RENDER_BLOCK, str(start), str(min(start + block, count))],
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree)},
                capture_output=True,
                text=True,
                check=True,
            )
            spent, digest = done.stdout.split()
            seconds[name] += float(spent)
            digests.add(digest)
        same &= len(digests) == 1
    mine, theirs = seconds.values()
    print(f"render {count} pictures, 1 process: this tree {mine:.2f} s, {other} {theirs:.2f} s")
    print(f"speed-up of this tree: {theirs / mine:.2f}x; same pixels and labels: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--single-count", type=int, default=200, help="images for the 1-worker baseline")
    parser.add_argument("--against", type=Path, help="compare rendering with this checkout instead")
    args = parser.parse_args()
    if args.against:
        compare_renderers(args.against, args.count)
        return
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
