"""What a trained run gives: its model saved and loaded back (data, never code),
predictions, evaluation, exports, and comparing runs.
"""
