"""Symmetries of a dataset: a point map p -> M (p - c) + c with the label map it implies.

A dataset declares the whole finite group it is invariant under (identity included), so that
drawing one element uniformly per point samples the group uniformly. Each element says how
labels move: a permutation of class indices (classification) or a sign (regression).
"""

from dataclasses import dataclass

import numpy as np

from app.data.types import Array

Matrix = tuple[tuple[float, float], tuple[float, float]]

# The eight elements of the square's symmetry group, acting on column vectors (x, y).
IDENTITY: Matrix = ((1.0, 0.0), (0.0, 1.0))
ROTATE_90: Matrix = ((0.0, -1.0), (1.0, 0.0))
ROTATE_180: Matrix = ((-1.0, 0.0), (0.0, -1.0))
ROTATE_270: Matrix = ((0.0, 1.0), (-1.0, 0.0))
MIRROR_X: Matrix = ((-1.0, 0.0), (0.0, 1.0))  # x -> -x
MIRROR_Y: Matrix = ((1.0, 0.0), (0.0, -1.0))  # y -> -y
SWAP_XY: Matrix = ((0.0, 1.0), (1.0, 0.0))  # (x, y) -> (y, x)
ANTI_SWAP: Matrix = ((0.0, -1.0), (-1.0, 0.0))  # (x, y) -> (-y, -x)


def rotation(angle: float) -> Matrix:
    """The counter-clockwise rotation by `angle` radians."""
    c, s = float(np.cos(angle)), float(np.sin(angle))
    return ((c, -s), (s, c))


def compose(outer: Matrix, inner: Matrix) -> Matrix:
    """The matrix of `outer` applied after `inner`."""
    product = np.asarray(outer) @ np.asarray(inner)
    return (
        (float(product[0, 0]), float(product[0, 1])),
        (float(product[1, 0]), float(product[1, 1])),
    )


@dataclass(frozen=True)
class Symmetry:
    """One group element: how it moves points and what it does to their labels."""

    name: str
    matrix: Matrix = IDENTITY
    # permutation[c] is the new class of a point of class c; () keeps every class.
    permutation: tuple[int, ...] = ()
    # Regression targets are multiplied by this.
    sign: float = 1.0

    @property
    def is_identity(self) -> bool:
        """True when the element moves no point and no label."""
        keeps_classes = self.permutation == tuple(range(len(self.permutation)))
        return self.matrix == IDENTITY and keeps_classes and self.sign == 1.0


KEEP = Symmetry("identity")


def dihedral(k: int, first_angle: float) -> tuple[Symmetry, ...]:
    """The 2k symmetries of k classes whose centres sit at first_angle + 2*pi*j/k, class j.

    A counter-clockwise turn by 2*pi*m/k moves class j's centre onto class j + m's; the
    mirror through class 0's axis sends class j onto class -j (mod k).
    """
    mirror = compose(rotation(first_angle), compose(MIRROR_Y, rotation(-first_angle)))
    elements: list[Symmetry] = []
    for m in range(k):
        turn = rotation(2 * np.pi * m / k)
        elements.append(
            Symmetry(
                f"rotate {360 * m // k} deg" if m else KEEP.name,
                turn,
                tuple((c + m) % k for c in range(k)),
            )
        )
        elements.append(
            Symmetry(
                f"mirror, rotate {360 * m // k} deg" if m else "mirror",
                compose(turn, mirror),
                tuple((m - c) % k for c in range(k)),
            )
        )
    return tuple(elements)


def stack_matrices(symmetries: tuple[Symmetry, ...]) -> Array:
    """The group's matrices as one (g, 2, 2) array."""
    return np.array([s.matrix for s in symmetries], dtype=np.float64)
