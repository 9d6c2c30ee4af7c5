"""The stub generator's rules, on zephyr's own nets (the snippets check what they mean)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from zephyr.typing.stubgen import MAX_OVERLOADS, flexible_names, generate

import zephyr.nets

NETS = Path("zephyr/nets.pyi")


def overloads(stub: str, name: str) -> list[tuple[str, str]]:
    """The top-level overloads of ``name``, one string each."""
    pattern = rf"^@overload\ndef {name}\((.*?)\) -> ([^\n]*): \.\.\.$"
    return [(m.group(1), m.group(2)) for m in re.finditer(pattern, stub, re.MULTILINE | re.DOTALL)]


def holes(signature: str) -> list[str]:
    """The parameters of one overload typed as holes, in order."""
    node = ast.parse(f"def f({signature}): ...").body[0]
    assert isinstance(node, ast.FunctionDef)
    arguments = node.args
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    found = [a.arg for a in every if a.annotation is not None and ast.unparse(a.annotation) == "PlaceholderType"]
    assert set(found) <= {a.arg for a in arguments.posonlyargs}  # holes are positional-only
    return found


def test_the_hole_forms_users_write_and_no_others() -> None:
    stub = generate(["zephyr.nets"])[NETS]
    linear = overloads(stub, "linear")
    assert linear[0][1] == 'Float[Array, "*batch out_dim"]'  # the real signature first
    assert "params: ParamsTree" in linear[0][0] and "PlaceholderType" not in linear[0][0]
    # linear(_, _, 256), linear(params, _, 256), linear(_, _, _): never linear(_, x, 256)
    assert [holes(signature) for signature, _ in linear[1:]] == [["params", "x"], ["x"], ["params", "x", "out_dim"]]
    assert [returns for _, returns in linear[1:]] == ["_Linear_params_x", "_Linear_x", "_Linear_params_x_out_dim"]
    # the inputs run up to the first hyperparameter: a key, a state, a cache, q/k/v are inputs
    forms = {name: [holes(s) for s, _ in overloads(stub, name) if "PlaceholderType" in s] for name in ("dropout", "batch_norm", "multi_head_attention", "gru_cell", "layer_norm", "dot_product_attention")}
    assert forms["dropout"] == [["params", "key", "x"], ["x"], ["params", "key", "x", "rate"]]
    assert forms["batch_norm"] == [["params", "state", "x"], ["x"], ["params", "state", "x", "is_training"]]
    assert forms["multi_head_attention"][0] == ["params", "q", "k", "v"]
    assert forms["gru_cell"][:2] == [["params", "carry", "x_t"], ["x_t"]]
    assert forms["layer_norm"] == [["params", "x"], ["x"]]  # no hyperparameter: forms 1 and 3 are one
    assert forms["dot_product_attention"] == [["q", "k", "v"], ["v"]]


def test_at_most_four_overloads_per_net() -> None:
    stub = generate(["zephyr.nets"])[NETS]
    counts = {name: len(overloads(stub, name)) for name in flexible_names(zephyr.nets)}
    assert max(counts.values()) <= MAX_OVERLOADS == 4, counts
    # A net written with @overloads keeps each signature, and the first form of each.
    rnn = overloads(stub, "rnn")
    assert len(rnn) == 4 and [r for _, r in rnn[2:]] == ["_Rnn_params_x", "_Rnn2_params_x"]
    assert stub.count("\n@overload\n") + stub.startswith("@overload") < 200


def test_returned_protocols_take_the_missing_arguments_only() -> None:
    stub = generate(["zephyr.nets"])[NETS]
    protocol = stub.split("class _Linear_params_x(Protocol):")[1].split("\nclass ")[0]
    assert "@overload" not in protocol and "PlaceholderType" not in protocol  # no holes again
    assert re.sub(r"\s+", " ", protocol.split('"""\n')[-1]).replace("( ", "(").replace(", )", ")") == (
        ' def __call__(self, params: ParamsTree, x: Float[Array, "*batch d_in"]) -> Float[Array, "*batch out_dim"]: ... '
    )


def test_aliases_are_their_function_without_the_fixed_keywords() -> None:
    stub = generate(["zephyr.nets"])[NETS]
    conv, conv_2d = overloads(stub, "conv"), overloads(stub, "conv_2d")
    transposed = overloads(stub, "conv_transpose_2d")
    for signature in (conv[0][0], conv_2d[0][0], transposed[0][0]):
        assert "num_spatial_dims" not in signature and "transpose" not in signature
    assert "feature_group_count" in conv_2d[0][0] and "feature_group_count" not in transposed[0][0]
    assert [r for _, r in conv_2d] == [r for _, r in conv] == [r for _, r in transposed]  # the same protocols
    assert stub.count("class _Conv_params_x(Protocol)") == 1


def test_params_and_state_typeddicts_are_shown_as_params() -> None:
    stub = generate(["zephyr.nets"])[NETS]
    (real, returns), *_ = overloads(stub, "batch_norm")
    assert "state: ParamsTree" in real and returns == 'tuple[Float[Array, "*shape"], ParamsTree]'


def test_output_is_deterministic() -> None:
    assert generate(["zephyr.nets"]) == generate(["zephyr.nets"])
