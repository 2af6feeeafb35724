"""Shared fixtures and fakes for the whole suite."""

from hypothesis import settings

# Property tests check behaviour, never speed: no per-example deadline (a loaded machine
# would otherwise fail them at random; timing belongs in bench/).
settings.register_profile("plait", deadline=None)
settings.load_profile("plait")
