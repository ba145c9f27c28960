"""What the run records say: figures and tables (:mod:`~snnlib.study.figures`), the report
of a profile (:mod:`~snnlib.study.report`), paired statistics (:mod:`~snnlib.study.stats`),
and the studies: conversion convergence (:mod:`~snnlib.study.convergence`), the regulariser
(:mod:`~snnlib.study.regulariser`) and the calibration comparison
(:mod:`~snnlib.study.calibration`). Reads records only; never trains."""
