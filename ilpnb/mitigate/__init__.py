"""ilpnb.mitigate."""
