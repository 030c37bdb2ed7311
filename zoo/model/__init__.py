"""The model: a backbone and a head assembled, zoo's own layers, and scoring what
a classifier predicts.
"""
