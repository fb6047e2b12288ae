"""Temporal cleaning of signals (nilearn's ``signal.clean``) and the filters it uses."""
