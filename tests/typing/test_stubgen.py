"""The stub generator's rules, on zephyr's own nets (the snippets check what they mean)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from zephyr.typing.stubgen import generate

NETS = Path("zephyr/nets.pyi")


def overloads(stub: str, name: str) -> list[tuple[str, str]]:
    """The top-level overloads of ``name``, one string each."""
    pattern = rf"^@overload\ndef {name}\((.*?)\) -> ([^\n]*): \.\.\.$"
    return [(m.group(1), m.group(2)) for m in re.finditer(pattern, stub, re.MULTILINE | re.DOTALL)]


def test_one_overload_per_set_of_holes_among_the_leading_required_parameters() -> None:
    stub = generate(["zephyr.nets"])[NETS]
    linear = overloads(stub, "linear")
    assert len(linear) == 2**3  # params, x, out_dim; use_bias has a default
    assert linear[0][1] == 'Float[Array, "*batch out_dim"]'  # the real signature first
    assert "params: Params" in linear[0][0] and "PlaceholderType" not in linear[0][0]
    assert len(re.findall(r"^class _Linear_\w+\(Protocol\)", stub, re.MULTILINE)) == 2**3 - 1
    # At most 4 holeable parameters: num_heads, the fifth, is not one.
    assert len(overloads(stub, "multi_head_attention")) == 1 + (2**4 - 1)
    # A net written with @overloads keeps each, and gets holes for each.
    assert len(overloads(stub, "rnn")) == 2 + 2 * (2**3 - 1)


def test_holes_are_positional_only_and_options_never_holes() -> None:
    stub = generate(["zephyr.nets"])[NETS]
    for signature, returns in overloads(stub, "linear")[1:]:
        node = ast.parse(f"def f({signature}): ...").body[0]
        assert isinstance(node, ast.FunctionDef)
        arguments = node.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        holes = [a.arg for a in every if a.annotation is not None and ast.unparse(a.annotation) == "PlaceholderType"]
        assert holes and set(holes) <= {a.arg for a in arguments.posonlyargs}
        assert set(holes) <= {"params", "x", "out_dim"}
        assert returns == "_Linear_" + "_".join(holes)
    protocol = stub.split("class _Linear_params_x(Protocol):")[1].split("\nclass ")[0]
    first = re.sub(r"\s+", " ", protocol.split("@overload")[1])
    assert first.replace("( ", "(").replace(", )", ")") == (
        ' def __call__(self, params: Params, x: Float[Array, "*batch d_in"]) -> Float[Array, "*batch out_dim"]: ... '
    )


def test_params_and_state_typeddicts_are_shown_as_params() -> None:
    stub = generate(["zephyr.nets"])[NETS]
    (real, returns), *_ = overloads(stub, "batch_norm")
    assert "state: Params" in real and returns == 'tuple[Float[Array, "*shape"], Params]'


def test_output_is_deterministic_and_max_holes_is_honoured() -> None:
    assert generate(["zephyr.nets"]) == generate(["zephyr.nets"])
    small = generate(["zephyr.nets"], max_holes=1)[NETS]
    assert len(overloads(small, "linear")) == 2
