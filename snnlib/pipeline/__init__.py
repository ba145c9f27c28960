"""From a config to a run record: the network (:mod:`~snnlib.pipeline.network`), training
(:mod:`~snnlib.pipeline.train`), evaluation (:mod:`~snnlib.pipeline.evaluate`), the record and
its digests (:mod:`~snnlib.pipeline.records`, :mod:`~snnlib.pipeline.digests`) and smoke mode
(:mod:`~snnlib.pipeline.smoke`). :mod:`snnlib.experiment` puts them together for one run, and
:mod:`snnlib.grid` runs a profile's grid of them."""
