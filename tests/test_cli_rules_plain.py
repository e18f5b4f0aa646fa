"""``quantdoctor rules`` reads the matrix's plain data: its JSON is the models' JSON.

The command lists every rule without building a pydantic model of each; what it prints
must stay what ``Rule.model_dump(mode="json", exclude_none=True)`` printed.
"""

from __future__ import annotations

from quantdoctor.cli.rules import rule_json
from quantdoctor.rules.matrix import load_matrix


def _model_json(rule: object) -> dict[str, object]:
    data: dict[str, object] = rule.model_dump(mode="json", exclude_none=True)  # type: ignore[attr-defined]
    data["source"] = rule.sources  # type: ignore[attr-defined]
    data["select"] = {k: list(v) for k, v in data["select"].items() if v}  # type: ignore[attr-defined]
    return data


def test_every_rule_prints_as_its_model_does() -> None:
    matrix = load_matrix(defaults=False)
    assert len(matrix.rule_data) == len(matrix.rules) > 100
    for plain, model in zip(matrix.rule_data, matrix.rules, strict=True):
        assert rule_json(plain) == _model_json(model), plain["id"]
        assert rule_json(model) == _model_json(model), plain["id"]


def test_an_overlay_rule_with_examples_and_nulls_prints_as_its_model_does() -> None:
    overlay = {
        "rules": [
            {
                "id": "site.no-torch.note",
                "severity": "warn",
                "message": "no torch here",
                "source": ["site wiki", "our runs"],
                "when": {"fact": "backend", "absent": True},
                "examples": [{"env": {"backend": None}, "plan": {}, "status": "warn"}],
            }
        ]
    }
    matrix = load_matrix(extra=overlay, defaults=False)
    plain = next(r for r in matrix.rule_data if r["id"] == "site.no-torch.note")
    model = matrix.rule("site.no-torch.note")
    assert rule_json(plain) == _model_json(model)
    assert rule_json(plain)["examples"][0]["env"] == {"backend": None}
