"""A device's hints state: what the kernel reports (state), the feature table,
the verdict per hint, the active RX queues, attached programs, and the enable/disable
planner that changes it."""
