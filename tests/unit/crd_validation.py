"""Validate objects against a generated CRD the way the apiserver does: defaults, schema, then CEL.

A test aid, not a replacement for the apiserver (the cluster tests apply the same objects for real).
It implements the Kubernetes CEL library functions our rules use (quantity, isCIDR, split).
"""

from __future__ import annotations

import copy
import ipaddress
import re
from decimal import Decimal
from typing import Any

import celpy
import jsonschema
from celpy import celtypes

JsonSchema = dict[str, Any]

_SUFFIXES = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def parse_quantity(text: str) -> Decimal:
    match = re.fullmatch(r"([+-]?[0-9.]+)([a-zA-Z]*)", str(text))
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {text!r}")
    return Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2)])


class _Quantity(celtypes.StringType):
    pass


def _quantity(value: Any) -> _Quantity:
    parse_quantity(str(value))
    return _Quantity(str(value))


def _compare_to(left: Any, right: Any) -> celtypes.IntType:
    a, b = parse_quantity(str(left)), parse_quantity(str(right))
    return celtypes.IntType((a > b) - (a < b))


def _is_cidr(value: Any) -> celtypes.BoolType:
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType("/" in str(value))


def _split(value: Any, separator: Any) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(part) for part in str(value).split(str(separator))])


_FUNCTIONS = {"quantity": _quantity, "compareTo": _compare_to, "isCIDR": _is_cidr, "split": _split}
_ENV = celpy.Environment()


def openapi_schema(crd: dict[str, Any]) -> JsonSchema:
    schema: JsonSchema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def apply_defaults(schema: JsonSchema, value: Any) -> Any:
    """Kubernetes defaulting: fill absent properties that have a default, recursively."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def cel_errors(schema: JsonSchema, value: Any, old: Any, path: str) -> list[str]:
    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        uses_old = "oldSelf" in rule["rule"]
        if uses_old and old is None:
            continue  # transition rules only run on updates where the old value exists
        activation = {"self": celpy.json_to_cel(value)}
        if uses_old:
            activation["oldSelf"] = celpy.json_to_cel(old)
        program = _ENV.program(_ENV.compile(rule["rule"]), functions=_FUNCTIONS)
        result = program.evaluate(activation)
        if isinstance(result, Exception) or not bool(result):
            errors.append(f"{path}: {rule['message']}")
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name in value:
                old_child = old.get(name) if isinstance(old, dict) else None
                errors += cel_errors(sub, value[name], old_child, f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            # Kubernetes correlates list items for transition rules only in list-type=map lists; by index is
            # close enough for our rules, which compare whole lists.
            old_item = old[index] if isinstance(old, list) and index < len(old) else None
            errors += cel_errors(schema["items"], item, old_item, f"{path}[{index}]")
    return errors


def validate(crd: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Every error the apiserver would report for creating `obj` (or updating `old` to `obj`)."""
    schema = openapi_schema(crd)
    obj = apply_defaults(schema, copy.deepcopy(obj))
    if old is not None:
        old = apply_defaults(schema, copy.deepcopy(old))
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)]
    if errors:
        return errors
    return cel_errors(schema, obj, old, "<root>")
