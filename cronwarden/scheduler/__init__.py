"""When things fire: pure triggers and policies, the one timer of every task, and the
service that turns each due fire into runs."""
