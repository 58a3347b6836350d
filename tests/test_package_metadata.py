"""The Registry metadata: what ComfyUI Manager and the Comfy Registry read from pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PLACEHOLDER = "FILL-AT-PUBLICATION"


def test_license_file_is_the_apache_license_the_metadata_names():
    assert PYPROJECT["project"]["license"] == {"file": "LICENSE"}
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "License :: OSI Approved :: Apache Software License" in PYPROJECT["project"]["classifiers"]


def test_requires_comfyui_is_where_comfy_cli_reads_it_and_starts_at_the_tested_version():
    assert "requires-comfyui" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["comfy"]["requires-comfyui"] == ">=0.3.64"


def test_no_accelerator_classifier_claims_the_pack_needs_one_gpu_kind():
    assert not [c for c in PYPROJECT["project"]["classifiers"] if c.startswith("Environment :: GPU")]


def test_unknown_publication_values_are_marked_not_invented():
    urls = PYPROJECT["project"]["urls"]
    assert urls["Repository"].startswith("https://") and all(PLACEHOLDER in u for u in urls.values())
    assert PYPROJECT["tool"]["comfy"]["PublisherId"] == PLACEHOLDER
