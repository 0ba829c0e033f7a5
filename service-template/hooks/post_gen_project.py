"""Drop the files the chosen options do not use (cookiecutter renders every file of the template)."""

import shutil
from pathlib import Path

package = Path("src") / "{{ cookiecutter.package }}"
produces = [t.strip() for t in "{{ cookiecutter.produces }}".split(",") if t.strip()]

if not {{ cookiecutter.owns_schema }}:
    shutil.rmtree(package / "migrations")
if not produces:
    (package / "api" / "events.py").unlink()
