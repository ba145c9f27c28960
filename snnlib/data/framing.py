"""Events to count frames, and the DVS training augmentation (one random shift per sample).

Framing (docs/method.md §2.4): the events inside a time window are binned into
``T`` equal time bins; frame ``k`` holds, per polarity channel (channel 0 = OFF / p=0,
channel 1 = ON / p=1) and pixel, the number of events whose timestamp falls in bin ``k``:

    bin(t) = floor((t - begin) * T / duration),   begin <= t < begin + duration

``begin`` is the first event's time (or 0) plus ``Window.start_us``; ``duration`` is
``Window.duration_us`` or, when that is None, the whole recording (up to its last event).
Frames are int16 ``[T, P, H, W]`` (tonic's ``ToFrame`` does the accumulation), without
normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tonic.transforms import ToFrame

# tonic's NMNIST event dtype: the one the emulated sensor emits and the framing builds
EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


@dataclass(frozen=True)
class Window:
    """A time window in µs: it starts ``start_us`` after the recording's first event (or after
    t=0 when ``from_first_event`` is False) and lasts ``duration_us`` (None: to the last event).
    """

    start_us: int = 0
    duration_us: int | None = None
    from_first_event: bool = True


def to_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int, int],
    T: int,
    window: Window = Window(),
    drop_outside: bool = False,
) -> np.ndarray:
    """Count frames int16 ``[T, P, H, W]`` of a structured event array with fields x, y, t, p.

    Events outside the ``(W, H, P)`` sensor raise ValueError, unless ``drop_outside`` (used where
    recordings are larger than the frame, e.g. N-Caltech101 cropped to 240x180).
    """
    width, height, n_pol = sensor_size
    frames_shape = (T, n_pol, height, width)
    if len(events) == 0:
        # tonic returns a float64 array with W and H swapped for empty input; avoid that path
        return np.zeros(frames_shape, dtype=np.int16)
    t = events["t"].astype(np.int64)
    begin = (int(t.min()) if window.from_first_event else 0) + window.start_us
    duration = window.duration_us
    if duration is None:
        duration = int(t.max()) - begin + 1
    keep = (t >= begin) & (t < begin + duration)
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    p = (events["p"].astype(np.int64) > 0).astype(np.int64) if n_pol == 2 else np.zeros_like(x)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    if not inside[keep].all():
        if not drop_outside:
            raise ValueError(
                f"events outside the {width}x{height} sensor: x in [{x.min()}, {x.max()}], "
                f"y in [{y.min()}, {y.max()}]"
            )
        keep &= inside
    if not keep.any():
        return np.zeros(frames_shape, dtype=np.int16)
    bins = (t[keep] - begin) * T // duration
    order = np.argsort(bins, kind="stable")  # ToFrame slices with searchsorted: needs sorted t
    binned = np.empty(len(order), dtype=EVENT_DTYPE)
    binned["x"], binned["y"] = x[keep][order], y[keep][order]
    binned["t"], binned["p"] = bins[order], p[keep][order]
    # with t replaced by the bin index, windows [k, k+1) for k < T are exactly the T bins
    to_frame = ToFrame(sensor_size=(width, height, n_pol), time_window=1, start_time=0, end_time=T)
    return to_frame(binned)


def translate(frames: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Shift ``[..., H, W]`` by ``dx`` columns and ``dy`` rows, filling with zeros."""
    out = torch.zeros_like(frames)
    height, width = frames.shape[-2:]
    if abs(dx) >= width or abs(dy) >= height:
        return out
    src_y = slice(max(0, -dy), height - max(0, dy))
    dst_y = slice(max(0, dy), height - max(0, -dy))
    src_x = slice(max(0, -dx), width - max(0, dx))
    dst_x = slice(max(0, dx), width - max(0, -dx))
    out[..., dst_y, dst_x] = frames[..., src_y, src_x]
    return out


@dataclass(frozen=True)
class RandomTranslate:
    """The DVS training augmentation: one uniform integer shift in ``[-max_shift, max_shift]``
    along x and y, the same for all ``T`` frames of a sample, zero fill
    (docs/method.md §2.4: ±25 px).

    Draws from torch's global RNG, so DataLoader workers are seeded the usual way.
    """

    max_shift: int = 25

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        dx, dy = torch.randint(-self.max_shift, self.max_shift + 1, (2,)).tolist()
        return translate(frames, dx, dy)
