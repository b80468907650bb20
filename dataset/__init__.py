"""The dataset format: what generation writes and the benchmark reads (DESIGN.md "Shards").

One place both sides import: the field table of query and view shards (``schema``), the HDF5
writer and reader (``shards``), ``dataset.json`` and its lock (``dataset_json``), the split law
(``splits``), the records a shard holds (``queries``, ``views``) and the camera convention every
K and world_to_cam in them follows (``cameras``). Nothing here imports generation or the benchmark.
"""
