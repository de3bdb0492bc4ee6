"""Fault suite: the whole box and cloud as real processes, killed and cut off for real."""
