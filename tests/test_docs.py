"""README.md and REPORT.md against the repository (tools/check_docs.py): every relative link
exists and every `python <script> --flag` names a real script and a flag its --help lists."""

import check_docs


def test_readme_and_report_links_and_commands_are_real():
    assert check_docs.problems() == []


def test_the_checker_finds_a_missing_file_a_missing_script_and_an_invented_flag(tmp_path):
    """The check can fail: a dead link, a script that is not there and a flag the script does
    not have are each reported; a real link and a real flag are not."""
    (tmp_path / "fake.py").write_text(
        "import argparse\nap = argparse.ArgumentParser()\nap.add_argument('--w')\nap.parse_args()\n")
    (tmp_path / "DOC.md").write_text(
        "see [the grid](report/none.png) and ![ok](DOC.md); run `python fake.py --w 0 --no-such-flag` "
        "and `python nothing.py --x`\n")
    found = check_docs.problems(root=tmp_path, docs=("DOC.md",))
    assert found == sorted([
        "DOC.md: link to report/none.png, which does not exist",
        "DOC.md: `python fake.py … --no-such-flag`: fake.py has no such flag",
        "DOC.md: `python nothing.py` names a script that does not exist",
    ])
