"""ilpnb.models."""
