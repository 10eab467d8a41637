"""SFT data: records and their readers, the controlled world generator and its config, packaged real
datasets."""

from __future__ import annotations

from ilpnb._lazy import exported_names, lazy_exports

#: module -> the public names it provides (imported on first use, so this package imports nothing heavy)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".records": ("SFTRecord", "RecordError", "read_records", "write_records", "validate_records"),
    ".world_config": ("CAUSES", "PLANTED_CAUSES", "WorldConfig", "WorldConfigError", "load_world_config"),
    ".world": ("World", "WORLD_FILES", "build_world", "generate_world"),
    ".packaged": ("DATASETS", "PackagedDataset", "DatasetNotInstalledError", "load_dataset_by_name", "resolve_data"),
}
__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
