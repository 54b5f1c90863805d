"""End-to-end scenarios run on throwaway devices (the demo)."""
