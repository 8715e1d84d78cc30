"""The benchmark harness: the gateway's cost measured side by side with the floor it runs on.

``make bench`` (or ``python -m benchmarks.run``) starts everything on loopback, drives it with ghz and
prints the table; ``benchmarks/README.md`` explains the method and records the figures.
"""
