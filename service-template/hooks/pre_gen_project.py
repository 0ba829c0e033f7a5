"""Refuse a name cookiecutter cannot turn into a service, before anything is written.

`trademesh new-service` checks more (clashes with services, libraries and ports, unknown topics)
before it calls cookiecutter; this guards direct `cookiecutter service-template` runs.
"""

import keyword
import re
import sys

slug = "{{ cookiecutter.slug }}"
identifier = slug.replace("-", "_")
problems = []
if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", slug) or not 2 <= len(slug) <= 30:
    problems.append(
        f"service name {slug!r}: use 2-30 lowercase letters, digits and single dashes, "
        "starting with a letter (e.g. pricing-demo)"
    )
elif keyword.iskeyword(identifier) or keyword.issoftkeyword(identifier):
    problems.append(f"service name {slug!r} is a Python keyword")
if not "{{ cookiecutter.http_port }}".isdigit() or not 1024 <= int("{{ cookiecutter.http_port }}") <= 65535:
    problems.append("http_port must be a number from 1024 to 65535")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
