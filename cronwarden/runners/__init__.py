"""How a run executes: spawn, capture, time out, stop, record."""
