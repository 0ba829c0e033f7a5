"""Exchange access through ccxt, in one place: what execution's live venue, market-data's ccxt
feed and risk's venue rules share.

- `parsing`: untrusted numbers and times from an exchange, read exactly and checked.
- `errors`: one classification of ccxt's failures, which each caller maps to its own errors.
- `redaction`: secrets and request signatures masked in texts and in ccxt's own logging.
- `guards`: ccxt's per-record parsers guarded, so one bad record never costs a whole answer.
- `exchanges`: which exchanges ccxt has, and the (REST or WebSocket) class of a client.
- `shared`: the rate limiter and markets the clients of one exchange share in a process.

Nothing is imported here: importing ccxt takes a second or more, which a service that never
talks to an exchange need not pay, so each module says whether it imports ccxt.
"""
