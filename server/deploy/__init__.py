"""The central team's side of a real deployment: CA and TLS certificates, SuperLink, shop registration, runs."""
