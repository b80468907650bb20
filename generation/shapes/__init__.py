"""Shape sources: the part-annotated ``Shape`` record, PartNet and procedural chairs, the source
lists a run draws from, part inventories, and mesh export."""
