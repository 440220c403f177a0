"""The TGRelay backend's building blocks; tgrelay.py wires them into Errbot."""
