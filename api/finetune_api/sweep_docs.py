"""The FineTuneSweep part of docs/api.md, rendered from the same schema as its CRD.

Like schedule_docs.py: spec.template is a FineTuneJob spec documented at the top of the page, so it
is not expanded again. The user guide is docs/sweeps.md.
"""

from typing import Any

from finetune_api.docs import _section
from finetune_api.sweep import SWEEP_KIND, SWEEP_SHORT_NAMES
from finetune_api.sweep_crd import SWEEP_PRINTER_COLUMNS, finetunesweep_schema

INTRO = f"""
# The FineTuneSweep API (`finetune.dev/v1alpha1`)

A `{SWEEP_KIND}` (short name `{SWEEP_SHORT_NAMES[0]}`) searches hyperparameters: each trial is a
FineTuneJob made from `spec.template` with the parameters substituted, chosen by an Optuna sampler
and stopped early by an Optuna pruner. How to choose an algorithm and a pruner, with a worked
example: [sweeps.md](sweeps.md). `spec.template` is a whole FineTuneJob spec (the tables above).
"""


def _without_template(spec: dict[str, Any]) -> dict[str, Any]:
    template = spec["properties"]["template"]
    short = {k: v for k, v in template.items() if k not in ("properties", "required")}
    return {**spec, "properties": {**spec["properties"], "template": {**short, "type": "object"}}}


def render_sweep_markdown() -> str:
    """The FineTuneSweep section appended to docs/api.md."""
    schema = finetunesweep_schema()
    spec, status = schema["properties"]["spec"], schema["properties"]["status"]
    lines = [INTRO]
    lines += _section("FineTuneSweep spec", _without_template(spec), "spec")
    lines += _section("FineTuneSweep status", status, "status")
    lines += ["## `kubectl get ftsweep` columns", "", "| column | from |", "|---|---|"]
    lines += [f"| {c['name']} | `{c['jsonPath']}` |" for c in SWEEP_PRINTER_COLUMNS]
    return "\n".join(lines).rstrip("\n") + "\n"
