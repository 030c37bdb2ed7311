"""Input: image files read safely, datasets turned into tf.data pipelines, and a
summary of what a dataset holds.
"""
