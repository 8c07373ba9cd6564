"""Build facecap's expression prior from the real Live Link Face takes in ../shared/data.

    python rigs/build_prior.py            write facecap/data/expression_prior.npz
    python rigs/build_prior.py --check    verify the shipped file matches a fresh build

The prior is the mean and (ridged) covariance of the 52 ARKit weights over every tracked frame of the 7
takes (``facecap.prior.fit_prior``); it is computed with sums in a fixed order, so a rebuild on another CPU
gives the same numbers (``--check`` allows 1e-12).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facecap.livelink import read_csv  # noqa: E402
from facecap.prior import DEFAULT_PRIOR_PATH, fit_prior, load_prior  # noqa: E402

TAKES = ROOT.parent / "shared" / "data" / "arkit_blendshape_takes"


def take_weights(folder: Path = TAKES) -> dict[str, np.ndarray]:
    """{take name: (n, 52) weights of its tracked frames} for every Live Link CSV in ``folder``."""
    paths = sorted(folder.glob("*.csv"))
    if not paths:
        raise SystemExit(f"no Live Link takes in {folder} (the shared test data)")
    out = {}
    for p in paths:
        t = read_csv(p)
        out[p.name] = np.asarray(t.weights, dtype=np.float64)[np.asarray(t.tracked, dtype=bool)]
    return out


def build():
    takes = take_weights()
    return fit_prior(list(takes.values()), meta={
        "source": "rigs/build_prior.py", "takes": sorted(takes),
        "license": "the takes are MIT (see ../shared/data/SOURCES.md)",
    })  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_PRIOR_PATH)
    ap.add_argument(
        "--check", action="store_true", help="compare a fresh build with --out; exit 1 on mismatch"
    )
    args = ap.parse_args(argv)
    prior = build()
    if args.check:
        try:
            shipped = load_prior(args.out)
        except (OSError, ValueError) as e:
            print(f"check failed: {e}", file=sys.stderr)
            return 1
        same = (np.allclose(prior.mean, shipped.mean, rtol=0, atol=1e-12)
                and np.allclose(prior.covariance, shipped.covariance, rtol=0, atol=1e-12)
                and prior.meta == shipped.meta)  # fmt: skip
        if not same:
            print(f"check failed: {args.out} differs from a fresh build; rebuild with `python {__file__}`",
                  file=sys.stderr)  # fmt: skip
            return 1
        n_takes = len(prior.meta["takes"])
        print(f"{args.out} matches a fresh build ({prior.meta['frames']} frames of {n_takes} takes)")
        return 0
    prior.save(args.out)
    print(f"wrote {args.out}: prior of {prior.meta['frames']} frames from {len(prior.meta['takes'])} takes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
