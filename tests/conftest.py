"""Shared fixtures and fakes for the whole suite."""
