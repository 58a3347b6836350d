"""Weight files to models: safe reading (``files.py``), which layout a file or folder is
(``layouts.py``, ``folder_layout.py``, ``inspect.py``), one loader per model family, key checks, converters.

May import: models, sampling, schedules and the base modules (``state_files``, ``errors``); never
pipelines or above. A new layout is a row in ``layouts.py`` and a loader module here.
"""
