"""This process's context: its network namespace and its capabilities."""
