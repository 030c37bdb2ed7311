"""Benchmark 7: what the feature cache stores per image, as a map and pooled.

Exact, not timed: an entry holds float32 features (``features.f32``) and an int32
label (``labels.i32``) per image, so its bytes per image follow from the shape of one
image's features, which a worker reads off the models ``zoo run`` builds.
"""

from __future__ import annotations

import math

from bench.context import Context
from bench.report import Section

SIZES = (100, 224)
#: Images of TFDS's cats_vs_dogs (25,000 less the 1,738 files it skips as corrupt).
CATS_VS_DOGS = 23_262


def _bytes(shape: list[int]) -> int:
    return math.prod(shape) * 4 + 4  # float32 features and an int32 label


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def cache_size(ctx: Context) -> Section:
    shapes = ctx.worker("sizes", 0, "cpu", "validation", ["--sizes", ",".join(map(str, SIZES))])
    rows = []
    for size in SIZES:
        found = shapes[str(size)]
        whole, pooled = _bytes(found["map"]), _bytes(found["pooled"])
        rows.append([
            f"{size}x{size}",
            "x".join(map(str, found["map"])), _human(whole), _human(whole * CATS_VS_DOGS),
            "x".join(map(str, found["pooled"])), _human(pooled), _human(pooled * CATS_VS_DOGS),
            f"{whole / pooled:.0f}x",
        ])  # fmt: skip
    return Section(
        title="7. Feature cache size",
        what="Bytes the feature cache stores per image for ResNet50 (`gap_sigmoid`), as "
        "the backbone's map (a head that does not declare its pooling) and pooled (one "
        "that does, as zoo's heads do), with the total for cats_vs_dogs "
        f"({CATS_VS_DOGS:,} images).",
        header=["image size", "map", "per image", "cats_vs_dogs", "pooled", "per image",
                "cats_vs_dogs", "map / pooled"],
        rows=rows,
        summary=", ".join(f"{row[0]}: {row[-1]} smaller pooled" for row in rows),
    )  # fmt: skip
