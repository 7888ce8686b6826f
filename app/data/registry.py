"""The dataset registry: one entry per dataset, feeding validation, menus and augmentation."""

from dataclasses import dataclass, field

import numpy as np

from app.data import generators as gen
from app.data.symmetry import (
    ANTI_SWAP,
    KEEP,
    MIRROR_X,
    MIRROR_Y,
    ROTATE_90,
    ROTATE_180,
    ROTATE_270,
    SWAP_XY,
    Symmetry,
    dihedral,
    rotation,
)
from app.data.types import Kind

SWAP_CLASSES = (1, 0)


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is, and which symmetries augmentation may apply to it."""

    name: str
    kind: Kind
    n_classes: int  # 2 for binary, k for multiclass, 0 for regression
    default_samples: int
    description: str
    generator: gen.Generator = field(repr=False, compare=False)
    # The finite group (identity included) the generator's distribution is invariant under.
    symmetries: tuple[Symmetry, ...] = (KEEP,)
    # Also invariant under every rotation about the centre (circle): drawn on top.
    any_rotation: bool = False
    # Symmetries act about this point: the origin, or the unit square's centre for tables.
    centre: tuple[float, float] = (0.0, 0.0)
    # Fixed points (truth tables): n_samples and noise are ignored, train = test.
    fixed: bool = False

    @property
    def symmetry_names(self) -> tuple[str, ...]:
        """The names of the augmentation's symmetries, for the menus and the docs."""
        names = tuple(s.name for s in self.symmetries if not s.is_identity)
        return (*names, "any rotation") if self.any_rotation else names

    def public(self) -> dict[str, str | int | bool | list[str]]:
        """The JSON-ready description the registry endpoint and the page's menus show."""
        return {
            "name": self.name,
            "kind": self.kind,
            "n_classes": self.n_classes,
            "default_samples": self.default_samples,
            "description": self.description,
            "fixed": self.fixed,
            "symmetries": list(self.symmetry_names),
        }


# The xor rule sign(x*y) is kept by the half turn and both diagonal mirrors, flipped by the
# quarter turns and the axis mirrors: the whole square group, labels moving with it.
_SQUARE_SIGN_GROUP = (
    KEEP,
    Symmetry("rotate 180", ROTATE_180),
    Symmetry("swap x, y", SWAP_XY),
    Symmetry("(x, y) -> (-y, -x)", ANTI_SWAP),
    Symmetry("rotate 90, swap classes", ROTATE_90, SWAP_CLASSES),
    Symmetry("rotate 270, swap classes", ROTATE_270, SWAP_CLASSES),
    Symmetry("mirror x, swap classes", MIRROR_X, SWAP_CLASSES),
    Symmetry("mirror y, swap classes", MIRROR_Y, SWAP_CLASSES),
)
_SWAP_ONLY = (KEEP, Symmetry("swap x, y", SWAP_XY))
_HALF_TURN_SWAPS = (KEEP, Symmetry("rotate 180, swap classes", ROTATE_180, SWAP_CLASSES))
_TABLE_CENTRE = (0.5, 0.5)


def _spec_list() -> list[DatasetSpec]:
    """Every built-in dataset, in menu order."""
    specs = [
        DatasetSpec(
            "circle", "binary", 2, 500,
            "A disc of class 1 inside a ring of class 0 (TFP circle); noise flips labels "
            "near the boundary.",
            gen.circle,
            # The clean rule r < 2.5 holds under every rotation and mirror; TFP's label noise
            # is box-shaped, so at noise > 0 only the flip rate's slight anisotropy changes.
            symmetries=(KEEP, Symmetry("mirror x", MIRROR_X)),
            any_rotation=True,
        ),
        DatasetSpec(
            "xor", "binary", 2, 500,
            "Class 1 where x and y have the same sign (TFP exclusive or); noise flips labels.",
            gen.xor,
            symmetries=_SQUARE_SIGN_GROUP,
        ),
        DatasetSpec(
            "gauss", "binary", 2, 500,
            "Two Gaussian clouds around (2, 2) and (-2, -2) (TFP); noise widens them.",
            gen.gauss,
            symmetries=(
                *_SWAP_ONLY,
                Symmetry("rotate 180, swap classes", ROTATE_180, SWAP_CLASSES),
                Symmetry("(x, y) -> (-y, -x), swap classes", ANTI_SWAP, SWAP_CLASSES),
            ),
        ),
        DatasetSpec(
            "spiral", "binary", 2, 500,
            "Two interleaved spiral arms (TFP); noise jitters the points.",
            gen.spiral,
            symmetries=_HALF_TURN_SWAPS,
        ),
        DatasetSpec(
            "reg-plane", "regression", 0, 1200,
            "Target (x1 + x2)/10 over the plane (TFP); noise blurs the target.",
            gen.reg_plane,
            symmetries=(
                *_SWAP_ONLY,
                Symmetry("rotate 180, negate", ROTATE_180, sign=-1.0),
                Symmetry("(x, y) -> (-y, -x), negate", ANTI_SWAP, sign=-1.0),
            ),
        ),
        DatasetSpec(
            "reg-gauss", "regression", 0, 1200,
            "Six signed bumps, +-+ above and -+- below (TFP multi-gaussian).",
            gen.reg_gauss,
            symmetries=(
                KEEP,
                Symmetry("mirror x", MIRROR_X),
                Symmetry("mirror y, negate", MIRROR_Y, sign=-1.0),
                Symmetry("rotate 180, negate", ROTATE_180, sign=-1.0),
            ),
        ),
        DatasetSpec(
            "xor-table", "binary", 2, 4,
            "The exact XOR truth table: 4 points, train = test (the perceptron's failure).",
            gen.table((0, 1, 1, 0)),
            # About the square's centre XOR is class 1 where x*y < 0: the same group moves it.
            symmetries=_SQUARE_SIGN_GROUP,
            centre=_TABLE_CENTRE,
            fixed=True,
        ),
        DatasetSpec(
            "and-table", "binary", 2, 4,
            "The AND truth table: 4 points, train = test (linearly separable).",
            gen.table((0, 0, 0, 1)),
            symmetries=_SWAP_ONLY,
            centre=_TABLE_CENTRE,
            fixed=True,
        ),
        DatasetSpec(
            "or-table", "binary", 2, 4,
            "The OR truth table: 4 points, train = test (linearly separable).",
            gen.table((0, 1, 1, 1)),
            symmetries=_SWAP_ONLY,
            centre=_TABLE_CENTRE,
            fixed=True,
        ),
        DatasetSpec(
            "moons", "binary", 2, 500,
            "Two interleaved half circles (scikit-learn's moons); noise jitters the points.",
            gen.moons,
            symmetries=_HALF_TURN_SWAPS,
        ),
        DatasetSpec(
            "spiral-3", "multiclass", 3, 600,
            "Three interleaved spiral arms, one class each; noise jitters the points.",
            gen.spiral_3,
            # A counter-clockwise third turn carries arm j onto arm j - 1.
            symmetries=tuple(
                Symmetry(
                    f"rotate {120 * m}" if m else KEEP.name,
                    rotation(2 * np.pi * m / 3),
                    tuple((c - m) % 3 for c in range(3)),
                )
                for m in range(3)
            ),
        ),
    ]
    for k in range(3, 7):
        specs.append(
            DatasetSpec(
                f"blobs-{k}", "multiclass", k, 100 * k,
                f"{k} Gaussian blobs on a circle, one class each; noise widens them.",
                gen.blobs(k),
                symmetries=dihedral(k, np.pi / 2),
            )
        )
    return specs


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _spec_list()}
