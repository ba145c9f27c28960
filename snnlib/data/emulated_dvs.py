"""mnist5k-dvs: an *emulated* DVS recording of each mnist5k digit (no real sensor involved).

The scene follows N-MNIST's recording (Orchard et al. 2015): the 28x28 digit, shown on a screen
whose black level is ``background`` (relative to white = 1), moves over a 34x34 sensor in three
saccades of ``saccade_us`` each, along the triangle of image offsets (0,0) -> (3,6) -> (6,0) ->
(0,0) px (x, y). The image is resampled bilinearly at ``steps_per_saccade`` positions per
saccade.

Each pixel compares its log intensity ``L = log I`` with a reference level ``R`` (``L`` at its
last event, initially at t=0). Whenever ``|L - R|`` reaches its contrast threshold ``C_xy``, it
emits one event per threshold crossed, ON (p=1) for an increase and OFF (p=0) for a decrease,
and moves ``R`` by ``C_xy`` per event:

    n = floor(|L - R| / C_xy),   R <- R + sign(L - R) * n * C_xy

Crossing times are interpolated linearly between the two sampled positions; timestamps are
integer µs in ``[0, 3 * saccade_us)``. ``C_xy`` is a fixed-pattern map (one per sensor, i.e. per
``seed``): ``contrast_threshold`` plus Gaussian mismatch of std ``threshold_mismatch``, clipped
at 0.05. The recording is therefore a deterministic function of the image and the seed, and a
sample does not depend on which other samples are emulated with it. With the defaults a digit
gives about 4,600 events (N-MNIST: 3,000-5,000).

Events use tonic's NMNIST dtype (x, y, t, p; int64). Frames: ``tonic.transforms.ToFrame`` over
the whole 300 ms recording, T equal bins, int16 ``[T, 2, 34, 34]``. Frames of a split are kept in
memory (a small LRU cache per split, T and seed) and, given a ``cache_dir``, in one ``.npy`` file
per split, T and seed under ``cache_dir/emulated-dvs/`` (emulating the 3,500 training digits
takes seconds, in every process that trains on them; the three splits at T = 8 take 177 MB).
The file's name is a digest of the digits' pixels, T, the seed, the sensor parameters and the
source of this module and of :mod:`snnlib.data.framing`, so a change to any of them reads no
stale frames.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from snnlib.data import framing
from snnlib.data.embedded import ArraySamples, load_mnist5k
from snnlib.data.framing import EVENT_DTYPE, Window, to_frames
from snnlib.tools.atomic import atomic_write

SENSOR_SIZE = (34, 34, 2)  # (W, H, P), as N-MNIST
_PATH = np.array([(0.0, 0.0), (3.0, 6.0), (6.0, 0.0), (0.0, 0.0)])  # image offsets (x, y)
_PAD = 8  # margin around the 28x28 image so that every shifted window stays in bounds


@dataclass(frozen=True)
class SensorParams:
    """Parameters of the emulated sensor and scene (defaults give N-MNIST-like event counts)."""

    contrast_threshold: float = 0.4  # mean C, in units of log intensity
    threshold_mismatch: float = 0.03  # std of the per-pixel C (fixed pattern noise)
    background: float = 0.15  # screen black level; > 0 because log(0) is undefined
    saccade_us: int = 100_000
    steps_per_saccade: int = 24  # 0.28 px per step at most


def threshold_map(seed: int, params: SensorParams = SensorParams()) -> np.ndarray:
    """The per-pixel contrast thresholds ``C_xy`` ``[34, 34]`` of the sensor drawn by ``seed``."""
    rng = np.random.default_rng(seed)
    width, height, _ = SENSOR_SIZE
    noise = rng.standard_normal((height, width))
    return np.clip(params.contrast_threshold + params.threshold_mismatch * noise, 0.05, None)


def _log_scene(base: np.ndarray, step: int, params: SensorParams) -> np.ndarray:
    """Log intensity on the sensor at position ``step`` of the saccade path, flat ``[N*H*W]``."""
    s = params.steps_per_saccade
    leg = min(step // s, 2)
    ox, oy = _PATH[leg] + (step - leg * s) / s * (_PATH[leg + 1] - _PATH[leg])
    ix, iy = int(np.floor(ox)), int(np.floor(oy))
    fx, fy = ox - ix, oy - iy
    width, height, _ = SENSOR_SIZE
    out = np.zeros((len(base), height, width), np.float32)
    # bilinear resampling: sensor pixel (r, c) sees the image at (r - oy, c - ox)
    for ay, wy in ((0, 1 - fy), (1, fy)):
        for ax, wx in ((0, 1 - fx), (1, fx)):
            if wy * wx > 0:
                r, c = _PAD - iy - ay, _PAD - ix - ax
                out += np.float32(wy * wx) * base[:, r : r + height, c : c + width]
    return np.log(out, out=out).reshape(-1)


def _emulate_flat(images: np.ndarray, thresholds: np.ndarray, params: SensorParams):
    """Events of all ``images`` as flat arrays (sample, x, y, t, p), sorted by sample then t."""
    n = len(images)
    width, height, _ = SENSOR_SIZE
    b = params.background
    base = np.full((n, 28 + 2 * _PAD, 28 + 2 * _PAD), b, np.float32)
    base[:, _PAD : _PAD + 28, _PAD : _PAD + 28] = b + (1 - b) * images.astype(np.float32) / 255
    c_flat = np.tile(thresholds.astype(np.float32).reshape(-1), n)
    dt = params.saccade_us / params.steps_per_saccade
    last_t = 3 * params.saccade_us - 1
    prev = _log_scene(base, 0, params)
    ref = prev.copy()
    chunks = []
    for step in range(1, 3 * params.steps_per_saccade + 1):
        cur = _log_scene(base, step, params)
        diff = cur - ref
        fired = np.flatnonzero(np.abs(diff) >= c_flat)
        c = c_flat[fired]
        count = (np.abs(diff[fired]) / c).astype(np.int64)
        sign = np.where(diff[fired] > 0, np.float32(1), np.float32(-1))
        ref_old = ref[fired]
        ref[fired] = ref_old + sign * count * c
        # one row per event; k = 1..count is the index of the crossing within its pixel
        rep = np.repeat(np.arange(len(fired)), count)
        k = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count) + 1
        delta = (cur[fired] - prev[fired])[rep]
        level = (ref_old - prev[fired])[rep] + (sign * c)[rep] * k
        # delta == 0 only through float32 rounding; put those crossings at the step's end
        frac = np.clip(level / np.where(delta == 0, 1, delta), 0, 1, dtype=np.float64)
        t = np.minimum(((step - 1 + frac) * dt).astype(np.int64), last_t)
        chunks.append((fired[rep], t, (sign[rep] > 0).astype(np.int64)))
        prev = cur
    flat, t, p = (np.concatenate(parts) for parts in zip(*chunks, strict=True))
    sample, pixel = np.divmod(flat, height * width)
    y, x = np.divmod(pixel, width)
    order = np.argsort(sample << 32 | t, kind="stable")  # t < 2**32 µs
    return sample[order], x[order], y[order], t[order], p[order]


def emulate_events(
    images: np.ndarray, seed: int = 0, params: SensorParams = SensorParams()
) -> list[np.ndarray]:
    """Emulated recordings of uint8 ``[N, 28, 28]`` images: N structured arrays (x, y, t, p)."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"images must have shape [N, 28, 28], got {images.shape}")
    sample, x, y, t, p = _emulate_flat(images, threshold_map(seed, params), params)
    bounds = np.searchsorted(sample, np.arange(len(images) + 1))
    out = []
    for i in range(len(images)):
        part = slice(bounds[i], bounds[i + 1])
        events = np.empty(bounds[i + 1] - bounds[i], dtype=EVENT_DTYPE)
        events["x"], events["y"], events["t"], events["p"] = x[part], y[part], t[part], p[part]
        out.append(events)
    return out


