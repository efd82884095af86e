#!/usr/bin/env python3
"""CSV files as spreadsheets and scripts write them, and the rows Python's csv module reads from
each (the reference CSVReader is tested against): Tests/SupportTests/Fixtures/csv/<name>.csv and
<name>.json. Blank lines are left out of the expected rows (Python returns them as empty lists;
Dropline skips them). Run from the repository root: python3 scripts/make_csv_fixtures.py"""
import csv, io, json, os

out = "Tests/SupportTests/Fixtures/csv"
os.makedirs(out, exist_ok=True)

def rows_written(rows, **kwargs):
    buffer = io.StringIO(newline="")
    csv.writer(buffer, **kwargs).writerows(rows)
    return buffer.getvalue()

cases = {
    # Excel's "CSV UTF-8": a byte-order mark, CRLF line ends, quoted fields where needed
    "excel-utf8": "\ufeff" + rows_written([["Image", "Class", "Notes"], ["blue/00.png", "blue", "checked, twice"],
                                          ["green/01.png", "green", 'said "green"'], ["red/02.png", "red", "two\r\nlines"]],
                                         dialect="excel"),
    # LibreOffice with every text field quoted, LF line ends, a trailing empty row of commas
    "quoted-all": rows_written([["image", "class"], ["a b.png", "blue"], ["c,d.png", "red"], ["", ""]],
                               quoting=csv.QUOTE_ALL, lineterminator="\n"),
    # a German-locale export: semicolons, CRLF
    "semicolons": rows_written([["IMAGE", "CLASS", "Wert"], ["x.png", "blue", "0,5"], ["y.png", "red", "1,25"]],
                               delimiter=";", lineterminator="\r\n"),
    # old Mac line ends, blank lines, no newline at the end
    "cr-and-blank": "image,class\r\rblue/0.png,blue\rred/1.png,red",
    # stray quotes inside unquoted fields, text after a closing quote, empty fields, unicode
    "odd": 'image,class,x\na"b.png,blue,\n"c"d.png,red,""\nété/ü.png,green,"a""b"\n',
    # tabs
    "tabs": rows_written([["class", "image"], ["blue", "p/0.png"]], delimiter="\t", lineterminator="\n"),
}

for name, text in cases.items():
    with open(os.path.join(out, name + ".csv"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
    first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    delimiter = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    with open(os.path.join(out, name + ".csv"), encoding="utf-8-sig", newline="") as f:
        rows = [row for row in csv.reader(f, delimiter=delimiter) if row != []]
    with open(os.path.join(out, name + ".json"), "w", encoding="utf-8") as f:
        json.dump({"delimiter": delimiter, "rows": rows}, f, ensure_ascii=False, indent=1)
    print(name, len(rows), "rows")
