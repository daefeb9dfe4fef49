"""Models of the subscriptions app."""
