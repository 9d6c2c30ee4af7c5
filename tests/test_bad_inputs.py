# Every case calls a public function with a value its annotation refuses: the static
# checkers would (rightly) reject these lines, and the run time is what is under test.
# mypy: disable-error-code="arg-type, call-overload, dict-item, list-item, misc, index"
# pyright: reportArgumentType=false, reportCallIssue=false, reportIndexIssue=false
"""Bad inputs, one line each: what is called, the exception it must raise, and its message.

Each case names the function, the argument (or the parameter path), what was expected and
the value given (jaxtyping's ``test_messages.py`` style). Nets owned elsewhere contribute
the cases that already give a clear message.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zephyr import abstract_trace, checkpoint, flexible, nets, sharding, stack, tags, trace, trace_with_state, validate
from zephyr.functools.composition import chain, skip, thread_key, thread_params
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import checking

K = jax.random.key(0)
X = jnp.ones((2, 4))
SEQ = jnp.ones((2, 5, 4))  # (batch, time, features)
IMG = jnp.ones((1, 6, 6, 3))
IDS = jnp.ones((2, 5), jnp.int32)


def _params(f: Callable[..., Any], *args: Any) -> Any:
    return trace(f, K, *args)


def _mlp_params() -> Any:
    return _params(nets.mlp(_, _, [8, 3]), X)


def _drop(tree: Any, *path: Any) -> Any:
    """``tree`` with the leaf at ``path`` removed (a copy)."""
    if len(path) == 1:
        return {k: v for k, v in tree.items() if k != path[0]}
    return {k: (_drop(v, *path[1:]) if k == path[0] else v) for k, v in tree.items()}


@flexible
def _model(params: Any, x: Any) -> Any:
    return nets.mlp(params["encoder"], x, [8, 3])


def _int_params_mlp() -> Any:
    params = jax.tree.map(lambda a: a.astype(jnp.int32), _mlp_params())
    with checking(True):
        return nets.mlp(params, X, [8, 3])


def _empty_batch_norm() -> Any:
    params, state = trace_with_state(nets.batch_norm(_, _, _, True), K, X)
    return nets.batch_norm(params, state, jnp.ones((0, 4)), True)


def _unchecked(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``f(*args, **kwargs)`` with run-time checking off: zephyr's own checks, not jaxtyping's."""
    with checking(False):
        return f(*args, **kwargs)


