"""What each training method trains, converts and evaluates, as one table
(docs/method.md §1.3-§1.4).

* ``qcfs``: train the QCFS ANN with ``T = 1`` (cross-entropy, optional ANN-side RCS),
  convert it to an IF SNN and run that for ``T`` steps on the repeated input. On an event
  dataset the ANN and the SNN both see the accumulated frame (the mean of the ``T`` frames),
  as the official code's one-frame ``dvs-cifar10-1`` setting.
* ``mean``, ``tet``, ``tebn``: direct training of the LIF SNN for ``T`` steps with the mean
  or TET loss (``tebn``: TET loss with TEBN normalisation), plus ``alpha · RCS``.

The table imports no torch, so a config validates its ``method`` against it cheaply; the code
that acts on it is in :mod:`snnlib.pipeline.network` (networks, objectives) and
:mod:`snnlib.data.layout` (the network input).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """One method: the network it trains, its task loss, and whether it is converted.

    ``neuron`` and ``norm`` are :func:`snnlib.models.build`'s; ``loss`` names the task loss
    (``"ce"``: cross-entropy of the mean output, ``"tet"``: the TET loss); ``converts`` means
    an ANN is trained at ``T = 1`` and converted to the SNN that is evaluated, with event data
    seen as its accumulated frame.
    """

    neuron: str
    norm: str
    loss: str
    converts: bool

    def train_T(self, T: int) -> int:
        """The number of timesteps the trained network runs for (1 for a converted ANN)."""
        return 1 if self.converts else T

    def accumulates(self, kind: str) -> bool:
        """Whether inputs of this data ``kind`` are seen as one accumulated frame."""
        return self.converts and kind == "event"


METHOD_TABLE: dict[str, Method] = {
    "qcfs": Method(neuron="qcfs", norm="bn", loss="ce", converts=True),
    "mean": Method(neuron="lif", norm="bn", loss="ce", converts=False),
    "tet": Method(neuron="lif", norm="bn", loss="tet", converts=False),
    "tebn": Method(neuron="lif", norm="tebn", loss="tet", converts=False),
}
METHODS: tuple[str, ...] = tuple(METHOD_TABLE)
