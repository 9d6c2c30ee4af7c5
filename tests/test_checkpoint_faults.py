"""zephyr.checkpoint under faults: foreign content, corrupt metadata or data, keys that cannot round-trip, steps."""

from __future__ import annotations

import gc
import glob
import json
import os
import pathlib
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed
import pytest

from zephyr import checkpoint

# A restore that fails on damaged files leaves orbax's other pending reads as coroutines that
# are never awaited; they are finalized (and complain) whenever the garbage collector next
# runs, which could be in any later test. Collect them here, where the complaint is expected.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _collect_orbax_leftovers() -> Any:
    yield
    gc.collect()

PARAMS = {"linear": {"weights": jnp.array([0.5, 1.5, 2.5]), "bias": jnp.zeros(2)}}


def _saved(tmp_path: pathlib.Path, name: str = "ckpt") -> str:
    path = str(tmp_path / name)
    checkpoint.save(path, PARAMS)
    return path


def _edit_metadata(path: str, edit: Any) -> None:
    file = os.path.join(path, "0", "zephyr", "metadata")
    with open(file) as f:
        meta = json.load(f)
    edit(meta)
    with open(file, "w") as f:
        json.dump(meta, f)


def _entry(meta: dict[str, Any], leaf: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = meta["trees"]["params"]
    return next(e for e in entries if e["path"][-1] == leaf)


# --- nothing zephyr did not write is ever deleted ------------------------------------------------


def test_overwrite_refuses_a_directory_of_other_files(tmp_path: pathlib.Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "precious.txt").write_text("x")
    with pytest.raises(ValueError, match=r"checkpoint.save\(`.*results`\): `.*results` is not a zephyr checkpoint: it holds `precious.txt`, which zephyr did not write; nothing was changed"):
        checkpoint.save(results, PARAMS, overwrite=True)
    assert sorted(os.listdir(results)) == ["precious.txt"]
    (results / "notes").mkdir()
    with pytest.raises(ValueError, match="holds `notes` and 1 more"):
        checkpoint.save(results, PARAMS, overwrite=True)


def test_overwrite_refuses_a_file(tmp_path: pathlib.Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"weights")
    with pytest.raises(ValueError, match=r"`.*model.bin` is a file, not a zephyr checkpoint; nothing was changed"):
        checkpoint.save(file, PARAMS, overwrite=True)
    assert file.read_bytes() == b"weights"


def test_overwrite_refuses_a_file_added_to_a_checkpoint(tmp_path: pathlib.Path) -> None:
    path = _saved(tmp_path)
    pathlib.Path(path, "README").write_text("mine")
    with pytest.raises(ValueError, match="holds `README`"):
        checkpoint.save(path, PARAMS, overwrite=True)
    with pytest.raises(ValueError, match="is not a zephyr checkpoint: it holds `README`"):
        checkpoint.restore(path)
    assert pathlib.Path(path, "README").read_text() == "mine"


def test_an_empty_directory_is_saved_into(tmp_path: pathlib.Path) -> None:
    (tmp_path / "empty").mkdir()
    checkpoint.save(tmp_path / "empty", PARAMS)
    assert checkpoint.steps(tmp_path / "empty") == [0]


def test_overwrite_writes_a_new_step_then_removes_the_old(tmp_path: pathlib.Path) -> None:
    path = _saved(tmp_path)
    with pytest.raises(FileExistsError, match=r"holds a checkpoint \(steps \[0\]\); pass overwrite=True"):
        checkpoint.save(path, PARAMS)
    checkpoint.save(path, {"w": jnp.ones(1)}, overwrite=True)
    assert checkpoint.steps(path) == [1]
    assert sorted(os.listdir(path)) == [".zephyr-lock", "1"]
    np.testing.assert_array_equal(checkpoint.restore(path)["w"], jnp.ones(1))


def test_leftovers_of_a_killed_save_are_ignored_then_removed(tmp_path: pathlib.Path) -> None:
    path = _saved(tmp_path)
    os.mkdir(os.path.join(path, "1.orbax-checkpoint-tmp-1234"))
    os.mkdir(os.path.join(path, "0.zephyr-deleting"))
    assert checkpoint.steps(path) == [0]
    np.testing.assert_array_equal(checkpoint.restore(path)["linear"]["weights"], PARAMS["linear"]["weights"])
    checkpoint.save(path, PARAMS, step=5)
    assert sorted(os.listdir(path)) == [".zephyr-lock", "0", "5"]
    only = tmp_path / "only"
    only.mkdir()
    (only / "0.orbax-checkpoint-tmp-99").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint at `.*only`: its first save did not complete"):
        checkpoint.restore(only)


# --- restore trusts nothing it reads ----------------------------------------------------------------


@pytest.mark.parametrize("text", ["", '{"format": "zeph', "[1, 2]"])
def test_unreadable_metadata_names_the_checkpoint(tmp_path: pathlib.Path, text: str) -> None:
    path = _saved(tmp_path)
    pathlib.Path(path, "0", "zephyr", "metadata").write_text(text)
    with pytest.raises(ValueError, match=r"checkpoint.restore\(`.*ckpt`\): the metadata of step 0 is corrupt: "):
        checkpoint.restore(path)


def test_metadata_that_lies_about_a_dtype_is_caught(tmp_path: pathlib.Path) -> None:
    path = _saved(tmp_path)
    _edit_metadata(path, lambda meta: _entry(meta, "weights").update(dtype="int32"))
    message = "`params['linear']['weights']` in step 0 is stored as float32 (3,) but the metadata says int32 (3,)"
    with pytest.raises(ValueError, match=r"checkpoint.restore\(`.*ckpt`\): " + re.escape(message)):
        checkpoint.restore(path)


def test_metadata_that_lies_about_a_shape_is_caught(tmp_path: pathlib.Path) -> None:
    path = _saved(tmp_path)
    _edit_metadata(path, lambda meta: _entry(meta, "bias").update(shape=[3]))
    with pytest.raises(ValueError, match=re.escape("`params['linear']['bias']` in step 0 is stored as float32 (2,) but the metadata says float32 (3,)")):
        checkpoint.restore(path)


def test_metadata_missing_or_adding_a_leaf_is_caught(tmp_path: pathlib.Path) -> None:
    path = _saved(tmp_path)
    _edit_metadata(path, lambda meta: meta["trees"]["params"].append({"path": ["extra"], "shape": [1], "dtype": "float32", "checksum": 0}))
    with pytest.raises(ValueError, match=re.escape("`params['extra']` is in the metadata of step 0 but not stored")):
        checkpoint.restore(path)
    path = _saved(tmp_path, "other")
    _edit_metadata(path, lambda meta: meta["trees"]["params"].remove(_entry(meta, "bias")))
    with pytest.raises(ValueError, match=re.escape("`params['linear']['bias']` is stored in step 0 but not in its metadata")):
        checkpoint.restore(path)


@pytest.mark.parametrize(
    ("edit", "detail"),
    [
        (lambda meta: meta.update(trees=[]), "`trees`, `extra` or `step` is missing or malformed"),
        (lambda meta: meta.update(step=3), "`trees`, `extra` or `step` is missing or malformed"),
        (lambda meta: meta["trees"].update(weights=[]), "unknown tree 'weights'"),
        (lambda meta: _entry(meta, "bias").update(dtype="float99"), "a malformed entry in `params`"),
        (lambda meta: _entry(meta, "bias").update(shape=[-1]), "a malformed entry in `params`"),
        (lambda meta: _entry(meta, "bias").update(path=[["linear"], "bias"]), "a malformed entry in `params`"),
        (lambda meta: _entry(meta, "bias").pop("checksum"), "a malformed entry in `params`"),
    ],
)
def test_malformed_metadata_is_refused(tmp_path: pathlib.Path, edit: Any, detail: str) -> None:
    path = _saved(tmp_path)
    _edit_metadata(path, edit)
    with pytest.raises(ValueError, match=r"checkpoint.restore\(`.*`\): the metadata of step 0 is corrupt: " + re.escape(detail)):
        checkpoint.restore(path)


def test_another_format_version_is_named(tmp_path: pathlib.Path) -> None:
    path = _saved(tmp_path)
    _edit_metadata(path, lambda meta: meta.update(version=7))
    with pytest.raises(ValueError, match="step 0 was written in zephyr checkpoint format version 7; this zephyr reads version 2"):
        checkpoint.restore(path)


def _damage(path: str, pattern: str, how: str) -> None:
    files = glob.glob(os.path.join(path, "0", "params", pattern))
    assert files
    for file in files:
        data = bytearray(pathlib.Path(file).read_bytes())
        if how == "flip":
            for i in range(len(data) // 2, len(data) // 2 + 8):
                data[i] ^= 0xFF
        else:
            del data[len(data) // 2 :]
        pathlib.Path(file).write_bytes(bytes(data))


def test_flipped_bytes_in_the_array_data_fail_the_checksum(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "ck")
    checkpoint.save(path, {"linear": {"weights": jnp.arange(1000.0), "bias": jnp.zeros(2)}})
    _damage(path, "ocdbt.process_0/d/*", "flip")  # raw chunks: no checksum of tensorstore's own
    with pytest.raises(ValueError, match=re.escape("`params['linear']['weights']` in step 0 does not match its checksum: the stored data is damaged")):
        checkpoint.restore(path)


@pytest.mark.parametrize(("pattern", "how"), [("ocdbt.process_0/d/*", "truncate"), ("manifest.ocdbt", "flip"), ("d/*", "truncate")])
def test_damaged_files_name_the_checkpoint_and_a_leaf(tmp_path: pathlib.Path, pattern: str, how: str) -> None:
    path = str(tmp_path / "ck")
    checkpoint.save(path, {"linear": {"weights": jnp.arange(1000.0), "bias": jnp.zeros(2)}})
    _damage(path, pattern, how)
    with pytest.raises(ValueError, match=r"checkpoint.restore\(`.*ck`\): `params\['linear'\]\['(weights|bias)'\]` in step 0 cannot be read \(the files are damaged\): "):
        checkpoint.restore(path)


# --- keys that cannot round-trip are refused at save time ------------------------------------------


def test_a_tuple_key_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError, match=re.escape("checkpoint.save(`") + r".*" + re.escape("`): `params['layer'][(1, 2)]`: a saved key must be a str or an int, got tuple")):
        checkpoint.save(tmp_path / "ck", {"layer": {(1, 2): jnp.ones(2)}})
    with pytest.raises(TypeError, match=re.escape("`params[True]`: a saved key must be a str or an int, got bool")):
        checkpoint.save(tmp_path / "ck", {True: jnp.ones(2)})
    assert not (tmp_path / "ck").exists()


def test_mixed_int_and_str_keys_are_refused_with_the_path(tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError, match=re.escape("`params['body']` has keys [1, '1'] that cannot be sorted; jax.tree_util sorts dict keys: use one kind of key (str or int) per dict")):
        checkpoint.save(tmp_path / "ck", {"body": {1: jnp.ones(2), "1": jnp.zeros(2)}})
    with pytest.raises(TypeError, match=re.escape("`opt_state[0]['x']` has keys")):
        checkpoint.save(tmp_path / "ck", {}, opt_state=({"x": {1: jnp.ones(1), "a": jnp.ones(1)}},))


def test_keys_that_orbax_would_store_under_one_name_are_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match=re.escape("`params['d']['e']` and `params['d.e']` would be stored under the same name `d.e` (orbax joins keys with '.'): rename one")):
        checkpoint.save(tmp_path / "ck", {"d.e": jnp.zeros(2), "d": {"e": jnp.ones(2)}})


def test_other_bad_input_to_save(tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError, match=re.escape("`state['key']` is a typed PRNG key, which orbax cannot store")):
        checkpoint.save(tmp_path / "ck", PARAMS, {"key": jax.random.key(0)})
    with pytest.raises(TypeError, match="`extra` would not come back as it is from JSON"):
        checkpoint.save(tmp_path / "ck", PARAMS, extra={"batch": (1, 2)})
    with pytest.raises(TypeError, match="`extra` must be JSON"):
        checkpoint.save(tmp_path / "ck", PARAMS, extra={"rng": np.ones(2)})
    with pytest.raises(ValueError, match=r"`step` must be a non-negative int or None, got -1"):
        checkpoint.save(tmp_path / "ck", PARAMS, step=-1)
    with pytest.raises(ValueError, match=r"`keep` must be a positive int or None, got 0"):
        checkpoint.save(tmp_path / "ck", PARAMS, step=1, keep=0)
    assert not (tmp_path / "ck").exists()


# --- steps, keep, latest, resume ----------------------------------------------------------------------


def test_steps_keep_latest_and_errors(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run"
    for step in (0, 10, 20, 30):
        checkpoint.save(path, {"w": jnp.full(2, step, jnp.int32)}, step=step, keep=3)
    assert checkpoint.steps(path) == [10, 20, 30]
    assert checkpoint.restore(path)["w"].tolist() == [30, 30]
    assert checkpoint.restore(path, step=10)["w"].tolist() == [10, 10]
    with pytest.raises(FileNotFoundError, match=r"no step 0 in `.*run` \(its steps: \[10, 20, 30\]\)"):
        checkpoint.restore(path, step=0)
    with pytest.raises(FileExistsError, match="step 20 exists in `.*run`; a saved step is never replaced"):
        checkpoint.save(path, PARAMS, step=20)
    with pytest.raises(ValueError, match=r"step 25 is before the latest step 30 in `.*run`; steps only go forward"):
        checkpoint.save(path, PARAMS, step=25)
    checkpoint.save(path, {"w": jnp.zeros(2, jnp.int32)}, step=5, overwrite=True)  # a fresh start
    assert checkpoint.steps(path) == [5]


def test_resume_gives_back_optax_state_and_extra(tmp_path: pathlib.Path) -> None:
    params = {"w": jnp.arange(3.0)}
    tx = optax.adam(0.1)
    opt_state = tx.init(params)
    with jax.numpy_dtype_promotion("standard"):  # optax's Adam raises a float to an int32 count
        _updates, opt_state = tx.update({"w": jnp.ones(3)}, opt_state, params)
    state = {"count": jnp.array(4, jnp.int32)}
    checkpoint.save(tmp_path / "run", params, state, opt_state=opt_state, extra={"epoch": 1, "batch": 7}, step=8)
    run = checkpoint.resume(tmp_path / "run", params, tx.init(params), state)
    assert run.step == 8 and run.extra == {"epoch": 1, "batch": 7}
    assert str(jax.tree.structure(run.opt_state)) == str(jax.tree.structure(opt_state))
    for a, b in zip(jax.tree.leaves(run.opt_state), jax.tree.leaves(opt_state)):
        np.testing.assert_array_equal(a, b)
    assert run.state["count"].tolist() == 4
    bare = checkpoint.resume(tmp_path / "run")  # no likes: nested dicts as saved
    assert bare.opt_state[0]["count"].tolist() == 1
    checkpoint.save(tmp_path / "plain", params)
    plain = checkpoint.resume(tmp_path / "plain")
    assert plain.opt_state is None and plain.state is None and plain.extra == {}
    with pytest.raises(ValueError, match="the checkpoint has no `opt_state`"):
        checkpoint.resume(tmp_path / "plain", params, tx.init(params))


# --- bad arguments are named -------------------------------------------------------------------------


@pytest.mark.parametrize("function", ["restore", "restore_with_state", "resume"])
@pytest.mark.parametrize(
    ("step", "error", "message"),
    [
        (1.0, TypeError, "`step` must be an int (a step number) or None, got float: 1.0"),
        ("1", TypeError, "`step` must be an int (a step number) or None, got str: '1'"),
        (True, TypeError, "`step` must be an int (a step number) or None, got bool: True"),
        (-1, ValueError, "`step` must be an int (a step number) or None, got -1"),
    ],
)
def test_a_step_that_is_no_step_number_is_named(
    tmp_path: pathlib.Path, function: str, step: Any, error: type[Exception], message: str
) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, PARAMS, {"count": jnp.ones(())}, step=1)
    with pytest.raises(error, match=re.escape(f"checkpoint.{function}(`{path}`): {message}")):
        getattr(checkpoint, function)(path, step=step)


def test_a_numpy_int_step_is_a_step(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    three: Any = np.int64(3)  # typed `int`, and a numpy int is accepted at run time too
    checkpoint.save(path, PARAMS, step=three)
    assert checkpoint.steps(path) == [3]
    three = np.int32(3)
    assert checkpoint.resume(path, step=three).step == 3


def test_a_dangling_symbolic_link_is_named_as_such(tmp_path: pathlib.Path) -> None:
    link = tmp_path / "ck"
    link.symlink_to(tmp_path / "gone")
    for call in (lambda: checkpoint.save(link, PARAMS), lambda: checkpoint.restore(link), lambda: checkpoint.steps(link)):
        with pytest.raises(ValueError, match=r"`.*ck` is a dangling symbolic link \(to `.*gone`, which does not exist\), not a zephyr checkpoint; nothing was changed"):
            call()
    assert not (tmp_path / "gone").exists()
    path = _saved(tmp_path, "inside")
    os.symlink(tmp_path / "nowhere", os.path.join(path, "7"))
    with pytest.raises(ValueError, match=r"it holds `7` \(a dangling symbolic link to `.*nowhere`\), which zephyr did not write"):
        checkpoint.restore(path)


@pytest.mark.parametrize("directory", [None, 3, b"ck"])
def test_a_directory_that_is_no_path_is_named(directory: Any) -> None:
    for function, call in (("save", lambda: checkpoint.save(directory, PARAMS)), ("restore", lambda: checkpoint.restore(directory)), ("steps", lambda: checkpoint.steps(directory))):
        with pytest.raises(TypeError, match=re.escape(f"checkpoint.{function}: `directory` must be a str or an os.PathLike of str, got {type(directory).__name__}")):
            call()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"keep": 1.5}, TypeError, "`keep` must be a positive int or None, got float: 1.5"),
        ({"keep": True}, TypeError, "`keep` must be a positive int or None, got bool: True"),
        ({"overwrite": "yes"}, TypeError, "`overwrite` must be True or False, got str: 'yes'"),
        ({"extra": [1, 2]}, TypeError, "`extra` must be a dict of JSON (or None), got list: [1, 2]"),
        ({"step": 2.0}, TypeError, "`step` must be a non-negative int or None, got float: 2.0"),
    ],
)
def test_other_bad_arguments_to_save_are_named(tmp_path: pathlib.Path, kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(f"checkpoint.save(`{tmp_path / 'ck'}`): {message}")):
        checkpoint.save(tmp_path / "ck", PARAMS, **kwargs)
    assert not (tmp_path / "ck").exists()


