"""Point generators: TensorFlow Playground's formulas, plus moons, blobs, 3-arm spiral, tables.

Every generator is `(n, noise, rng) -> (points (n, 2), labels (n,))`, unshuffled. TFP's
binary labels -1/+1 become 0/1. Random draws never depend on `noise` (noise only scales
them), so one seed gives the same clean points at every noise level, as in TFP.
"""

from collections.abc import Callable

import numpy as np

from app.data.types import Array, IntArray, Labels

Generator = Callable[[int, float, np.random.Generator], tuple[Array, Labels]]

CIRCLE_RADIUS = 5.0  # TFP: inner points r < 2.5, outer 3.5 <= r < 5, label rule r < 2.5
XOR_PADDING = 0.3  # TFP pushes xor points this far from each axis
REGRESSION_RADIUS = 6.0
MOON_SCALE = 3.5  # scikit-learn's unit moons, centred and stretched to the +-6 plane
BLOB_RADIUS = 4.0  # blob centres sit on this circle
TABLE_POINTS = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))  # the lecture's row order
# TFP's reg-gauss centres (x, y, sign); a point takes the label of largest magnitude.
REG_GAUSS_CENTRES = (
    (-4.0, 2.5, 1.0),
    (0.0, 2.5, -1.0),
    (4.0, 2.5, 1.0),
    (-4.0, -2.5, -1.0),
    (0.0, -2.5, 1.0),
    (4.0, -2.5, -1.0),
)


