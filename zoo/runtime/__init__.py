"""TensorFlow and OpenVINO: importing them late and quietly, the process-wide
patches, where a frozen model runs, and what this machine offers (``zoo doctor``).
"""
