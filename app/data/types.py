"""Array and label types shared by the dataset modules."""

from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
# Class indices (int64) for classification, targets (float64) for regression.
Labels = IntArray | Array
Kind = Literal["binary", "multiclass", "regression"]
KINDS: tuple[Kind, ...] = ("binary", "multiclass", "regression")
