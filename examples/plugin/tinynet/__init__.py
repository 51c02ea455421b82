"""tinynet: an admtune workload plug-in, complete and runnable (see examples/plugin/README.md)."""
