"""What users configure: run settings, each declared once, and registry.toml files
(plugin lists, run defaults, component defaults, recipes).
"""
