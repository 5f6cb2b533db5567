"""Load tests: locust rush profiles and a fast load generator."""
