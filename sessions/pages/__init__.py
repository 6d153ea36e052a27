"""The pages a person uses: the live dashboard and the session review pages (server-rendered)."""
