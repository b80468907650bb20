"""SVBRDF materials: procedural library, loaders for external namings, per-part assignment."""
