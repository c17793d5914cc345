"""Rate limits (token buckets in memory) and quotas (a projection of the log, reset on cron)."""
