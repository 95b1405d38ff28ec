"""Training input: grain pipelines with per-host sharding and checkpointable iterators."""
