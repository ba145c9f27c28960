"""snnlib: spiking neural networks with the RCS regulariser and the Top-K cutoff.

An exact, tested re-implementation of Wu, Jin, Yu, Yi, Huang, *Optimising Event-Driven
Spiking Neural Network with Regularisation and Cutoff* (arXiv 2301.09522; Frontiers in
Neuroscience 2025).

Conventions, stated once: **time comes first**. Sequences are ``[T, B, ...]``; per-timestep
network outputs are ``[T, B, K]``; the cutoff and metrics work on *cumulative* outputs
``Y(t) = Σ_{τ≤t} o_τ`` of shape ``[T, N, K]``; timesteps reported to users are 1-based.

Every formula is in ``docs/method.md`` (its sections are cited as "§1.5" and so on); the
reading order in ``docs/library.md`` names each module by its concept.
"""

__version__ = "0.1.0"
