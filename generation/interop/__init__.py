"""The authors' release layout (BrokenChairs-180K): its conventions, export to it and import from it."""
