"""Model figures on real photos through the embedded server (issue 34): POST /tagging of every validation
photo of CCP, clothing-dataset and CAD, and a real-photo catalog search, scored by training/real_eval.py.

    .venv/bin/python -m bench.real_photos [--models models [models-b ...]] [--realdata ../shared/realdata]
        [--limit N] [--search-catalog 300] [--search-queries 60] [--out figures.json] [--record]

Several model folders are measured one after the other in the same run (a fresh embedded server each,
its own empty catalog). The validation split is the fixed one of training/realdata.py. `--record` writes
the figures into each folder's manifest (`metrics.real_val`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.real_eval import measure, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, default=[Path("models")])
    parser.add_argument("--realdata", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos of each set")
    parser.add_argument("--search-catalog", type=int, default=300)
    parser.add_argument("--search-queries", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--record", action="store_true", help="write the figures into the manifests")
    args = parser.parse_args()
    figures = []
    for models in args.models:
        figures.append(
            measure(
                models,
                args.realdata,
                args.limit,
                args.search_catalog,
                args.search_queries,
                log=lambda message: print(message, file=sys.stderr),
            )
        )
        if args.record:
            record(models, figures[-1])
    text = json.dumps(figures, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
