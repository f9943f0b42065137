"""Moving from cron: reading crontabs and cron.d files into cronwarden tasks
(``cronwarden import-crontab``)."""
