"""firereg."""
