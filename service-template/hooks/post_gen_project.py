"""Drop the files the chosen options do not use (cookiecutter renders every file of the template),
and link the package's pyproject.toml to the service's, so that the installed package ships its
manifest (trademesh_service.service_manifest)."""

import os
import shutil
from pathlib import Path

package = Path("src") / "{{ cookiecutter.package }}"
produces = [t.strip() for t in "{{ cookiecutter.produces }}".split(",") if t.strip()]

if not {{ cookiecutter.owns_schema }}:
    shutil.rmtree(package / "migrations")
if not produces:
    (package / "api" / "events.py").unlink()
os.symlink(Path("..") / ".." / "pyproject.toml", package / "pyproject.toml")
