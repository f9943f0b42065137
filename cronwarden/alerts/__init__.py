"""Alerts to [notify.*] targets: what raises one, how it is delivered."""
