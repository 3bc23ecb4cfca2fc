"""Measuring tools run against a live stack (./ucj up); see bench/README.md. Not tests."""