def test_an_empty_directory_name_and_no_params_are_named(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for function, call in (("save", lambda: checkpoint.save("", PARAMS)), ("restore", lambda: checkpoint.restore(""))):
        with pytest.raises(ValueError, match=re.escape(f"checkpoint.{function}: `directory` is the empty string (it would mean the current directory)")):
            call()
    with pytest.raises(TypeError, match=re.escape("`params` must be a tree of arrays (a dict, e.g. from zephyr.trace), got None")):
        checkpoint.save(tmp_path / "ck", None)
    assert os.listdir(tmp_path) == []


# --- zero-size leaves (orbax refuses them) ------------------------------------------------------------


def test_a_zero_size_leaf_round_trips(tmp_path: pathlib.Path) -> None:
    params = {"empty": jnp.zeros((0, 3), jnp.bfloat16), "w": jnp.arange(3.0), "none": {"x": jnp.ones((2, 0), jnp.int8)}}
    state = {"queue": jnp.zeros((0,), jnp.int32)}  # a tree of zero-size leaves only
    checkpoint.save(tmp_path / "ck", params, state)
    for like in (None, params, jax.eval_shape(lambda: params)):
        restored = checkpoint.restore(tmp_path / "ck", like=like)
        assert restored["empty"].shape == (0, 3) and restored["empty"].dtype == jnp.bfloat16
        assert restored["none"]["x"].shape == (2, 0) and restored["none"]["x"].dtype == jnp.int8
        np.testing.assert_array_equal(restored["w"], params["w"])
    _, restored_state = checkpoint.restore_with_state(tmp_path / "ck")
    assert restored_state["queue"].shape == (0,) and restored_state["queue"].dtype == jnp.int32


def test_a_zero_size_leaf_that_differs_from_the_model_is_named(tmp_path: pathlib.Path) -> None:
    checkpoint.save(tmp_path / "ck", {"empty": jnp.zeros((0, 3))})
    with pytest.raises(ValueError, match=re.escape("shape: `params['empty']` is (0, 3) in the checkpoint, (1, 3) in the model")):
        checkpoint.restore(tmp_path / "ck", like={"empty": jnp.zeros((1, 3))})


def test_metadata_calling_a_stored_leaf_zero_size_is_caught(tmp_path: pathlib.Path) -> None:
    path = _saved(tmp_path)
    _edit_metadata(path, lambda meta: _entry(meta, "bias").update(shape=[0]))
    with pytest.raises(ValueError, match=re.escape("`params['linear']['bias']` in step 0 is stored as float32 (2,) but the metadata says float32 (0,)")):
        checkpoint.restore(path)
