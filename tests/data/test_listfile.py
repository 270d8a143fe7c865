"""List files: comments, one or two columns, paths relative to the list, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcn_edge.data.listfile import parse_list_text, read_ids, read_image_list, read_list_file, write_list_file
from fcn_edge.errors import DataError


def test_comments_blank_lines_and_columns():
    text = "# header\n\n  a  \nb.jpg   b.png\r\n# end\n"
    assert parse_list_text(text) == [["a"], ["b.jpg", "b.png"]]


def test_three_fields_and_binary_are_errors(tmp_path):
    with pytest.raises(DataError, match="line 2 has 3 fields"):
        parse_list_text("a\nb c d\n", "x.txt")
    path = tmp_path / "bin.txt"
    path.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataError, match="not UTF-8"):
        read_list_file(path)
    with pytest.raises(DataError, match="does not exist"):
        read_list_file(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="two fields"):
        (tmp_path / "pairs.txt").write_text("a b\n")
        read_ids(tmp_path / "pairs.txt")


def test_image_list_resolves_relative_to_the_list(tmp_path):
    folder = tmp_path / "calib" / "set"
    folder.mkdir(parents=True)
    items = [folder / "a.png", folder / "b.png"]
    listed = write_list_file(tmp_path / "calib" / "set.txt", items, header="two images")
    assert listed.read_text().splitlines() == ["# two images", "set/a.png", "set/b.png"]
    assert read_image_list(listed) == [Path(tmp_path / "calib" / "set" / "a.png"), tmp_path / "calib" / "set" / "b.png"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(DataError, match="lists no images"):
        read_image_list(tmp_path / "empty.txt")
