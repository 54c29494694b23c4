"""Flowbin's domain, grouped by noun. At the top only what everyone uses: config, errors, states,
the drive's paths, users and the URL guard. No Flask and no Celery anywhere in shared."""
