"""Run logs: capture within a cap, compact storage, paging, raw output, live following."""
