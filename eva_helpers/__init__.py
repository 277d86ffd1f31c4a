"""Helpers for the numbered notebooks: data, augmentation, models, One-Cycle training, diagnostics."""

__version__ = "0.1.0"
