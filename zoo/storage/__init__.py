"""Where zoo keeps files and how it writes them: cache folders, run directories,
declared download files, paths kept inside their folders, sizes, a full disk.

The lowest package after :mod:`zoo.errors`: it knows nothing of plugins or TensorFlow.
"""
