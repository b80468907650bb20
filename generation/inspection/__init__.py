"""Looking at a dataset: Table 1 statistics, validation against the shard contract, contact sheets."""
