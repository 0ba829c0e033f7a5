"""`python -m trademesh_notify` runs the service until SIGTERM or Ctrl-C."""

from __future__ import annotations

from trademesh_config import load_settings
from trademesh_http.server import serve

from trademesh_notify.app import create_app
from trademesh_notify.config import Settings


def main() -> None:
    settings = load_settings(Settings)  # a bad setting stops here: one line on stderr, exit 2
    serve(create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
