"""Training: the run protocol and the run's state, the stages, the loop, what reacts to it.

Start at :mod:`zoo.train.protocol`, a run's steps in order. The command line and the
public API (``zoo.run``) call :func:`zoo.train.engine.run`, which hands over to it.
Nothing here is imported by the modules below it (components, registry, model).
"""