def split_counts(n: int, k: int) -> list[int]:
    """n split into k group sizes that differ by at most one, larger groups first."""
    return [n // k + (1 if j < n % k else 0) for j in range(k)]


def class_column(counts: list[int]) -> IntArray:
    """Labels 0, 0, ..., 1, 1, ... with counts[j] copies of class j."""
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def gauss_variance(noise: float) -> float:
    """TFP's two-gauss variance: linear from 0.5 at noise 0 to 4 at noise 0.5."""
    return 0.5 + noise * (4.0 - 0.5) / 0.5


def circle_label(points: Array) -> IntArray:
    """TFP's circle rule: class 1 within half the radius of the origin."""
    return (np.hypot(points[:, 0], points[:, 1]) < CIRCLE_RADIUS * 0.5).astype(np.int64)


def xor_label(points: Array) -> IntArray:
    """TFP's xor rule: class 1 when x*y >= 0."""
    return (points[:, 0] * points[:, 1] >= 0).astype(np.int64)


def plane_target(points: Array) -> Array:
    """TFP's plane: (x + y) / 10, not clamped."""
    return (points[:, 0] + points[:, 1]) / 10.0


def reg_gauss_target(points: Array) -> Array:
    """TFP's six signed bumps max(0, 1 - d/2); the largest magnitude wins, earlier on a tie."""
    target = np.zeros(len(points))
    for cx, cy, sign in REG_GAUSS_CENTRES:
        bump = sign * np.maximum(0.0, 1.0 - np.hypot(points[:, 0] - cx, points[:, 1] - cy) / 2)
        target = np.where(np.abs(bump) > np.abs(target), bump, target)
    return target


def circle(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, Labels]:
    """TFP circle: half r ~ U(0, 2.5), half r ~ U(3.5, 5); label noise U(-5, 5)*noise."""
    n_inner, n_outer = split_counts(n, 2)
    r = np.concatenate(
        [
            rng.uniform(0.0, CIRCLE_RADIUS * 0.5, n_inner),
            rng.uniform(CIRCLE_RADIUS * 0.7, CIRCLE_RADIUS, n_outer),
        ]
    )
    angle = rng.uniform(0.0, 2 * np.pi, n)
    label_noise = rng.uniform(-CIRCLE_RADIUS, CIRCLE_RADIUS, (n, 2)) * noise
    points = np.column_stack([r * np.sin(angle), r * np.cos(angle)])
    return points, circle_label(points + label_noise)


def xor(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, Labels]:
    """TFP xor: x, y ~ U(-5, 5) pushed 0.3 off the axes; label noise U(-5, 5)*noise."""
    raw = rng.uniform(-5.0, 5.0, (n, 2))
    points = raw + np.where(raw > 0, XOR_PADDING, -XOR_PADDING)
    label_noise = rng.uniform(-5.0, 5.0, (n, 2)) * noise
    return points, xor_label(points + label_noise)


def gauss(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, Labels]:
    """TFP two gaussians: class 1 around (2, 2), class 0 around (-2, -2)."""
    counts = split_counts(n, 2)
    centres = np.repeat(np.array([[2.0, 2.0], [-2.0, -2.0]]), counts, axis=0)
    points = centres + rng.standard_normal((n, 2)) * np.sqrt(gauss_variance(noise))
    return points, 1 - class_column(counts)


def _arms(n: int, k: int, rng: np.random.Generator) -> tuple[Array, IntArray]:
    """k clean spiral arms, arm j turned by 2*pi*j/k: r = 5 i/m, t = 3.5 pi i/m + turn."""
    counts = split_counts(n, k)
    fraction = np.concatenate([np.arange(m) / m for m in counts])
    arm = class_column(counts)
    r = 5.0 * fraction
    t = 1.75 * fraction * 2 * np.pi + 2 * np.pi * arm / k
    return np.column_stack([r * np.sin(t), r * np.cos(t)]), arm


def spiral(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, Labels]:
    """TFP spiral: two arms half a turn apart, jitter U(-1, 1)*noise on each coordinate."""
    points, arm = _arms(n, 2, rng)
    points = points + rng.uniform(-1.0, 1.0, (n, 2)) * noise
    # TFP's positive arm is the unturned one.
    return points, 1 - arm


def spiral_3(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, Labels]:
    """Three arms a third of a turn apart; class j is arm j.

    Jitter is isotropic Gaussian with the variance of TFP's U(-1, 1)*noise, because a square
    box would not be invariant under the third-turn symmetry that augmentation uses.
    """
    points, arm = _arms(n, 3, rng)
    return points + rng.standard_normal((n, 2)) * noise / np.sqrt(3.0), arm


def reg_plane(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, Labels]:
    """TFP plane: x, y ~ U(-6, 6), target (x + y)/10 read at the point + U(-6, 6)*noise."""
    points = rng.uniform(-REGRESSION_RADIUS, REGRESSION_RADIUS, (n, 2))
    label_noise = rng.uniform(-REGRESSION_RADIUS, REGRESSION_RADIUS, (n, 2)) * noise
    return points, plane_target(points + label_noise)


def reg_gauss(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, Labels]:
    """TFP multi-gaussian: x, y ~ U(-6, 6), six signed bumps, noise as the plane."""
    points = rng.uniform(-REGRESSION_RADIUS, REGRESSION_RADIUS, (n, 2))
    label_noise = rng.uniform(-REGRESSION_RADIUS, REGRESSION_RADIUS, (n, 2)) * noise
    return points, reg_gauss_target(points + label_noise)


def moons(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, Labels]:
    """scikit-learn's two moons, t ~ U(0, pi), Gaussian noise of std `noise` in unit scale.

    Class 0 is the upper moon (cos t, sin t), class 1 the lower (1 - cos t, 1/2 - sin t);
    shifting by the centre (1/2, 1/4) makes the half turn about the origin swap them, and
    scaling by 3.5 fills the playground's plane.
    """
    counts = split_counts(n, 2)
    t = rng.uniform(0.0, np.pi, n)
    labels = class_column(counts)
    unit = np.column_stack([np.cos(t) - 0.5, np.sin(t) - 0.25])
    unit[labels == 1] *= -1.0
    jitter = rng.standard_normal((n, 2)) * noise
    return (unit + jitter) * MOON_SCALE, labels


def blobs(k: int) -> Generator:
    """k Gaussian blobs, class j centred at angle pi/2 + 2 pi j/k on a circle of radius 4.

    The variance follows TFP's two-gauss slider (0.5 at noise 0 to 4 at noise 0.5).
    """

    def generate(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, Labels]:
        counts = split_counts(n, k)
        labels = class_column(counts)
        angle = np.pi / 2 + 2 * np.pi * labels / k
        centres = BLOB_RADIUS * np.column_stack([np.cos(angle), np.sin(angle)])
        return centres + rng.standard_normal((n, 2)) * np.sqrt(gauss_variance(noise)), labels

    return generate


def table(outputs: tuple[int, int, int, int]) -> Generator:
    """A 2-input truth table: the four points (0,0), (0,1), (1,0), (1,1), no noise."""

    def generate(n: int, noise: float, rng: np.random.Generator) -> tuple[Array, Labels]:
        return np.array(TABLE_POINTS), np.array(outputs, dtype=np.int64)

    return generate
