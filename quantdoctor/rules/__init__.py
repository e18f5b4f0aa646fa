"""The rules core: vocabulary, schema of the matrix, loading and overlays, the evaluator.

Imports nothing from ``doctor`` or ``engines``.
"""
