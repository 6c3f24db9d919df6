"""The restricted unpickler: admits containers, scalars and numpy arrays; refuses the rest
without running it."""

from __future__ import annotations

import collections
import os
import pickle
import pickletools

import numpy as np
import pytest
from conftest import shared_path

from seedlab.errors import InputError
from seedlab.importers import safe_pickle


class _System:
    """Pickles to a call of os.system that would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').write('x')",))


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_round_trips_builtins_and_numpy(protocol):
    value = {
        "mini": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "flags": np.array([[True, False], [False, True]]),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(10)[::3],
        "scalars": (np.float32(0.25), np.int64(-3), 1.5, 7, True, None, complex(1, 2)),
        "text": ["a", b"raw", {"nested": frozenset({1, 2})}, {3, 4}],
        "dtype": np.dtype("<f8"),
    }
    out = safe_pickle.loads(pickle.dumps(value, protocol=protocol))
    assert set(out) == set(value)
    for key in ("mini", "flags", "fortran", "strided"):
        assert out[key].dtype == value[key].dtype
        np.testing.assert_array_equal(out[key], value[key])
    assert out["scalars"] == value["scalars"]
    assert type(out["scalars"][0]) is np.float32
    assert out["text"] == value["text"]
    assert out["dtype"] == np.dtype("<f8")
    out["mini"][0, 0, 0] = 99.0  # arrays come back writable


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_os_system_is_refused_and_not_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"a": [1, _System(marker)]}, protocol=protocol))
    with pytest.raises(InputError) as info:
        safe_pickle.load(path)
    message = str(info.value)
    assert str(path) in message
    assert f"{os.system.__module__}.system" in message  # posix.system on Linux
    assert not marker.exists()


def test_eval_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps([_Eval(marker)])
    with pytest.raises(InputError, match=r"builtins\.eval") as info:
        safe_pickle.loads(data, source="release/decaying/x.pkl")
    assert "release/decaying/x.pkl" in str(info.value)
    assert not marker.exists()


def test_hand_written_global_is_refused(tmp_path):
    # A protocol-0 pickle written by hand: GLOBAL os system, then REDUCE.
    marker = tmp_path / "pwned"
    data = f"cos\nsystem\n(Vtouch {marker}\ntR.".encode()
    with pytest.raises(InputError, match=r"os\.system"):
        safe_pickle.loads(data, source="hand.pkl")
    assert not marker.exists()


def test_ordered_dict_and_other_classes_are_refused():
    with pytest.raises(InputError, match=r"collections\.OrderedDict"):
        safe_pickle.loads(pickle.dumps(collections.OrderedDict(a=1)))
    with pytest.raises(InputError, match=r"numpy\.ma\.core"):
        safe_pickle.loads(pickle.dumps(np.ma.masked_array([1, 2], mask=[0, 1])))
    with pytest.raises(InputError, match=r"numpy\.memmap|numpy\._core\.memmap"):
        safe_pickle.loads(pickle.dumps(np.memmap, protocol=4))


def test_calling_ndarray_or_bytes_with_a_size_is_refused():
    # ndarray is only admitted as _reconstruct's argument; calling it is not possible.
    data = b"cnumpy\nndarray\n(I100000000000\ntR."
    with pytest.raises(InputError, match="not a readable pickle"):
        safe_pickle.loads(data)
    data = b"cbuiltins\nbytes\n(I100000000000\ntR."
    with pytest.raises(InputError, match=r"bytes\(<int>\)"):
        safe_pickle.loads(data)


def test_ops_of_the_refused_pickle_were_a_global():
    # Guard the test above: the evil pickle really does carry a global and a REDUCE.
    ops = {op.name for op, _, _ in pickletools.genops(pickle.dumps(_System("x"), protocol=2))}
    assert {"GLOBAL", "REDUCE"} <= ops


def test_corrupt_and_missing_files(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"a": list(range(100))})[:-10])
    with pytest.raises(InputError, match="not a readable pickle") as info:
        safe_pickle.load(path)
    assert str(path) in str(info.value)
    with pytest.raises(InputError, match="absent.pkl: file not found"):
        safe_pickle.load(tmp_path / "absent.pkl")


def test_devices_links_out_and_deep_nesting_are_refused(tmp_path):
    """A link to /dev/zero is refused before a byte is read; with a root, a link that leads
    out of it is refused."""
    (tmp_path / "zero.pkl").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="zero.pkl: is not a regular file"):
        safe_pickle.load(tmp_path / "zero.pkl")
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle.dumps([1]))
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "in.pkl").symlink_to(outside)
    assert safe_pickle.load(tmp_path / "release" / "in.pkl") == [1]
    with pytest.raises(InputError, match="leads outside the release folder"):
        safe_pickle.load(tmp_path / "release" / "in.pkl", root=tmp_path / "release")


def test_loads_the_real_decaying_pickles():
    folder = shared_path("acl2021-instance-level", "decaying")
    data = safe_pickle.load(folder / "qqpLargeWorseThanMini.pkl")
    rows, groups, annotations = data["dev"]
    assert len(rows) == len(groups) == 402
    assert rows[0]["guid"] == "dev-37564"
    assert len(annotations["rz"]) == 402
    assert {split: len(v[0]) for split, v in data.items()} == {
        "twitter_dev": 74, "twitter_test": 38, "twitter_train": 340, "dev": 402}
