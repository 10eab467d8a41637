"""ilpnb.data."""
