"""What components need from outside: moving declared files into place, their
records, pretrained weights, readiness offline, and bundles (``zoo fetch``).
"""
