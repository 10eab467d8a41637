"""The pipeline layer: steps of the library composed into runs.

The library below (``data``, ``models``, ``train``, ``probe``, ``diagnose``, ``mitigate``,
``interactions``, ``plots``, ``widgets``) knows nothing of runs made by notebooks; the modules
here make them: :mod:`.workbench` (a notebook run's world, base model, probe report, diagnosis),
:mod:`.realtrack` (the packaged real model on packaged real data), :mod:`.realworld` (real
facts the real model is measured to know, with every cause planted), :mod:`.sweep` (interactions
across a fine-tuning run's checkpoints), :mod:`.interactions` and :mod:`.real_interactions` (the
notebooks' interaction runs on the world and on the real LLM) and :mod:`.interaction_report`
(their findings in words), :mod:`.notebook_runner` and
:mod:`.run_index` (``ilpnb run`` and the run's ``index.html``). The command line
(:mod:`ilpnb.cli`) sits on top. Nothing in the library imports this package
(``tests/test_layers.py`` checks it).
"""

from __future__ import annotations

from ilpnb._lazy import exported_names, lazy_exports

#: module -> the public names it provides (imported on first use)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".workbench": ("open_or_create_run", "ensure_world", "ensure_base_model", "ensure_probe_report",
                   "load_base_model", "ensure_diagnosis", "diagnosis_signals", "world_fidelity"),
    ".realworld": ("build_realworld", "measure_knowledge", "planting_fidelity"),
    ".sweep": ("DynamicsTables", "interaction_dynamics", "reference_model", "rescore"),
    ".interactions": ("ensure_interaction_dynamics", "ensure_interaction_run"),
    ".real_interactions": ("ensure_real_interaction_dynamics", "ensure_real_interaction_run", "real_heldout_prompts"),
    ".interaction_report": ("describe_dynamics", "describe_sets", "describe_stopping", "findings", "heldout_table", "set_table"),
    ".notebook_runner": ("run_notebooks", "find_notebooks"),
    ".run_index": ("build_index",),
}
__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
