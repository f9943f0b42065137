"""When things fire: pure triggers and policies, plus the APScheduler glue that times them."""
