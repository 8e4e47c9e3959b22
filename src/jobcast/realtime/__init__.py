"""Socket.IO: authenticated connections in per-user rooms (the worker side is jobs.events)."""
