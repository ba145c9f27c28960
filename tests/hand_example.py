"""The hand-computed example shared by the cutoff and metrics tests: cumulative outputs
``[T=3, N=4, K=3]`` and labels (the comments in each test module work it out by hand)."""

import numpy as np

HAND = np.array(
    [
        [[2, 1, 0], [1, 0, 0], [0, 0, 4], [0, 1, 0]],
        [[3, 3, 0], [1, 3, 0], [0, 5, 4], [0, 2, 0]],
        [[5, 3, 1], [1, 4, 0], [0, 5, 6], [1, 2, 0]],
    ],
    dtype=np.float32,
)
HAND_LABELS = np.array([0, 1, 2, 0])
