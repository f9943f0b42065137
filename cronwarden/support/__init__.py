"""Small helpers every layer may use, with no import from the rest of cronwarden:
clocks, backoff, durations and sizes, instants as text, safe text, a loop nudge, the
daemon's log set-up."""
