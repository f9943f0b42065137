"""Run artifacts: the files a run leaves in its own directory ($CRONWARDEN_ARTIFACTS_DIR),
kept with the run.  Where they lie (layout), what a run left and what of it is kept
(stock), and which names a client may ask for (names).  File-system work only: the
store records the listings, runners/artifacts.py ties the two together."""
