"""xdphints: inspect and use Linux XDP hints (RX metadata) from the command line."""

__version__ = "0.1.0"
