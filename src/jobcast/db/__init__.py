"""jobcast's own tables, engine and sessions, apart from the host app's."""
