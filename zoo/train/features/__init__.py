"""The frozen-feature cache: a frozen backbone's features extracted once per split
and stored on disk, and the head trained on them.
"""
