"""s3tier tiering package."""
