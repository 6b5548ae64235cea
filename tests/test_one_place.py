"""Helpers that exist once (issue 18): size strings, first lines of errors, file digests, resize
modes and the class table; the other modules import these instead of keeping their own."""
import hashlib

import pytest

from runtime import core_preprocess, manifest
from runtime.errors import first_line
from runtime.sizes import parse_hw, split_pair


def test_size_strings_have_one_grammar():
    assert split_pair("256x512") == (256, 512)
    assert split_pair(" 512 X 1024 ") == (512, 1024)
    for bad in ("256", "256x", "x512", "256x512x3", "256by512", "-1x5", "", None, (256, 512)):
        assert split_pair(bad) is None, bad
    assert parse_hw("480x640") == (480, 640)
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_hw("480,640")


def test_callers_keep_their_own_rules_and_words():
    from export.api import parse_size
    from export.scenes import parse_size as scene_size
    from runtime.cli.segment import parse_wxh
    from runtime.errors import UserError
    assert parse_size("256x512") == (256, 512) and scene_size("64*128") == (64, 128)
    assert parse_wxh("1920x1080", "--capture-size") == (1080, 1920)
    with pytest.raises(UserError, match="multiples of 32"):
        parse_size("100x512")
    with pytest.raises(UserError, match="expected WIDTHxHEIGHT"):
        parse_wxh("0x5", "--capture-size")


def test_first_line():
    assert first_line(ValueError("  one\ntwo")) == "one"
    assert first_line(KeyError()) == "KeyError"
    assert len(first_line(ValueError("x" * 1000))) == 300


def test_one_digest_and_one_list_of_resize_modes(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"abc" * 100000)
    assert manifest.sha256_file(path) == hashlib.sha256(b"abc" * 100000).hexdigest()
    assert core_preprocess.RESIZE_MODES is manifest.RESIZE_MODES


def test_the_workstation_side_imports_the_device_side_helpers():
    pytest.importorskip("torch")
    from export import checkpoints
    assert checkpoints.sha256_file is manifest.sha256_file
