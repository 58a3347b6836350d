"""Tiny random-weight models with the real architectures (same code paths, small widths).

Used by the tests, the ``demo`` command and ``make-tiny``. One module per model family; each builds
its modules from a seed and can write its weights under the real folder and file names.
"""
