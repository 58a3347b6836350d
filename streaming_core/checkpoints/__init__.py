"""Weight files to models: safe reading (``files.py``), loaders per model family, key checks, converters, and
``layouts.py``: the one table of what a file or folder is (inspect, loaders, CLI discovery, node menus read it).
Imports models, sampling, schedules, base; never pipelines. New layout: row + detector in layouts.py, loader here.
"""
