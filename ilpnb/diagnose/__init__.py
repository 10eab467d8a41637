"""ilpnb.diagnose."""
