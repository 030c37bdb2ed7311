"""``zoo tune``: a search over backbones, heads and training settings, on Optuna.

Every trial is a real zoo run (:func:`zoo.train.engine.run`) with its own run directory;
trials of a frozen backbone share its cached features, so after the backbone's first
extraction a trial costs only its head's training. The modules, in the order a search
uses them: :mod:`~zoo.tune.space` (what a trial draws), :mod:`~zoo.tune.plan` (which
backbones and heads can run, and why others are skipped), :mod:`~zoo.tune.studies` (the
study's storage, shared by processes, and trials a killed process left), :mod:`~zoo.tune.trial`
(one trial: a run, pruned on its per-epoch validation metric), :mod:`~zoo.tune.search`
(the loop, the repeats, the winner's final run and recipe), :mod:`~zoo.tune.leaderboard`
(the ranking, the Pareto front and its figure).
"""
