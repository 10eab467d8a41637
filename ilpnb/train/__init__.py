"""ilpnb.train."""
