"""Encoder effort: spend encode time for smaller files that the unchanged decoder reads (the plan; refine.py
does the latent refinement).

Effort 0 is the plain encoder (one analysis pass). With references it also codes the latent without them (one
more entropy-coding pass, no synthesis) and keeps the smaller file: today's references cost a few bytes more
than they save on most photos unlike the dictionary's (docs/references.md, *Ablations*), and they must never make
the default file larger. Above it:

* **reference selection by real cost** (effort >= 1): the file is coded with several reference counts M (none
  among them) and the one with the lowest lambda * 255^2 * MSE + bpp, measured on the real bytes and the
  decoder's pixels, is kept, so references can never make a file worse;
* **latent refinement** (effort >= 3, refine.py): starting from the analysis's y and z, the latents of this
  one image are optimised against the very decoder that will read them (the per-image optimisation of Yang,
  Bamler & Mandt 2020 and of CLRIC), for the chosen quality's lambda; the refined latents are then coded on the
  exact probability path with real rounding, and kept only if their real cost is lower.

The decoder needs nothing of this: a file does not record its effort. Importing this module does not import
torch (the CLI reads the bounds from here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..model.quality import lambda_at, rd_objective

if TYPE_CHECKING:
    import numpy as np

EFFORT_MIN, EFFORT_MAX = 0, 9
SELECTION_REFS = (0, 1, 2, 3, 5)  # reference counts tried from effort 2 on

# Latent refinement iterations per effort (refine.py; tuned on training photos with benchmarks/effort_tune.py).
REFINE_ITERATIONS = {3: 4, 4: 6, 5: 10, 6: 14, 7: 18, 8: 24, 9: 32}
FIRST_REFINING_EFFORT = min(REFINE_ITERATIONS)
NUMPY_EFFORT_MAX = FIRST_REFINING_EFFORT - 1  # the torch-free encoder's efforts (refinement needs torch's autograd)

Progress = Callable[[int, int], None]  # (iterations done, iterations in all)


@dataclass(frozen=True)
class EffortPlan:
    refs: tuple[int, ...]  # reference counts to try (the cheapest real file wins)
    iterations: int  # latent refinement iterations (0: none)
    by_cost: bool = True  # choose among `refs` by real cost (needs the decoder's pixels); False: by size alone


def effort_plan(effort: int, refs: int, fallback: bool = True) -> EffortPlan:
    """What an effort does, given the reference count asked for (`refs` = 0 disables references at any effort;
    effort 0 keeps the smaller of the files with none and with `refs`, effort 1 the cheaper by real cost; from
    effort 2 the standard counts up to max(refs, 5) are tried). `fallback` False: exactly `refs` at every
    effort (for measuring what the references do, and for tests of files that have them)."""
    if not EFFORT_MIN <= effort <= EFFORT_MAX:
        raise ValueError(f"effort must be between {EFFORT_MIN} and {EFFORT_MAX}, got {effort}")
    if refs == 0 or not fallback:
        choices: tuple[int, ...] = (refs,)
    elif effort == 0:
        return EffortPlan((0, refs), 0, by_cost=False)
    elif effort == 1:
        choices = (0, refs)
    else:
        choices = tuple(sorted({*SELECTION_REFS, refs}))
    return EffortPlan(choices, REFINE_ITERATIONS.get(effort, 0))


def rd_cost(source: np.ndarray, decoded: np.ndarray, nbytes: int, quality: float) -> float:
    """lambda(q) * 255^2 * MSE + bpp of a file of `nbytes` whose decoder pixels are `decoded`, against the source
    pixels (both uint8 (H, W, 3)): what the model was trained to minimise, on real bits and real pixels."""
    import numpy as np

    err = (decoded.astype(np.float64) - source.astype(np.float64)) / 255
    return rd_objective(lambda_at(quality), float(np.mean(err * err)), 8 * nbytes / (source.shape[0] * source.shape[1]))
