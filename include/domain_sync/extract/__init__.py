"""Extract: read users and groups from Microsoft Graph (delta queries) into the run's Parquet files."""
