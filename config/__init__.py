"""s3tier config package."""
