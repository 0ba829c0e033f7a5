"""Exchange access through ccxt, in one place: what execution's live venue, market-data's ccxt
feed and risk's venue rules share.

- `parsing`: untrusted numbers and times from an exchange, read exactly and checked.
- `errors`: one classification of ccxt's failures, which each caller maps to its own errors.
- `redaction`: secrets and request signatures masked in texts and in ccxt's own logging.
- `guards`: ccxt's per-record parsers guarded, so one bad record never costs a whole answer.
- `exchanges`: which exchanges ccxt has, and the (REST or WebSocket) class of a client.
- `shared`: the rate limiter and markets the clients of one exchange share in a process.
- `markets`: an exchange's markets from its public endpoints, never with credentials.

Nothing is imported here, and no module imports ccxt when it is imported: `errors`, `exchanges`
and `markets` import it when first used. Importing ccxt takes a second or more, which a service
that never talks to an exchange (risk without venue rules, tests) need not pay. This library and
the two adapters that need ccxt's classes themselves (execution's `venues.ccxt`, market-data's
`feeds.ccxt_feed`) are the only modules that import ccxt: an import-linter contract in the root
pyproject.toml says so.
"""
