"""The run: plan units, execute them on workers, write query and view shards, merge datasets."""
