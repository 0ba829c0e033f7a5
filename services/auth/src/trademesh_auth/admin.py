"""`python -m trademesh_auth.admin create-user --email ... [--admin | --role ...]`: make a user
from the command line, active at once. How the first admin comes to exist (`trademesh user
create --admin` runs this): there is never a default password. The password is read from stdin
with `--password-stdin`, or else a random one is made and printed once.

It uses the service's own settings (TRADEMESH_*: the database and the keystore, as the service
would) and its migrations, and writes the UserRegistered event to the outbox, which the running
service publishes.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from datetime import timedelta

from trademesh_bus import Bus
from trademesh_config import load_settings
from trademesh_db import Database, migrate
from trademesh_http import ProblemError
from trademesh_keystore import keystore_from

from trademesh_auth.app import MIGRATIONS, _utc_now
from trademesh_auth.config import Settings
from trademesh_auth.engine import Role
from trademesh_auth.signing import SigningKeys
from trademesh_auth.store import AuthStore
from trademesh_auth.usecases.users import Users


async def create_user(settings: Settings, email: str, role: Role, password: str) -> str:
    """The new user's id (a 409 problem when the e-mail is taken, a 422 for a weak password)."""
    keystore = keystore_from(settings)
    if keystore is None:
        raise SystemExit("no keystore master key is configured (TRADEMESH_KEYSTORE_*)")
    await asyncio.to_thread(
        migrate, settings.database_url.get_secret_value(), settings.database_schema, [MIGRATIONS]
    )
    database = Database(settings.database_url.get_secret_value(), schema=settings.database_schema)
    await database.connect()
    try:
        ttl = timedelta(seconds=settings.access_ttl_s)
        keys = SigningKeys(database, keystore, clock=_utc_now, access_ttl=ttl)
        bus = Bus(settings, settings.service_name, telemetry=False)  # for its outbox only
        users = Users(
            db=database,
            store=AuthStore(database),
            outbox=bus.outbox,
            keys=keys,
            settings=settings,
            clock=_utc_now,
        )
        user = await users.register(email, password, role=role, active=True)
        return str(user.user_id)
    finally:
        await database.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trademesh_auth.admin")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="make an active user")
    create.add_argument("--email", required=True)
    roles = create.add_mutually_exclusive_group()
    roles.add_argument("--admin", action="store_true", help="the user is an admin")
    roles.add_argument("--role", choices=["admin", "trader", "viewer"], default="trader")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    args = parser.parse_args(argv)
    settings = load_settings(Settings)
    generated = not args.password_stdin
    password = secrets.token_urlsafe(18) if generated else sys.stdin.readline().rstrip("\n")
    role: Role = "admin" if args.admin else args.role
    try:
        user_id = asyncio.run(create_user(settings, args.email, role, password))
    except ProblemError as problem:
        sys.stderr.write(f"not created: {problem.title}: {problem.detail or ''}\n")
        return 1
    # The terminal is where a one-time password goes (never a log).
    sys.stdout.write(f"created {role} {args.email} ({user_id})\n")
    if generated:
        sys.stdout.write(f"password (shown once, store it now): {password}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
