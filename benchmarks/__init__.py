"""Benchmarks: each prints its figures and runs with one command (`voxeron bench NAME`)."""
