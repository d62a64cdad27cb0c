"""Recipes: ordered rules that map tensor names to a quantization method."""

import fnmatch
import json
import os
import re

from .._array import describe
from ._methods import available_methods, check_params

RULE_KEYS = {"match", "method", "params", "candidates", "force"}
_SKIP_WORDS = re.compile(r"embed|norm|(^|[._/])ln|(^|[._/])wte($|[._/])|(^|[._/])wpe($|[._/])")


def default_skip(name, shape):
    """Why a tensor is left in floating point unless a rule forces it, or None."""
    if len(shape) < 2:
        return "1-D tensor" if len(shape) == 1 else "scalar"
    low = name.lower()
    last = re.split(r"[./]", low)[-1]
    if last == "bias" or last.endswith("_bias"):
        return "bias"
    if _SKIP_WORDS.search(low):
        return "embedding or normalisation"
    return None


def _is_literal(pattern):
    return not pattern.startswith("re:") and not any(ch in pattern for ch in "*?[")


class Rule:
    """One validated rule: a pattern and one method or a list of candidate methods."""

    def __init__(self, index, spec):
        where = f"recipe rule {index}"
        if not isinstance(spec, dict):
            raise TypeError(
                f"{where} must be a dict with 'match' and 'method', got {describe(spec)}"
            )
        unknown = set(spec) - RULE_KEYS
        if unknown:
            raise ValueError(
                f"{where} has unknown keys {sorted(unknown)}; expected some of {sorted(RULE_KEYS)}"
            )
        match = spec.get("match")
        if not isinstance(match, str) or not match:
            raise ValueError(
                f"{where} needs 'match', a non-empty glob or 're:' regex, got {match!r}"
            )
        self.index, self.match = index, match
        where = f"recipe rule {index} ({match!r})"
        if match.startswith("re:"):
            try:
                self._regex = re.compile(match[3:])
            except re.error as err:
                raise ValueError(f"{where}: invalid regular expression: {err}") from None
        else:
            self._regex = None
        force = spec.get("force", False)
        if not isinstance(force, bool):
            raise TypeError(f"{where}: 'force' must be true or false, got {force!r}")
        self.force = force or _is_literal(match)
        options = []
        if "method" in spec:
            options.append({"method": spec["method"], "params": spec.get("params", {})})
        elif "params" in spec:
            raise ValueError(f"{where} has 'params' but no 'method'")
        cands = spec.get("candidates")
        if cands is not None:
            if not isinstance(cands, list) or not cands:
                raise ValueError(f"{where}: 'candidates' must be a non-empty list, got {cands!r}")
            for c in cands:
                if not isinstance(c, dict) or set(c) - {"method", "params"} or "method" not in c:
                    raise ValueError(
                        f"{where}: each candidate must be {{'method': ..., 'params': {{...}}}}, "
                        f"got {c!r}"
                    )
        if not options and not cands:
            raise ValueError(f"{where} needs 'method' (or 'candidates')")
        self.method = self.params = None
        self.candidates = None
        for opt in options + list(cands or []):
            method = opt["method"]
            if not isinstance(method, str) or method not in available_methods():
                raise ValueError(
                    f"{where}: unknown method {method!r}; expected one of {available_methods()}"
                )
            try:
                params = check_params(method, opt.get("params", {}))
            except (TypeError, ValueError) as err:
                raise type(err)(f"{where}, method {method!r}: {err}") from None
            opt["params"] = params
        if options:
            self.method, self.params = options[0]["method"], options[0]["params"]
        if cands:
            self.candidates = [(c["method"], c["params"]) for c in cands]
            if self.method is not None and self.method == "skip":
                raise ValueError(f"{where}: a 'skip' rule cannot have candidates")
        self.spec = spec

    def matches(self, name):
        if self._regex is not None:
            return self._regex.fullmatch(name) is not None
        return fnmatch.fnmatchcase(name, self.match)

    def describe(self):
        return f"rule {self.index} ({self.match!r})"


class Plan:
    """What the recipe does to each tensor, and the names it could not place cleanly."""

    def __init__(self):
        self.rule = {}  # name -> Rule or None
        self.reason = {}  # name -> why it is kept in floating point (None if quantized)
        self.unmatched = []
        self.multiple = {}  # name -> list of rule indices


def load_recipe(recipe):
    """Rules from a list of dicts, a JSON string or a path to a JSON file."""
    if isinstance(recipe, (str, os.PathLike)):
        text = os.fspath(recipe)
        if not text.lstrip().startswith("["):
            try:
                with open(text, encoding="utf-8") as fh:
                    text = fh.read()
            except OSError as err:
                raise ValueError(f"cannot read recipe file {recipe!r}: {err}") from None
        try:
            recipe = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"recipe is not valid JSON: {err}") from None
    if isinstance(recipe, dict) and "rules" in recipe:
        recipe = recipe["rules"]
    if not isinstance(recipe, (list, tuple)):
        raise TypeError(
            f"recipe must be a list of rules (or a path to a JSON file of one), got "
            f"{describe(recipe)}"
        )
    if not recipe:
        raise ValueError("recipe must hold at least one rule")
    return [Rule(i, spec) for i, spec in enumerate(recipe)]


def plan(rules, shapes):
    """Place every tensor: first matching rule wins; default skips unless the rule forces."""
    p = Plan()
    for name, shape in shapes.items():
        hits = [r for r in rules if r.matches(name)]
        if len(hits) > 1:
            p.multiple[name] = [r.index for r in hits]
        if not hits:
            p.unmatched.append(name)
            p.rule[name] = None
            p.reason[name] = "no rule matches"
            continue
        rule = hits[0]
        p.rule[name] = rule
        why = None if rule.force else default_skip(name, shape)
        if rule.method == "skip" and rule.candidates is None:
            why = f"skipped by {rule.describe()}"
        p.reason[name] = why
    return p
