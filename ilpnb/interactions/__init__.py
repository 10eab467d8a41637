"""ilpnb.interactions."""
