"""Training: placement, the stages of a run, the loop, and what reacts to it.

Nothing here is imported by the modules below it (components, registry, model);
the command line and the public API (``zoo.run``) call :func:`zoo.train.engine.run`.
"""
