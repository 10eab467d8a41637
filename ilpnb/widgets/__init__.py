"""ilpnb.widgets."""
