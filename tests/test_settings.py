"""The one settings tree (:mod:`ilpnb.config`) and the flags generated from it (:mod:`ilpnb.cli.flags`).

Dotted overrides and their errors, help text on every field, flags that round-trip to the
dataclasses, ``--help`` that shows each default, the interaction and real-track sub-trees
per preset (the numbers are those of the tables they replaced:
``ilpnb.interactions.settings.DYNAMICS_PRESETS`` and ``ilpnb.pipeline.realtrack.REAL_TRACK``
before the move), and the commands reading the tree.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ilpnb.cli import main
from ilpnb.cli.flags import add_setting_flags, given_settings, parse_value, preset_defaults
from ilpnb.config import (
    PRESETS,
    DynamicsConfig,
    MitigateConfig,
    Preset,
    RealConfig,
    SFTConfig,
    get_preset,
    get_setting,
    override,
    setting_fields,
    to_dict,
)
from ilpnb.data.world_config import WorldConfig, WorldConfigError

ROOT = Path(__file__).resolve().parent.parent


class Stop(Exception):
    """Raised by a stand-in to end a command once it has shown what it would run."""


# -- dotted overrides ----------------------------------------------------------------------
def test_dotted_overrides_change_only_their_keys_on_a_fresh_copy() -> None:
    p = get_preset("smoke", **{"sft.lr": 5e-4, "world.seed": 3, "real.diagnose.n_samples": 1,
                               "world.counts.none": 30, "interactions.n_prompts": 5, "mitigate.seeds": 4})
    assert (p.sft.lr, p.world.seed, p.real.diagnose.n_samples) == (5e-4, 3, 1)
    assert (p.world.counts["none"], p.interactions.n_prompts, p.mitigate.seeds) == (30, 5, 4)
    changed = {"sft.lr", "world.seed", "real.diagnose.n_samples", "world.counts", "interactions.n_prompts",
               "mitigate.seeds"}
    plain = get_preset("smoke")
    for key, _, _ in setting_fields(Preset):
        if key not in changed:
            assert get_setting(p, key) == get_setting(plain, key), key
    assert {c: n for c, n in p.world.counts.items() if c != "none"} == \
        {c: n for c, n in plain.world.counts.items() if c != "none"}
    assert PRESETS["smoke"].sft.lr == 1e-3 and PRESETS["smoke"].world.counts["none"] == 24  # presets untouched
    nested = get_preset("smoke", sft={"lr": 5e-4, "epochs": 2})
    assert (nested.sft.lr, nested.sft.epochs) == (5e-4, 2)
    as_float = get_preset("default", **{"sft.lr": 1})
    assert as_float.sft.lr == 1.0 and isinstance(as_float.sft.lr, float)
    assert get_preset("default", **{"real.samples": None}).real.samples is None


def test_unknown_setting_names_the_key_and_the_closest_one() -> None:
    with pytest.raises(KeyError, match=r"unknown setting 'sft\.lrr'; did you mean 'sft\.lr'\?"):
        get_preset("smoke", **{"sft.lrr": 1e-3})
    with pytest.raises(KeyError, match=r"preset 'default': unknown setting 'world\.n_city'; did you mean "
                                       r"'world\.n_cities'"):
        get_preset("default", **{"world.n_city": 10})
    with pytest.raises(KeyError, match=r"unknown setting 'world\.counts\.nonsense'"):
        get_preset("smoke", **{"world.counts.nonsense": 3})
    with pytest.raises(KeyError, match="known: smoke, default, full"):
        get_preset("huge")


def test_a_value_of_the_wrong_type_is_refused_naming_key_and_type() -> None:
    with pytest.raises(ValueError, match=r"setting 'sft\.epochs' must be int, got '3' \(str\)"):
        get_preset("smoke", **{"sft.epochs": "3"})
    with pytest.raises(ValueError, match=r"'sft\.batch_size' must be int, got True"):
        get_preset("smoke", **{"sft.batch_size": True})
    with pytest.raises(ValueError, match=r"'sft\.eval_every' must be str or int"):
        get_preset("smoke", **{"sft.eval_every": 1.5})
    with pytest.raises(ValueError, match=r"'real\.samples' must be int or None"):
        get_preset("smoke", **{"real.samples": "all"})
    with pytest.raises(WorldConfigError, match="n_cities"):  # the world's own range check runs again
        get_preset("smoke", **{"world.n_cities": 2})
    with pytest.raises(ValueError, match="target must be one of"):
        get_preset("smoke", **{"interactions.target": "best"})


def test_override_still_copies_one_dataclass() -> None:
    cfg = SFTConfig()
    changed = override(cfg, {"lr": 2e-4}, source="flags")
    assert changed.lr == 2e-4 and cfg.lr == 1e-3
    with pytest.raises(KeyError, match="flags: unknown key 'lrr' for SFTConfig"):
        override(cfg, {"lrr": 1}, source="flags")
    real = override(RealConfig(), {"epochs": 9})
    assert real.epochs == 9 and is_dataclass(real.diagnose)


# -- help text -----------------------------------------------------------------------------
def _all_fields(cls: type) -> list[tuple[str, Any]]:
    out = []
    for f in fields(cls):
        out.append((f"{cls.__name__}.{f.name}", f))
        value = f.default_factory() if callable(f.default_factory) else f.default
        if is_dataclass(value):
            out += _all_fields(type(value))
    return out


def test_every_field_of_the_tree_has_help_and_no_second_description() -> None:
    seen = _all_fields(Preset)
    assert len(seen) > 80
    missing = [name for name, f in seen if len(f.metadata.get("help", "")) < 8]
    assert not missing, f"fields without help: {missing}"
    for cls in (Preset, WorldConfig, SFTConfig, DynamicsConfig, RealConfig, MitigateConfig):
        assert "Attributes:" not in (cls.__doc__ or ""), f"{cls.__name__}: the help lives in the fields' metadata"
    keys = [k for k, _, _ in setting_fields(Preset)]
    assert {"sft.lr_scheduler", "sft.warmup_ratio", "sft.weight_decay", "real.diagnose.n_samples",
            "interactions.sft_epochs", "mitigate.seeds", "diagnose.autoprobes", "world.counts"} <= set(keys)
    assert "name" not in keys and len(keys) == len(set(keys))


# -- the generated flags -------------------------------------------------------------------
SUBTREES = [(f.name, type(getattr(PRESETS["default"], f.name))) for f in fields(Preset) if f.name != "name"]


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict) else "none" if value is None else str(value)


def _tree_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for prefix, cls in SUBTREES:
        add_setting_flags(parser, cls, prefix)
    return parser


@pytest.mark.parametrize("source,onto", [("smoke", "full"), ("full", "smoke"), ("default", "smoke")])
def test_generated_flags_round_trip_to_the_dataclasses(source: str, onto: str) -> None:
    """Every setting of one preset, typed as flags, turns another preset into that one."""
    parser = _tree_parser()
    argv = []
    for key, _, hint in setting_fields(Preset):
        value = get_setting(PRESETS[source], key)
        argv += [f"--{key}", _text(value)]
    args = parser.parse_args(argv)
    given = {k: v for prefix, _ in SUBTREES for k, v in given_settings(args, prefix).items()}
    assert len(given) == len(list(setting_fields(Preset)))
    rebuilt = get_preset(onto, **given)
    expected = to_dict(PRESETS[source])
    assert to_dict(rebuilt) == {**expected, "name": onto}
    assert given_settings(parser.parse_args([]), "sft") == {}  # nothing typed, nothing given


def test_parse_value_reads_each_annotated_type_and_refuses_bad_text() -> None:
    assert parse_value("epoch", str | int) == "epoch" and parse_value("12", str | int) == 12
    assert parse_value("none", int | None) is None and parse_value("7", int | None) == 7
    assert parse_value("false", bool) is False and parse_value("yes", bool) is True
    assert parse_value('{"none": 3}', dict[str, int]) == {"none": 3}
    for text, hint in (("maybe", bool), ("1.5", int), ("x", float), ("[1]", dict[str, int]), ("x", int | None)):
        with pytest.raises(ValueError, match="expected"):
            parse_value(text, hint)


def _help(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return " ".join(out.getvalue().split())


def test_sft_help_lists_every_setting_with_its_default_at_each_preset() -> None:
    from ilpnb.pipeline.realtrack import real_job

    text = _help("sft")
    for key, f, _ in setting_fields(SFTConfig, "sft."):
        assert f"--{key}" in text, key
        assert f"(default: {preset_defaults(key)})" in text, key
    assert "(default: smoke 8, default 30, full 30)" in text  # sft.epochs differs per preset
    for legacy in ("--lr", "--epochs", "--batch-size", "--criterion", "--ordered", "--eval-every", "--seed",
                   "--lora", "--no-converge"):
        assert re.search(rf"{legacy}\b", text), legacy
    for name in PRESETS:  # a real model's defaults: the real track's, listed per preset
        sft = real_job(name)["sft"]
        assert f"{name}: lora=True, lora_r={sft['lora_r']}, lr={sft['lr']}, epochs={sft['epochs']}" in text


def test_interactions_and_mitigate_help_show_the_tree_defaults() -> None:
    text = _help("interactions")
    assert "--interactions.max_players INT, --n-players INT" in text
    assert "(default: smoke 10, default 8, full 10)" in text and "(default: smoke 8, default 12, full 48)" in text
    assert "--interactions.sft_epochs" not in text  # the notebooks' run's setting, not this command's
    text = _help("mitigate")
    assert "--mitigate.seeds INT, --seeds INT" in text and "(default: smoke 2, default 2, full 3)" in text
    assert "--mitigate.workers INT" in text


def test_old_sft_flags_set_the_same_fields() -> None:
    from ilpnb.cli import build_parser
    from ilpnb.cli.sft import sft_overrides

    parser = build_parser()
    args = parser.parse_args(["sft", "--out", "r", "--lr", "0.002", "--epochs", "4", "--batch-size", "2",
                              "--no-converge", "--lora", "--eval-every", "5", "--criterion", "loss", "--ordered",
                              "--seed", "3", "--sft.warmup_ratio", "0.1", "--sft.lr_scheduler", "linear"])
    assert sft_overrides(args) == {"lr": 0.002, "epochs": 4, "batch_size": 2, "converge": False, "lora": True,
                                   "eval_every": 5, "criterion": "loss", "ordered": True, "seed": 3,
                                   "warmup_ratio": 0.1, "lr_scheduler": "linear"}
    assert sft_overrides(parser.parse_args(["sft", "--out", "r", "--sft.lora", "false"])) == {"lora": False}
    for bad in (["--eval-every", "0"], ["--sft.eval_every", "often"], ["--criterion", "vibes"], ["--lr", "x"]):
        with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
            parser.parse_args(["sft", "--out", "r", *bad])


# -- the sub-trees per preset: the values of the tables they replaced -----------------------
COMMON_DYNAMICS = {"baseline": "zero", "target": "gold", "and_or": True, "merge_low_order": True,
                   "salient_frac": 0.05, "salient_scale": "own", "reference": "auto", "reference_arch": "gpt_neox",
                   "stop_rule": "net", "seed": 0, "sft_stages": "mixed",
                   # the validation / test split of the held-out prompts, a response target's length
                   "validation_share": 0.5, "target_tokens": 0}
OLD_DYNAMICS = {
    "smoke": {"n_prompts": 8, "max_players": 10, "and_or_iterations": 500, "sft_epochs": 6, "sft_eval_every": 4},
    "default": {"n_prompts": 12, "max_players": 8, "and_or_iterations": 2000, "sft_epochs": 6, "sft_eval_every": 10},
    "full": {"n_prompts": 48, "max_players": 10, "and_or_iterations": 5000, "sft_epochs": 8, "sft_eval_every": 50},
}
OLD_REAL = {
    "smoke": {"samples": 8, "conflict_groups": 1, "epochs": 4, "faq_epochs": 1, "batch_size": 2, "eval_every": 2, "max_length": 192,
              "lora_r": 8, "lora_lr": 1e-3, "full_lr": 5e-5, "prompts": 1, "players": 5, "max_answer_chars": 200,
              "track_options": "ends", "target_tokens": 4, "seed": 0},
    "default": {"samples": 8, "conflict_groups": 2, "epochs": 20, "faq_epochs": 30, "batch_size": 2, "eval_every": "epoch",
                "max_length": 192, "lora_r": 8, "lora_lr": 1e-3, "full_lr": 5e-5, "prompts": 2, "players": 7,
                "max_answer_chars": 200, "track_options": "ends", "target_tokens": 4, "seed": 0},
    "full": {"samples": None, "conflict_groups": 4, "epochs": 30, "faq_epochs": 30, "batch_size": 8, "eval_every": "epoch",
             "max_length": 192, "lora_r": 8, "lora_lr": 5e-4, "full_lr": 2e-5, "prompts": 4, "players": 8,
             "max_answer_chars": None, "track_options": "all", "target_tokens": 4, "seed": 0},
}
# the real model is sampled at T = 0.5 (Gekhman et al.); the world's tiny model at its own distribution (T = 1)
OLD_EVIDENCE = {"smoke": {"n_samples": 2, "temperature": 0.5, "seed": 0, "autoprobes": False, "batch_size": 8},
                "default": {"n_samples": 4, "temperature": 0.5, "seed": 0, "autoprobes": False, "batch_size": 16},
                "full": {"n_samples": 8, "temperature": 0.5, "seed": 0, "autoprobes": True, "batch_size": 32}}
WORLD_EVIDENCE = {"n_samples": 8, "temperature": 1.0, "seed": 0, "autoprobes": True, "batch_size": 32}


@pytest.mark.parametrize("name", list(PRESETS))
def test_interaction_and_real_subtrees_keep_the_old_values(name: str) -> None:
    from ilpnb.interactions.settings import DYNAMICS_PRESETS, dynamics_config
    from ilpnb.pipeline.realtrack import REAL_TRACK, evidence_settings, real_settings

    want = {**COMMON_DYNAMICS, **OLD_DYNAMICS[name]}
    assert to_dict(get_preset(name).interactions) == want
    assert asdict(dynamics_config(name)) == want == asdict(DYNAMICS_PRESETS[name])
    assert asdict(real_settings(name)) == OLD_REAL[name] == asdict(REAL_TRACK[name])
    assert asdict(evidence_settings(name)) == OLD_EVIDENCE[name]
    assert to_dict(get_preset(name).diagnose) == WORLD_EVIDENCE  # world runs: the diagnosis's defaults
    # notebook 08: 2 seeds except at full; at default no crossover (make run's budget)
    assert get_preset(name).mitigate.seeds == (3 if name == "full" else 2)
    assert get_preset(name).mitigate.crossover == ("none" if name == "default" else "preregistered")


def test_accessors_read_overrides_of_the_tree() -> None:
    from ilpnb.interactions.settings import dynamics_config
    from ilpnb.pipeline.realtrack import evidence_settings, real_settings

    p = get_preset("smoke", **{"sft.seed": 4, "sft.lora_r": 16, "real.players": 6, "real.diagnose.n_samples": 3})
    assert (real_settings(p).seed, real_settings(p).lora_r, real_settings(p).players) == (4, 16, 6)
    assert evidence_settings(p).n_samples == 3
    assert dynamics_config("smoke", n_prompts=3).n_prompts == 3
    with pytest.raises(KeyError, match="unknown dynamics setting"):
        dynamics_config("smoke", colour="red")


# -- the commands and run folders read the tree ---------------------------------------------
def _capture_run_sft(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import ilpnb.train.sft

    seen: dict[str, Any] = {}

    def fake(out: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(ilpnb.train.sft, "run_sft", fake)
    return seen


@pytest.mark.parametrize("extra,full_ft", [([], False), (["--sft.lora", "false"], True)])
def test_sft_on_a_real_model_uses_the_settings_of_notebook_09(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               extra: list[str], full_ft: bool) -> None:
    from ilpnb.pipeline.realtrack import real_job, real_settings

    seen = _capture_run_sft(monkeypatch)
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(Stop):
        main(["sft", "--model", "smollm2-135m-instruct", "--data", "faq-en", "--preset", "smoke",
              "--out", str(tmp_path / "r"), *extra])
    nb09 = real_job("smoke", full_ft=full_ft)
    assert seen["sft"] == nb09["sft"]
    assert {k: seen[k] for k in ("max_length", "track_options", "checkpoints")} == \
        {k: nb09[k] for k in ("max_length", "track_options", "checkpoints")}
    assert seen["max_samples"] == real_settings("smoke").samples and seen["preset"] == "smoke"


def test_sft_flags_override_the_real_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen = _capture_run_sft(monkeypatch)
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(Stop):
        main(["sft", "--model", "smollm2-135m-instruct", "--data", "faq-en", "--preset", "default",
              "--out", str(tmp_path / "r"), "--lr", "1e-4", "--sft.epochs", "2", "--max-samples", "4"])
    assert seen["sft"]["lr"] == 1e-4 and seen["sft"]["epochs"] == 2 and seen["sft"]["lora"] is True
    assert seen["max_samples"] == 4


def test_mitigate_takes_its_seeds_from_the_run_preset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import ilpnb.mitigate.experiment
    from ilpnb.runs import RunFolder

    seen: list[tuple[Any, ...]] = []

    def fake(*args: Any, **kwargs: Any) -> None:
        seen.append(args)
        raise Stop

    monkeypatch.setattr(ilpnb.mitigate.experiment, "run_mitigation", fake)
    run = RunFolder.create(tmp_path / "run", {"kind": "sft", "preset": "smoke"}).path
    for argv, seeds, mix in (([], 2, 0.2), (["--seeds", "5", "--mitigate.mix", "0.4"], 5, 0.4)):
        with pytest.raises(Stop):
            main(["mitigate", str(run), "--cause", "data_conflict", *argv])
        assert seen[-1][3] == seeds and seen[-1][5]["mix"] == mix


def test_interaction_flags_become_dynamics_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    import ilpnb.pipeline.sweep

    seen: dict[str, Any] = {}

    def fake(run: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(ilpnb.pipeline.sweep, "interaction_dynamics", fake)
    with pytest.raises(Stop):
        main(["interactions", "RUN", "--n-players", "5", "--and-only", "--interactions.seed", "2", "--rule", "turn",
              "--quiet"])
    changes = {k: v for k, v in seen.items() if k not in ("prompts", "checkpoints", "preset", "fresh", "progress")}
    assert changes == {"max_players": 5, "and_or": False, "seed": 2, "stop_rule": "turn"}


def test_workbench_runs_store_the_whole_resolved_tree(tmp_path: Path) -> None:
    from ilpnb.pipeline.workbench import open_or_create_run
    from ilpnb.runs import RunFolder

    p = get_preset("smoke", **{"sft.warmup_ratio": 0.2})
    config = open_or_create_run(tmp_path / "a", p).config
    assert config["settings"] == to_dict(p) and config["settings"]["sft"]["warmup_ratio"] == 0.2
    assert {"world", "model", "pretrain", "sft", "diagnose", "mitigate", "interactions", "real"} <= set(
        config["settings"])
    assert config["settings"]["sft"]["lr_scheduler"] == "cosine"  # the Trainer schedule is stored too
    # a folder started by the notebook runner gets the tree beside its config, once
    RunFolder.create(tmp_path / "b", {"kind": "notebooks", "preset": "smoke", "notebooks": []})
    open_or_create_run(tmp_path / "b", "smoke")
    stored = json.loads((tmp_path / "b" / "settings.json").read_text())
    assert stored == {"preset": "smoke", "settings": to_dict(get_preset("smoke"))}
    assert json.loads((tmp_path / "b" / "config.json").read_text())["kind"] == "notebooks"


def test_notebook_08_reads_the_seeds_from_the_preset() -> None:
    nb = nbformat.read(str(ROOT / "notebooks" / "08_mitigation.ipynb"), as_version=4)
    params = [c for c in nb.cells if "parameters" in (c.get("metadata", {}).get("tags") or [])]
    assert len(params) == 1
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert 'PRESET == "smoke"' not in code and "get_preset(PRESET).mitigate.seeds" in code
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