def emulate_frames(
    images: np.ndarray,
    T: int,
    seed: int = 0,
    params: SensorParams = SensorParams(),
    chunk: int = 100,
) -> np.ndarray:
    """Count frames int16 ``[N, T, 2, 34, 34]`` of the emulated recordings (chunked: memory)."""
    frames = np.zeros((len(images), T, 2, SENSOR_SIZE[1], SENSOR_SIZE[0]), dtype=np.int16)
    # every recording spans [0, 3 saccades): bins are aligned across samples
    window = Window(start_us=0, duration_us=3 * params.saccade_us, from_first_event=False)
    for start in range(0, len(images), chunk):
        batch = emulate_events(images[start : start + chunk], seed, params)
        for i, events in enumerate(batch):
            frames[start + i] = to_frames(events, SENSOR_SIZE, T, window)
    return frames


def _frames_file(images: np.ndarray, T: int, seed: int, cache_dir: Path) -> Path:
    digest = hashlib.sha256(images.tobytes())
    digest.update(repr((images.shape, T, seed, SensorParams())).encode())
    for module in (__file__, framing.__file__):
        digest.update(Path(module).read_bytes())
    return cache_dir / "emulated-dvs" / f"{digest.hexdigest()[:24]}.npy"


@lru_cache(maxsize=3)
def _cached_frames(rows: tuple[int, ...], T: int, seed: int, cache_dir: Path | None):
    images = load_mnist5k()[0][list(rows)]
    path = None if cache_dir is None else _frames_file(images, T, seed, cache_dir)
    if path is not None and path.is_file():
        try:
            return torch.from_numpy(np.load(path))
        except (OSError, ValueError):  # unreadable: emulated again and rewritten below
            pass
    frames = emulate_frames(images, T, seed)
    if path is not None:
        buffer = io.BytesIO()
        np.save(buffer, frames)
        atomic_write(path, buffer.getvalue())
    return torch.from_numpy(frames)


class EmulatedDVS(ArraySamples):
    """Rows of mnist5k as emulated DVS frames ``([T, 2, 34, 34] float32 counts, label)``,
    cached under ``cache_dir`` when one is given (see the module's docstring).

    ``events(i)`` re-emulates sample ``i`` and returns its raw events (tonic's NMNIST dtype).
    """

    def __init__(self, rows: list[int], T: int, seed: int = 0, cache_dir: Path | None = None):
        _, labels = load_mnist5k()
        self.rows, self.T, self.seed = list(rows), T, seed
        self.sensor_size = SENSOR_SIZE
        frames = _cached_frames(tuple(self.rows), T, seed, cache_dir)
        super().__init__(frames, torch.from_numpy(labels[self.rows]))

    def events(self, index: int) -> np.ndarray:
        """The raw emulated events of sample ``index`` (deterministic for the seed)."""
        images, _ = load_mnist5k()
        return emulate_events(images[[self.rows[index]]], self.seed)[0]