def _checked(f: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with checking(True):
            return f()

    return run


def _saved() -> str:
    directory = tempfile.mkdtemp()
    checkpoint.save(directory, {"w": X}, step=1)
    return directory


CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    # trace
    ("trace int key", lambda: trace(nets.linear(_, _, 3), 0, X), TypeError, r"trace: `key` must be a JAX random key.*got int 0"),
    ("trace float key", lambda: trace(nets.linear(_, _, 3), 1.5, X), TypeError, r"trace: `key` must be a JAX random key.*got float 1.5"),
    ("trace key array", lambda: trace(nets.linear(_, _, 3), jax.random.split(K, 2), X), TypeError, r"trace: `key` must be a JAX random key.*got PRNGKeyArray of shape \(2,\)"),
    ("trace hole unfilled", lambda: trace(nets.linear(_, _, _), K, X), TypeError, r"trace: `linear` returned a function instead of its output"),
    ("trace hole as arg", lambda: trace(nets.linear, K, X, _), TypeError, r"trace: an argument of `linear` is the placeholder `_`"),
    ("trace_with_state key", lambda: trace_with_state(nets.batch_norm(_, _, _, True), "k", X), TypeError, r"trace_with_state: `key` must be a JAX random key.*got str 'k'"),
    ("trace huge leaf", lambda: trace(lambda p, x: validate(p["huge"], (16, 2**38)), K, X), ValueError, r"trace: `params\['huge'\]` of shape \(16, 274877906944\) and dtype float32 needs 16384.0 GiB, more than one device holds"),
    ("trace undeclared used", lambda: trace(lambda p, x: x @ p["w"], K, X), TypeError, r"`params\['w'\]` is used as an array before it is declared"),
    ("trace iterate node", lambda: trace(lambda p, x: list(p), K, X), TypeError, r"`params` cannot be iterated during trace"),
    ("trace attr node", lambda: trace(lambda p, x: p["w"].shape[0], K, X), AttributeError, r"`params\['w'\]` has no `.shape`"),
    ("trace subtree below leaf", lambda: trace(lambda p, x: (validate(p["w"], (2,)), validate(p["w"]["b"], (2,))), K, X), TypeError, r"`params\['w'\]` is declared as a leaf \(an array of shape \(2,\)\) and then indexed like a subtree"),
    ("apply extra leaf checked", lambda: _checked(lambda: nets.linear({**_params(nets.linear(_, _, 3), X), "gain": X}, X, 3))(), ValueError, r"`linear`: `params\['gain'\]` is not in the params annotation `LinearParams` \(its keys: 'weights', 'bias'; extra key at `params`: 'gain'\)"),
    ("apply leaf as subtree", lambda: _unchecked(_model, {"encoder": X}, X), TypeError, r"`mlp`: its params `params\['encoder'\]` is a leaf \(an array of shape \(2, 4\)\), and `mlp` indexes it like a subtree \(JAX does not support string indexing; got idx='weights'\): one"),
    ("validate shape list float", lambda: trace(lambda p, x: validate(p["w"], [3, 2.5]), K, X), TypeError, r"validate of `params\['w'\]`: `shape` must be a tuple of ints, got \[3, 2.5\] \(item 1 is float 2.5"),
    ("trace leaf below leaf", lambda: trace(lambda p, x: (validate(p["w"]["b"], (2,)), validate(p["w"], (2,))), K, X), ValueError, r"`params\['w'\]` cannot be declared as a leaf: `params\['w'\]\['b'\]` is declared below it \(a subtree\)"),
    ("trace leaf indexed as subtree", lambda: trace(lambda p, x: (validate(p["w"], (2,)), validate(p["w"]["b"], (2,))), K, X), TypeError, r"(?s)string indexing.*A declared parameter \(an array\) was indexed like a subtree"),
    ("trace declared twice", lambda: trace(lambda p, x: (validate(p["w"], (2,)), validate(p["w"], (3,))), K, X), ValueError, r"`params\['w'\]`: declared twice with different shapes: first \(2,\) float32, then \(3,\) float32"),
    ("trace value control flow", lambda: trace(lambda p, x: 1 if x.sum() > 0 else 0, K, X), jax.errors.TracerBoolConversionError, r"Attempted boolean conversion"),
    # validate
    ("validate negative size", lambda: trace(lambda p, x: validate(p["w"], (-3, 2)), K, X), ValueError, r"validate of `params\['w'\]`: `shape` must be sizes >= 0, got \(-3, 2\)"),
    ("validate bad dtype", lambda: trace(lambda p, x: validate(p["w"], (3, 2), dtype="notadtype"), K, X), TypeError, r"validate of `params\['w'\]`: `dtype` must be a dtype such as jnp.float32 or 'bfloat16', got 'notadtype'"),
    ("validate tags int", lambda: trace(lambda p, x: validate(p["w"], (3,), tags=5), K, X), TypeError, r"validate of `params\['w'\]`: `tags` must be a str or an iterable of str, got 5"),
    ("validate tags of ints", lambda: trace(lambda p, x: validate(p["w"], (3,), tags=[1]), K, X), TypeError, r"validate of `params\['w'\]`: `tags` must be a str or an iterable of str, got \[1\]"),
    ("validate initializer not callable", lambda: trace(lambda p, x: validate(p["w"], (3,), 0.1), K, X), TypeError, r"validate of `params\['w'\]`: `initializer` must be a function \(key, shape, dtype\) -> Array, got 0.1"),
    ("validate shape float", lambda: trace(lambda p, x: validate(p["w"], (3.0, 2)), K, X), TypeError, r"validate of `params\['w'\]`: `shape` must be a tuple of ints, got \(3.0, 2\) \(item 0 is float 3.0; sizes computed with / are floats: use //\)"),
    ("validate shape None", lambda: trace(lambda p, x: validate(p["w"], None), K, X), TypeError, r"validate: `shape` must be a tuple of ints.*got None"),
    ("validate dims outside flexible", lambda: trace(lambda p, x: validate(p["w"], "d_in d_out"), K, X), TypeError, r"(?s)validate: the shape 'd_in d_out' names dims.*no @flexible function is running"),
    ("validate wrong shape applied", lambda: validate(jnp.ones((3, 2)), (2, 3)), ValueError, r"expected shape \(2, 3\), got \(3, 2\)"),
    ("validate wrong dtype applied", lambda: validate(jnp.ones((3,)), (3,), dtype=jnp.int32), ValueError, r"expected dtype int32, got float32"),
    ("validate bad dtype applied", lambda: validate(jnp.ones((3,)), (3,), dtype="notadtype"), TypeError, r"validate: `dtype` must be a dtype.*got 'notadtype'"),
    ("validate not an array", lambda: validate("w", (3,)), TypeError, r"validate: expected an array or `params\[...\]`, got str"),
    ("validate initializer wrong shape", lambda: trace(lambda p, x: validate(p["w"], (3,), lambda k, s, d: jnp.zeros((2,))), K, X), ValueError, r"`params\['w'\]`: the initializer .* returned shape \(2,\), expected \(3,\)"),
    # apply-time params
    ("apply missing layer", lambda: _unchecked(nets.mlp,{0: _mlp_params()[0]}, X, [8, 3]), KeyError, r"`params\[1\]` is missing \(asked for by `mlp`; keys at `params`: 0\): the params do not match this model"),
    ("apply missing leaf", lambda: _unchecked(nets.mlp,_drop(_mlp_params(), 1, "bias"), X, [8, 3]), KeyError, r"`params\[1\]\['bias'\]` is missing \(asked for by `linear` in `mlp`; keys at `params\[1\]`: 'weights'\)"),
    ("apply other model", lambda: _unchecked(_model,{"decoder": _mlp_params()}, X), KeyError, r"`params\['encoder'\]` is missing \(asked for by `_model`; keys at `params`: 'decoder'\)"),
    ("apply nested missing", lambda: _unchecked(_model,{"encoder": _drop(_mlp_params(), 0, "weights")}, X), KeyError, r"`params\['encoder'\]\[0\]\['weights'\]` is missing \(asked for by `linear` in `_model`; keys at `params\['encoder'\]\[0\]`: 'bias'\)"),
    ("apply missing leaf checked", lambda: nets.mlp(_drop(_mlp_params(), 1, "bias"), X, [8, 3]), KeyError, r"`params\[1\]\['bias'\]` is missing \(asked for by `linear` in `mlp`; keys at `params\[1\]`: 'weights'\)"),
    ("apply wrong shape", lambda: nets.linear(_params(nets.linear(_, _, 3), X), jnp.ones((2, 5)), 3), ValueError, r"`linear`: `params\['weights'\]`: expected shape \(5, 3\) \('d_in out_dim'\), got \(4, 3\)"),
    ("apply int params checked", _int_params_mlp, TypeError, r"linear: `params\['weights'\]` must be a float array \(its annotation is Float\), got dtype int32"),
    # linear family
    ("linear out_dim float", lambda: trace(nets.linear(_, _, 2.5), K, X), TypeError, r"linear: `out_dim` must be a positive int, got 2.5"),
    ("linear out_dim str", lambda: trace(nets.linear(_, _, "16"), K, X), TypeError, r"linear: `out_dim` must be a positive int, got '16'"),
    ("linear out_dim None", lambda: trace(nets.linear(_, _, None), K, X), TypeError, r"linear: `out_dim` must be a positive int, got None"),
    ("linear out_dim bool", lambda: trace(nets.linear(_, _, True), K, X), TypeError, r"linear: `out_dim` must be a positive int, got True"),
    ("linear out_dim negative", lambda: trace(nets.linear(_, _, -4), K, X), ValueError, r"linear: `out_dim` must be a positive int, got -4"),
    ("linear out_dim zero", lambda: trace(nets.linear(_, _, 0), K, X), ValueError, r"linear: `out_dim` must be a positive int, got 0"),
    ("linear use_bias str", lambda: trace(nets.linear(_, _, 3, "no"), K, X), TypeError, r"linear: `use_bias` must be True or False, got 'no'"),
    ("linear use_bias int", lambda: trace(nets.linear(_, _, 3, 1), K, X), TypeError, r"linear: `use_bias` must be True or False, got 1"),
    ("linear initializer", lambda: trace(nets.linear(_, _, 3, weights_initializer="normal"), K, X), TypeError, r"linear: `weights_initializer` must be a function, got 'normal'"),
    ("linear dtype", lambda: trace(nets.linear(_, _, 3, dtype="float33"), K, X), TypeError, r"linear: `dtype` must be a dtype such as jnp.float32 or 'bfloat16', got 'float33'"),
    ("linear param_dtype", lambda: trace(nets.linear(_, _, 3, param_dtype=7), K, X), TypeError, r"linear: `param_dtype` must be a dtype.*got 7"),
    ("linear scalar x", lambda: trace(nets.linear(_, _, 3), K, jnp.ones(())), ValueError, r"`linear` argument `x`: expected at least 1 axes, got shape \(\)"),
    ("linear checked out_dim", _checked(lambda: nets.linear({}, X, -1)), ValueError, r"linear: `out_dim` must be a positive int, got -1"),
    ("branch_linear zero", lambda: trace(nets.branch_linear(_, _, 0), K, X), ValueError, r"branch_linear: `num_branches` must be a positive int, got 0"),
    ("mlp out_dims str", lambda: trace(nets.mlp(_, _, "16"), K, X), TypeError, r"mlp: `out_dims` must be a sequence of positive ints, got '16'"),
    ("mlp out_dims int", lambda: trace(nets.mlp(_, _, 16), K, X), TypeError, r"mlp: `out_dims` must be a sequence of positive ints, got 16"),
    ("mlp out_dims empty", lambda: trace(nets.mlp(_, _, []), K, X), ValueError, r"mlp: `out_dims` must be a non-empty sequence of positive ints, got \[\]"),
    ("mlp out_dims float", lambda: trace(nets.mlp(_, _, [8, 2.5]), K, X), TypeError, r"mlp: `out_dims` must be a sequence of positive ints, got \[8, 2.5\]"),
    ("mlp out_dims negative", lambda: trace(nets.mlp(_, _, [8, -1]), K, X), ValueError, r"mlp: `out_dims` must be a sequence of positive ints, got \[8, -1\]"),
    ("mlp activation", lambda: trace(nets.mlp(_, _, [8, 3], "relu"), K, X), TypeError, r"mlp: `activation` must be a function, got 'relu'"),
    ("projections use_bias", lambda: nets.projections(use_bias=cast(bool, "yes")), TypeError, r"projections: `use_bias` must be True or False, got 'yes'"),
    ("mlp projections", lambda: trace(nets.mlp(_, _, [8, 3], projections=cast(nets.Projections, False)), K, X), TypeError, r"mlp: `projections` must come from nets.projections\(...\), got bool"),
    # norms
    ("batch_norm empty batch", _empty_batch_norm, ValueError, r"batch_norm: `x` of shape \(0, 4\) has no elements to take statistics over with is_training=True"),
    ("batch_norm is_training str", lambda: trace_with_state(nets.batch_norm(_, _, _, "yes"), K, X), TypeError, r"batch_norm: `is_training` must be True or False, got 'yes'"),
    ("batch_norm momentum", lambda: trace_with_state(nets.batch_norm(_, _, _, True, momentum=1.5), K, X), ValueError, r"batch_norm: `momentum` must be in \[0, 1\], got 1.5"),
    ("batch_norm every axis", lambda: trace_with_state(nets.batch_norm(_, _, _, True, axis=(0, 1)), K, X), ValueError, r"batch_norm: `axis` \(0, 1\) names every axis of `x`"),
    # dropout
    ("dropout rate", lambda: _unchecked(nets.dropout, {}, K, X, 1.5), ValueError, r"dropout: `rate` must be a number in \[0, 1\], got 1.5"),
    ("dropout rate str", lambda: _unchecked(nets.dropout, {}, K, X, "0.5"), ValueError, r"dropout: `rate` must be a number in \[0, 1\], got '0.5'"),
    ("dropout rate checked", lambda: nets.dropout({}, K, X, "0.5"), TypeError, r"(?s)parameter 'rate'.*Actual value: '0.5'"),
    ("dropout key", lambda: _unchecked(nets.dropout, {}, 0, X, 0.5), TypeError, r"dropout: `key` must be a JAX random key.*got int 0"),
    ("dropout deterministic", lambda: _unchecked(nets.dropout, {}, K, X, 0.5, deterministic="yes"), TypeError, r"dropout: `deterministic` must be True or False, got 'yes'"),
    # composition
    ("chain of one function", lambda: chain(nets.relu), TypeError, r"chain: `fs` must be a list of functions, got .* \(write chain\(\[f, g\]\), not chain\(f\)\)"),
    ("chain int", lambda: chain(5), TypeError, r"chain: `fs` must be a list of functions, got 5"),
    ("chain element", lambda: chain([jnp.tanh, 3]), TypeError, r"chain: element 1 is int, not a function"),
    ("skip not callable", lambda: skip(3), TypeError, r"skip: expected a function, got int"),
    ("skip shape change", lambda: skip(lambda x: x[:1])(X), ValueError, r"skip: the wrapped function maps shape \(2, 4\) to \(1, 4\)"),
    ("thread_params missing", lambda: thread_params([jnp.add] * 3, {0: 1, 1: 2}), KeyError, r"thread_params: 3 functions need params\[0\] to params\[2\]; missing \[2\], the params have keys \[0, 1\]"),
    # norms (more)
    ("layer_norm eps", lambda: trace(nets.layer_norm(_, _, eps=-1.0), K, X), ValueError, r"layer_norm: `eps` must be a finite number >= 0, got -1.0"),
    ("layer_norm scale_initializer", lambda: trace(nets.layer_norm(_, _, scale_initializer="no"), K, X), TypeError, r"layer_norm: `scale_initializer` must be an initializer \(key, shape, dtype\) -> Array, or None for no scale, got 'no'"),
    ("layer_norm axis", lambda: trace(nets.layer_norm(_, _, 5), K, X), ValueError, r"layer_norm: `axis` 5 is out of range for `x` of rank 2"),
    ("layer_norm axis str", lambda: trace(nets.layer_norm(_, _, "x"), K, X), TypeError, r"layer_norm: `axis` must be an int or a sequence of ints, got 'x'"),
    ("rms_norm axis", lambda: trace(nets.rms_norm(_, _, 3), K, X), ValueError, r"rms_norm: `axis` 3 is out of range for `x` of rank 2"),
    ("rms_norm scale_initializer", lambda: trace(nets.rms_norm(_, _, scale_initializer=1), K, X), TypeError, r"rms_norm: `scale_initializer` must be an initializer \(key, shape, dtype\) -> Array, or None for no scale, got 1"),
    ("group_norm groups", lambda: trace(nets.group_norm(_, _, 0), K, IMG), ValueError, r"group_norm: `num_groups` must divide the 3 channels of `x`, got 0"),
    ("group_norm eps", lambda: trace(nets.group_norm(_, _, 3, eps="1e-5"), K, IMG), ValueError, r"group_norm: `eps` must be a finite number >= 0, got '1e-5'"),
    ("batch_norm offset_initializer", lambda: trace_with_state(nets.batch_norm(_, _, _, True, offset_initializer="no"), K, X), TypeError, r"batch_norm: `offset_initializer` must be an initializer \(key, shape, dtype\) -> Array, or None for no offset, got 'no'"),
    # conv (owned elsewhere: the clear cases)
    ("conv_2d out 0", lambda: trace(nets.conv_2d(_, _, 0, 3), K, IMG), ValueError, r"conv: `out_channels` must be a positive int, got 0"),
    ("conv_2d out float", lambda: trace(nets.conv_2d(_, _, 2.5, 3), K, IMG), ValueError, r"conv: `out_channels` must be a positive int, got 2.5"),
    ("conv_2d kernel 0", lambda: trace(nets.conv_2d(_, _, 4, 0), K, IMG), ValueError, r"conv: `kernel_size` must be a positive int or 2 positive ints, got 0"),
    ("conv_2d stride", lambda: trace(nets.conv_2d(_, _, 4, 3, (1, 1, 1)), K, IMG), ValueError, r"conv: `stride` must be a positive int or 2 positive ints, got \(1, 1, 1\)"),
    ("conv_2d padding", lambda: trace(nets.conv_2d(_, _, 4, 3, 1, "BOGUS"), K, IMG), ValueError, r"conv: `padding` must be 'SAME', 'VALID' or 2 \(low, high\) pairs of ints, got 'BOGUS'"),
    ("conv_2d rank", lambda: trace(nets.conv_2d(_, _, 4, 3), K, X), ValueError, r"conv: `x` must have at least 3 axes .*got shape \(2, 4\)"),
    ("conv_2d groups", lambda: trace(nets.conv_2d(_, _, 4, 3, feature_group_count=2), K, IMG), ValueError, r"conv: `feature_group_count` must divide both the 3 input channels of `x` and `out_channels` 4, got 2"),
    ("conv_1d out negative", lambda: trace(nets.conv_1d(_, _, -1, 3), K, SEQ), ValueError, r"conv: `out_channels` must be a positive int, got -1"),
    ("conv_transpose_2d kernel", lambda: trace(nets.conv_transpose_2d(_, _, 4, 0), K, IMG), ValueError, r"conv_transpose: `kernel_size` must be a positive int or 2 positive ints, got 0"),
    # attention (owned elsewhere)
    ("mha heads 0", lambda: trace(nets.multi_head_attention(_, _, _, _, 0), K, SEQ, SEQ, SEQ), ValueError, r"multi_head_attention: `num_heads` must be a positive int, got 0"),
    ("mha heads str", lambda: trace(nets.multi_head_attention(_, _, _, _, "2"), K, SEQ, SEQ, SEQ), ValueError, r"multi_head_attention: `num_heads` must be a positive int, got '2'"),
    ("mha heads divide", lambda: trace(nets.multi_head_attention(_, _, _, _, 3), K, SEQ, SEQ, SEQ), ValueError, r"multi_head_attention: `num_heads` \(3\) must divide the model size \(the last axis of the query, 4\)"),
    ("mha kv heads", lambda: nets.attention(2, num_kv_heads=3), ValueError, r"attention: `num_kv_heads` \(3\) must divide `num_heads` \(2\)"),
    ("self attention heads", lambda: trace(nets.multi_head_self_attention(_, _, 0), K, SEQ), ValueError, r"multi_head_attention: `num_heads` must be a positive int, got 0"),
    ("transformer_block heads", lambda: trace(nets.transformer_block(_, _, 3), K, SEQ), ValueError, r"multi_head_attention: `num_heads` \(3\) must divide the model size"),
    # recurrent (owned elsewhere)
    ("gru hidden 0", lambda: trace(nets.gru(_, _, 0), K, SEQ), ValueError, r"gru: `hidden_size` must be a positive int, got 0"),
    ("gru rank", lambda: trace(nets.gru(_, _, 8), K, jnp.ones((4,))), ValueError, r"`gru` argument `x`: expected at least 2 axes, got shape \(4,\)"),
    ("lstm hidden negative", lambda: trace(nets.lstm(_, _, -2), K, SEQ), ValueError, r"lstm: `hidden_size` must be a positive int, got -2"),
    ("rnn hidden 0", lambda: trace(nets.rnn(_, _, 0), K, SEQ), ValueError, r"rnn: `hidden_size` must be a positive int, got 0"),
    ("bidirectional cell", lambda: trace(nets.bidirectional(_, _, 8, "lsmt"), K, SEQ), ValueError, r"bidirectional: `cell` must be 'rnn', 'lstm' or 'gru', got 'lsmt'"),
    # pool (owned elsewhere)
    ("max_pool window", lambda: _unchecked(nets.max_pool, {}, IMG, 0), ValueError, r"max_pool: `window_shape` must be positive ints, got 0"),
    ("avg_pool stride", lambda: _unchecked(nets.avg_pool, {}, IMG, 2, 0), ValueError, r"avg_pool: `stride` must be a positive int or 2 positive ints \(one per pooled axis\), got 0"),
    ("max_pool padding", lambda: _unchecked(nets.max_pool, {}, IMG, 2, 1, "BOGUS"), ValueError, r"max_pool: `padding` must be 'SAME', 'VALID' or 2 \(low, high\) pairs of ints, got 'BOGUS'"),
    # embeddings (owned elsewhere)
    ("token_embed float ids", lambda: trace(nets.token_embed(_, _, 10, 8), K, X), TypeError, r"token_embed: `token_ids` must be integers, got dtype float32"),
    ("positional_embed too long", lambda: trace(nets.positional_embed(_, _, 3), K, SEQ), ValueError, r"positional_embed: `x` has 5 positions \(axis -2 of shape \(2, 5, 4\)\), more than `max_len` 3"),
    ("sinusoidal_embed odd", lambda: _unchecked(nets.sinusoidal_embed, jnp.ones((2, 5, 3))), ValueError, r"sinusoidal_embed: the last axis of `x` \(d\) must be even, got shape \(2, 5, 3\)"),
    # stack and sequential
    ("stack layers 0", lambda: stack(nets.linear(_, _, 4), 0), ValueError, r"stack: `layers` must be a positive int, got 0"),
    ("stack layers str", lambda: stack(nets.linear(_, _, 4), "3"), ValueError, r"stack: `layers` must be a positive int, got '3'"),
    ("stack not a function", lambda: stack(3, 2), TypeError, r"stack: `f` must be a function \(params, x, \*args\) -> x, got 3"),
    ("stack changes shape", lambda: trace(stack(nets.linear(_, _, 3), 2), K, X), ValueError, r"stack\(linear, 2\): each layer must map x to the same shape and dtype .*\(2, 4\) float32 became \(2, 3\) float32"),
    ("sequential one function", lambda: trace(nets.sequential(_, _, nets.relu), K, X), TypeError, r"sequential: `layers` must be a list of functions \(params, x\) -> x, got "),
    ("sequential element", lambda: trace(nets.sequential(_, _, [3]), K, X), TypeError, r"sequential: `layers\[0\]` is int, not a function \(params, x\) -> x"),
    # tags
    ("tags.tag rules int", lambda: tags.tag({"w": X}, 5), TypeError, r"tags.tag: `rules` must be a dict \{selector: tag or tags\}, got 5"),
    ("tags.tag tag int", lambda: tags.tag({"w": X}, {"w": 5}), TypeError, r"tags.tag \(rule 'w'\): `tags` must be a str or an iterable of str, got 5"),
    ("tags.select selector int", lambda: tags.select({"w": X}, 5), TypeError, r"zephyr.tags: a selector is 'tag:NAME', a regex on the leaf's key, or a callable, got int 5"),
    ("tags.mask selector float", lambda: tags.mask({"w": X}, 3.0), TypeError, r"zephyr.tags: a selector is .* got float 3.0"),
    # checkpoint
    ("restore no directory", lambda: checkpoint.restore("/nonexistent/zephyr-ckpt"), FileNotFoundError, r"checkpoint.restore\(`/nonexistent/zephyr-ckpt`\): no checkpoint at `/nonexistent/zephyr-ckpt`"),
    ("save negative step", lambda: checkpoint.save(tempfile.mkdtemp(), {"w": X}, step=-1), ValueError, r"checkpoint.save\(`.*`\): `step` must be a non-negative int or None, got -1"),
    ("save not a tree", lambda: checkpoint.save(tempfile.mkdtemp(), "params", step=1), TypeError, r"checkpoint.save\(`.*`\): `params` must be an array, got str"),
    ("restore missing step", lambda: checkpoint.restore(_saved(), step=7), FileNotFoundError, r"checkpoint.restore\(`.*`\): no step 7 in `.*` \(its steps: \[1\]\)"),
    ("restore other model", lambda: checkpoint.restore(_saved(), {"v": X}), ValueError, r"checkpoint.restore\(`.*`\): step 1 at `.*` does not match the model"),
    ("restore other shape", lambda: checkpoint.restore(_saved(), {"w": jnp.ones((3,))}), ValueError, r"checkpoint.restore\(`.*`\): step 1 at `.*` does not match the model"),
    # composition (more)
    ("thread_key not a key", lambda: thread_key([jnp.add], 0), TypeError, r"thread_key: `key` must be a JAX random key.*got int 0"),
    # sharding
    ("trace_sharded mesh str", lambda: sharding.trace_sharded(nets.linear(_, _, 3), K, "mesh", {}, X), TypeError, r"trace_sharded: `mesh` must be a jax.sharding.Mesh.*got 'mesh'"),
    ("trace_sharded key", lambda: sharding.trace_sharded(nets.linear(_, _, 3), 0, "mesh", {}, X), TypeError, r"trace_sharded: `key` must be a JAX random key"),
]


@pytest.mark.parametrize("call,error,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_message(call: Callable[[], Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_abstract_trace_plans_what_trace_refuses() -> None:
    abstract = abstract_trace(lambda p, x: validate(p["huge"], (16, 2**38)), X)
    assert abstract["huge"].shape == (16, 2**38)


def test_numpy_int_sizes_are_sizes() -> None:
    params = trace(lambda p, x: validate(p["w"], (np.int64(3), np.int32(2))), K, X)
    assert params["w"].shape == (3, 2)
