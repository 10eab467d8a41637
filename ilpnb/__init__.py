"""ilpnb: a workbench for what supervised fine-tuning fails to learn, and why.

The main entry points, importable from here (each loads its module on first use, so
``import ilpnb`` imports neither torch nor transformers)::

    import ilpnb
    preset = ilpnb.get_preset("smoke")
    world = ilpnb.generate_world(preset.world, "runs/w")
    run = ilpnb.run_sft("runs/r", world=world, preset="smoke")
    table = ilpnb.write_diagnosis(run)

The subpackages (:mod:`ilpnb.data`, :mod:`ilpnb.models`, :mod:`ilpnb.train`, :mod:`ilpnb.probe`,
:mod:`ilpnb.diagnose`, :mod:`ilpnb.mitigate`, :mod:`ilpnb.interactions`, :mod:`ilpnb.plots`,
:mod:`ilpnb.widgets`) each export their own curated names.
"""

from __future__ import annotations

from ilpnb._lazy import exported_names, lazy_exports

__version__ = "0.1.0"

#: module -> the entry points it provides (imported on first use)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "ilpnb.causes": ("Cause", "CAUSES", "get_cause"),
    "ilpnb.config": ("Preset", "get_preset"),
    "ilpnb.runs": ("Run", "RunFolder"),
    "ilpnb.data.records": ("SFTRecord", "read_records"),
    "ilpnb.data.world": ("generate_world",),
    "ilpnb.data.world_config": ("load_world_config",),
    "ilpnb.models.registry": ("load_model_and_tokenizer",),
    "ilpnb.train.sft": ("run_sft",),
    "ilpnb.train.callback": ("TrackingCallback",),
    "ilpnb.diagnose.attribution": ("write_diagnosis",),
    "ilpnb.diagnose.scoring": ("score_diagnosis",),
    "ilpnb.mitigate.experiment": ("run_mitigation",),
    "ilpnb.interactions.compute": ("compute_interactions",),
    "ilpnb.pipeline.sweep": ("interaction_dynamics",),
    "ilpnb.widgets": ("SampleInspector", "InteractionViewer"),
}
__all__ = ["__version__", *exported_names(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
