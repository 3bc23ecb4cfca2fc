"""CSV cells that a spreadsheet would run as formulas are escaped when exported."""

import csv
import io

from shared.csv_export import csv_text, safe_cell


def test_a_cell_starting_like_a_formula_gets_an_apostrophe_and_others_stay_as_given():
    for risky in ("=SUM(A1:A9)", "+62 812", "-1+1", "@cmd", "\t=1", "\r=1"):
        assert safe_cell(risky) == "'" + risky
    for plain in ("Siti A.", "12.75", "a=b", " =1", ""):
        assert safe_cell(plain) == plain
    assert safe_cell(-5) == -5 and safe_cell(1.5) == 1.5  # numbers are not formulas


def test_an_exported_document_reads_back_with_the_escapes_and_quoting():
    text = csv_text(["name", "note", "count"],
                    [["=HYPERLINK(\"http://x\")", "a, \"quoted\" note", 3], ["ok", None, -2]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["name", "note", "count"],
                    ["'=HYPERLINK(\"http://x\")", 'a, "quoted" note', "3"], ["ok", "", "-2"]]
