"""Flowbin's domain: config, store, state machine, drive, flow compiler and runtime, services."""
