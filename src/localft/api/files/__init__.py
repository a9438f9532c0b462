"""`/v1/files`: upload, list, retrieve, delete and download files."""
