"""The product and subscription REST API, included under /api/ (DESIGN §8)."""
