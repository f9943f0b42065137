"""What the daemon asks of the machine it runs on: systemd's notify socket, room on
the data_dir's disk, and which of its environment variables are its own."""
