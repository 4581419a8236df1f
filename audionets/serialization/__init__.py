"""What audionets writes to disk and reads back, below both training and the hub.

- :mod:`~audionets.serialization.checkpoints`: training checkpoints (atomic save, safe load,
  ``LAST``, RNG state, the best-k files and the one ranking of "best");
- :mod:`~audionets.serialization.weights`: saved weights into a built model
  (``load_weights``);
- :mod:`~audionets.serialization.yaml_files`: the YAML of configs and model folders
  (``parse_yaml``, ``check_version``).

These modules import nothing from :mod:`audionets.training`, :mod:`audionets.hub` or the layers
above them (see ARCHITECTURE.md, "Layers").
"""
