"""Jobs: states, the registry of job types, the task log, and the service that runs them."""
