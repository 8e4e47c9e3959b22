"""Authentication: argon2 passwords, JWT access/refresh tokens, revocation, the socket check."""
