"""The PostgreSQL database backend (ENGINE "orchestrator.postgresql"): see base.py."""
