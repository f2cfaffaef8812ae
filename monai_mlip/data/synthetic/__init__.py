"""Synthetic, format-faithful chest X-ray and report dataset."""
