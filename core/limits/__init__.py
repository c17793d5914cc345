"""Rate limits (token buckets) and quotas (reservations and usage): projections of the
log that check each trigger in the append (so they hold across processes), with
per-process caches as admission's first guess; resets on cron."""
