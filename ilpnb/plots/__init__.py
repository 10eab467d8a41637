"""ilpnb.plots."""
