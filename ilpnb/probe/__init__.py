"""ilpnb.probe."""
