"""docs/HYPERPARAMETERS.md: a table of every key, generated from the declarations in
zoo/schema/keys.py. Regenerate with `python -m zoo.config.key_table > docs/HYPERPARAMETERS.md`."""

from __future__ import annotations

from zoo.algorithms import registry
from zoo.schema.fields import Field
from zoo.schema.help import declarations
from zoo.schema.keys import SCHEMAS

REGENERATE = "python -m zoo.config.key_table > docs/HYPERPARAMETERS.md"

_HEADER = f"""\
# Hyperparameters

Every key zoo accepts in a hyperparameter file, `--set KEY=VALUE` or `config.yml`, generated
from the declarations in `zoo/schema/keys.py` (`{REGENERATE}`; a test checks it is up to date).

Defaults: toolkit keys take the default shown, then `hyperparams/<algo>.yml` may set another
(its `default`, `atari` or `atari_ram` and env sections, see docs/guide/hyperparameters.md); algorithm keys take
the algorithm's constructor default shown, then the same files. `policy_kwargs.X` is entry X of
the `policy_kwargs` mapping.

| key | algorithms | accepts | default | flag | help |
| --- | --- | --- | --- | --- | --- |
"""


def markdown_table() -> str:
    rows = []
    for key, spec, algos in declarations():
        rows.append(_row(key, spec, algos))
        rows.extend(
            _row(f"{key}.{entry}", entry_spec, algos)
            for entry, entry_spec in spec.check.entries.items()
        )
    return _HEADER + "".join(rows)


def _row(key: str, spec: Field, algos: tuple[str, ...]) -> str:
    flag = ", ".join(f"`{option}`" for option in spec.flag.options) if spec.flag else ""
    renamed = f" (formerly {', '.join(spec.renamed_from)})" if spec.renamed_from else ""
    cells = [
        f"`{key}`",
        ", ".join(algos) if algos else "all",
        spec.check.accepts,
        spec.default_words() or _constructor_defaults(key, algos or tuple(SCHEMAS)),
        flag,
        spec.help + renamed,
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"


def _constructor_defaults(key: str, algos: tuple[str, ...]) -> str:
    """The algorithms' constructor defaults of `key`: one value, or one per algo."""
    values = {
        algo: registry.constructor_defaults(registry.ALGORITHMS[algo]).get(key, "")
        for algo in algos
    }
    shown = {algo: _text(value) for algo, value in values.items()}
    if len(set(shown.values())) == 1:
        return next(iter(shown.values()))
    return "; ".join(f"{algo}: {text}" for algo, text in shown.items())


def _text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value == "" else str(value)


if __name__ == "__main__":
    print(markdown_table(), end="")
