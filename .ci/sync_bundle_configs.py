#!/usr/bin/env python3
"""Copy the shared downstream configs (configs/downstream/<kind>_<stage>.json) into each downstream bundle.

The two bundles of a kind (RSNA and SIIM classification; RSNA and SIIM segmentation) run the same configs and
name their dataset in their own metadata.json. Each bundle holds real copies, so it runs when copied or zipped
anywhere; tests/test_bundle_metadata.py fails when a copy differs from its source. Edit the source, then run
``python .ci/sync_bundle_configs.py`` from the repository root.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("train", "evaluate", "inference")


def shared_copies() -> list[tuple[Path, Path]]:
    """``(source, copy)`` for every shared config of every downstream bundle."""
    pairs = []
    for bundle in sorted((REPO / "bundles").iterdir()):
        kind = bundle.name.rsplit("_", 1)[-1]
        if kind in ("classification", "segmentation"):
            pairs += [
                (REPO / "configs" / "downstream" / f"{kind}_{stage}.json", bundle / "configs" / f"{stage}.json")
                for stage in STAGES
            ]
    return pairs


if __name__ == "__main__":
    for source, copy in shared_copies():
        copy.unlink(missing_ok=True)  # a symbolic link is replaced, not written through
        shutil.copyfile(source, copy)
        print(f"{source.relative_to(REPO)} -> {copy.relative_to(REPO)}")
