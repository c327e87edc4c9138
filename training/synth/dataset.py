"""Write a generated dataset in the real K-Fashion layout: `<style>/<work_no>/<image>.jpg` + `.json`,
with `split.json` (8:1:1 train/val/test) and `dataset.json` (what made it) at the root.

Sample i depends only on (seed, i), so the output is the same whatever the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.imaging import encode_jpeg
from shared.labels import write_label
from shared.taxonomy import TAXONOMY_VERSION
from training.synth.render import render_sample

# synth-2: prints show their ground colour most; synth-3: boxes skip slivers; synth-5: an item's polygon
# outlines every part that shows, as its box bounds (synth-4 named a candidate not adopted, docs/models.md).
GENERATOR_VERSION = "synth-5"
SPLIT_SHARES = (("train", 0.8), ("val", 0.1), ("test", 0.1))
JPEG_QUALITY = 90


@dataclass(frozen=True)
class WrittenSample:
    index: int
    label_path: str  # relative to the dataset root
    style: str
    regions: tuple[str, ...]


def sample_folder(style: str, image_id: int) -> Path:
    return Path(style) / f"{image_id:07d}"


def _write_one(args: tuple[Path, int, int]) -> WrittenSample:
    out, seed, index = args
    sample = render_sample(index, seed)
    record = sample.record
    style = record.styles[0].style or "unknown"
    folder = out / sample_folder(style, record.image.id or index + 1)
    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / (record.image.file_name or f"{index + 1}.jpg")
    image_path.write_bytes(encode_jpeg(sample.pixels, JPEG_QUALITY))
    label_path = image_path.with_suffix(".json")
    write_label(record, label_path)
    return WrittenSample(
        index, label_path.relative_to(out).as_posix(), style, tuple(item.region for item in record.items)
    )


def split_indices(count: int, seed: int) -> dict[str, list[int]]:
    """A seeded 8:1:1 split of range(count); every index in exactly one part."""
    order = np.random.default_rng([seed, 0x5EED]).permutation(count).tolist()
    n_val = round(count * SPLIT_SHARES[1][1])
    n_test = round(count * SPLIT_SHARES[2][1])
    n_train = count - n_val - n_test
    return {
        "train": sorted(order[:n_train]),
        "val": sorted(order[n_train : n_train + n_val]),
        "test": sorted(order[n_train + n_val :]),
    }


def generate_dataset(
    out: str | Path,
    count: int,
    seed: int,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[dict, list[Path]]:
    """Render `count` samples into `out`. Returns the summary also written to dataset.json and the
    label files in sample order."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = max(1, workers or os.cpu_count() or 1)
    jobs = [(out, seed, i) for i in range(count)]
    written: list[WrittenSample] = []
    if workers == 1:
        for job in jobs:
            written.append(_write_one(job))
            if on_progress:
                on_progress(1)
    else:
        # Fresh interpreters, not forks: a fork of a process whose OpenMP pool (FAISS, torch) has started
        # can hang in its first parallel region (seen: a test session's dataset after an index test).
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver")
        ) as pool:
            for result in pool.map(_write_one, jobs, chunksize=8):
                written.append(result)
                if on_progress:
                    on_progress(1)
    written.sort(key=lambda w: w.index)
    splits = split_indices(count, seed)
    manifest = {name: [written[i].label_path for i in indices] for name, indices in splits.items()}
    (out / "split.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    summary = {
        "generator": GENERATOR_VERSION,
        "taxonomy_version": TAXONOMY_VERSION,
        "seed": seed,
        "count": count,
        "splits": {name: len(paths) for name, paths in manifest.items()},
        "styles": dict(Counter(w.style for w in written).most_common()),
        "items_per_region": dict(Counter(r for w in written for r in w.regions).most_common()),
    }
    (out / "dataset.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return summary, [out / w.label_path for w in written]
