"""Stubs generated from protos/broker_gateway/v1 (`make generate` at the repository root; never edit them)."""
