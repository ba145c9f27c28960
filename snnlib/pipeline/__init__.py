"""From a config to a run record: the network (:mod:`~snnlib.pipeline.network`), training
(:mod:`~snnlib.pipeline.train`), evaluation (:mod:`~snnlib.pipeline.evaluate`), the record
(:mod:`~snnlib.pipeline.records`), grids of runs (:mod:`~snnlib.pipeline.grid`) and smoke mode
(:mod:`~snnlib.pipeline.smoke`). :mod:`snnlib.experiment` puts them together."""
