"""Plan (desired vs observed), apply, and repo access (read revisions, commit with trailers)."""
