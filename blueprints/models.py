"""Models of the blueprints app."""
