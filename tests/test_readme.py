"""The README's Python example runs as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).parent.parent / "README.md"


def test_readme_tour_runs(capsys):
    if not README.exists():
        pytest.skip("no README beside the tests")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "angle(w, sign w)" in out and "bits per entry" in out


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).splitlines()
    assert first_block[0].startswith("pip install . && qtoolkit reproduce")
    assert first_block[1].startswith('pip install ".[test]" && pytest')
