"""s3tier proxy package."""
