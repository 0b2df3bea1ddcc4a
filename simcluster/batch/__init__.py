"""batch/v1 Jobs: the API server's defaults for them and the Job controller that runs their pods."""
