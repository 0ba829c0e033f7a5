"""Exchange access through ccxt, in one place: what execution's live venue, market-data's ccxt
feed and risk's venue rules share.

- `parsing`: untrusted numbers and times from an exchange, read exactly and checked.
- `errors`: one classification of ccxt's failures, which each caller maps to its own errors.

Nothing is imported here: importing ccxt takes a second or more, which a service that never
talks to an exchange need not pay, so each module says whether it imports ccxt.
"""
