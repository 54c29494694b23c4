"""Checkpoint review: who reviews a job, the records a checkpoint stopped, corrections and
metrics. May import engine (output layout, binaries), jobs, store and the top-level modules."""
