"""Fleets: a desired-state file (`apply FILE`), converging devices to it, and keeping
them there (`apply --watch`)."""
